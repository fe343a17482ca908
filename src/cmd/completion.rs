//! `kubectl mpo completion SHELL`: the completion script for `kubectl-mpo`; and
//! `--install-helper`, which puts the `kubectl_complete-mpo` helper on PATH for
//! `kubectl mpo <TAB>` (kubectl runs it). Both end in `kubectl-mpo __complete`
//! (`cmd/complete.rs`), so every shell completes the same words.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::app::{Ctx, Outcome};
use crate::cli::{Cli, CompletionArgs, Shell};
use crate::error::{Error, Result};

const HELPER_NAME: &str = "kubectl_complete-mpo";
const HELPER: &str = include_str!("../../kubectl_complete-mpo");

pub fn run(ctx: &Ctx, args: CompletionArgs) -> Result<Outcome> {
    if args.install_helper {
        return install_helper(ctx, args.helper_dir);
    }
    let script: &[u8] = match args.shell {
        Some(Shell::Bash) => include_bytes!("completion.bash"),
        Some(Shell::Zsh) => include_bytes!("completion.zsh"),
        Some(Shell::Fish) => include_bytes!("completion.fish"),
        Some(Shell::Powershell) | None => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(
                clap_complete::Shell::PowerShell,
                &mut command,
                "kubectl-mpo",
                &mut script,
            );
            ctx.printer.raw(&script);
            return Ok(Outcome::Success);
        }
    };
    ctx.printer.raw(script);
    Ok(Outcome::Success)
}

/// The first directory of PATH that holds `kubectl-mpo` (what kubectl runs), else
/// the directory of this binary.
fn default_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("kubectl-mpo").is_file())
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
        })
}

fn install_helper(ctx: &Ctx, dir: Option<PathBuf>) -> Result<Outcome> {
    let dir = dir.or_else(default_dir).ok_or_else(|| {
        Error::runtime("cannot tell where kubectl-mpo is installed")
            .with_hint("name the directory with --helper-dir DIR (a directory on PATH)")
    })?;
    let target = dir.join(HELPER_NAME);
    if std::fs::read(&target).is_ok_and(|text| text == HELPER.as_bytes()) {
        ctx.printer
            .line(format!("{} is already installed", target.display()));
        return Ok(Outcome::Success);
    }
    let write = || -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        file.write_all(HELPER.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o755))?;
        }
        file.persist(&target).map_err(|err| err.error)?;
        Ok(())
    };
    write().map_err(|err| {
        Error::runtime(format!("cannot write {}: {err}", target.display())).with_hint(
            "choose a writable directory on PATH with --helper-dir DIR, or run it with the rights to write there",
        )
    })?;
    ctx.printer.line(format!(
        "installed {}: kubectl now completes the words after `kubectl mpo` on TAB (kubectl 1.26 or later, with kubectl's shell completion loaded)",
        target.display()
    ));
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|entry| entry == dir) {
        ctx.printer.warn(format!(
            "{} is not on PATH; kubectl finds the helper only on PATH",
            dir.display()
        ));
    }
    Ok(Outcome::Success)
}
