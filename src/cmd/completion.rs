//! `kubectl mpo completion SHELL`: the completion script for `kubectl-mpo`. Completion
//! of `kubectl mpo <TAB>` itself goes through kubectl, which calls the
//! `kubectl_complete-mpo` helper shipped next to the binary.

use clap::CommandFactory;

use super::{Ctx, Outcome};
use crate::cli::{Cli, CompletionArgs, Shell};
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, args: CompletionArgs) -> Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kubectl-mpo", &mut script);
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(|err| Error::runtime(format!("writing the completion script: {err}")))?;
    Ok(Outcome::Success)
}
