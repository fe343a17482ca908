//! Build facts for `kubectl mpo version`, fixed at build time so that two builds of one
//! commit are the same bytes:
//! - `MPO_VERSION`: Cargo.toml's `version` (the one source of the version);
//!   `MPO_VERSION_OVERRIDE` replaces it, for `make dist-check` only (it publishes a
//!   next version into a test krew index).
//! - `MPO_BUILD_COMMIT`: `$MPO_BUILD_COMMIT`, else `$GITHUB_SHA` (CI), else `git
//!   rev-parse HEAD`, else `unknown` (a source tarball without git).
//! - `MPO_BUILD_DATE`: `$SOURCE_DATE_EPOCH`, else the commit's date, as RFC 3339 UTC;
//!   never the wall clock.
//! - `MPO_TARGET`: the target triple.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn env(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn rfc3339(epoch: i64) -> String {
    let (year, month, day) = civil(epoch.div_euclid(86_400));
    let secs = epoch.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Rebuild when HEAD moves: HEAD itself, the branch it points to, packed refs.
fn watch_git() {
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    if let Ok(text) = std::fs::read_to_string(&head)
        && let Some(reference) = text.trim().strip_prefix("ref: ")
    {
        for dir in [&git_dir, &common] {
            let path = dir.join(reference);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let packed = common.join("packed-refs");
    if Path::new(&packed).exists() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    watch_git();

    let version = env("MPO_VERSION_OVERRIDE")
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    let commit = env("MPO_BUILD_COMMIT")
        .or_else(|| env("GITHUB_SHA"))
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let epoch = env("SOURCE_DATE_EPOCH")
        .and_then(|text| text.trim().parse::<i64>().ok())
        .or_else(|| {
            let commit = (commit != "unknown").then_some(commit.as_str())?;
            git(&["show", "-s", "--format=%ct", commit])?.parse().ok()
        });
    let date = epoch.map_or_else(|| "unknown".to_string(), rfc3339);
    let target = std::env::var("TARGET").unwrap_or_default();

    println!("cargo:rustc-env=MPO_VERSION={version}");
    println!("cargo:rustc-env=MPO_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=MPO_BUILD_DATE={date}");
    println!("cargo:rustc-env=MPO_TARGET={target}");
}
