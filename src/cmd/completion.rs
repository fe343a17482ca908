//! `kubectl mpo completion SHELL`: the completion script for `kubectl-mpo`. Completion
//! of `kubectl mpo <TAB>` itself goes through kubectl, which calls the
//! `kubectl_complete-mpo` helper shipped next to the binary.

use clap::CommandFactory;

use crate::app::{Ctx, Outcome};
use crate::cli::{Cli, CompletionArgs, Shell};
use crate::error::Result;

pub fn run(ctx: &Ctx, args: CompletionArgs) -> Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kubectl-mpo", &mut script);
    ctx.printer.raw(&script);
    Ok(Outcome::Success)
}
