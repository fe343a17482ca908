//! `kubectl-mpo __man DIR` (hidden, like `__complete`): one man page per command,
//! `kubectl-mpo.1`, `kubectl-mpo-create.1`, `kubectl-mpo-registry-tags.1`..., rendered
//! from the clap command tree that parses the command line, so the pages and `--help`
//! never differ. The release archives carry them (scripts/release.py).

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::cmd::version::{BUILD_DATE, VERSION};

/// Writes the pages into `dir` (created when missing); returns their file names.
pub fn generate(dir: &Path) -> std::io::Result<Vec<String>> {
    fn walk(
        cmd: clap::Command,
        dir: &Path,
        date: &str,
        out: &mut Vec<String>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            walk(sub.clone(), dir, date, out)?;
        }
        let man = clap_mangen::Man::new(cmd)
            .source(format!("kubectl-mpo {VERSION}"))
            .manual("kubectl-mpo manual")
            .date(date);
        out.push(man.get_filename());
        man.generate_to(dir)?;
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    // The commit's day, never the day of the build: two builds give one page.
    let date = BUILD_DATE.get(..10).unwrap_or_default();
    let mut names = Vec::new();
    walk(cmd, dir, date, &mut names)?;
    names.sort();
    Ok(names)
}

pub fn run(args: Vec<std::ffi::OsString>) -> ExitCode {
    let [dir] = args.as_slice() else {
        eprintln!("usage: kubectl-mpo __man DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(dir)) {
        Ok(names) => {
            for name in names {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "error: cannot write the man pages into {}: {err}",
                Path::new(dir).display()
            );
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_per_visible_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = super::generate(dir.path()).expect("pages");
        for name in [
            "kubectl-mpo.1",
            "kubectl-mpo-create.1",
            "kubectl-mpo-version.1",
            "kubectl-mpo-registry-tags.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
            assert!(dir.path().join(name).is_file());
        }
        assert!(!names.iter().any(|n| n.contains("__")), "{names:?}");
        let page = std::fs::read_to_string(dir.path().join("kubectl-mpo-create.1")).expect("page");
        assert!(page.contains(".TH kubectl-mpo-create 1"), "{page}");
        assert!(page.contains("\\-\\-tag"), "{page}");
    }
}
