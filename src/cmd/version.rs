//! `kubectl mpo version`

use serde::Serialize;

use crate::app::{Ctx, Outcome};
use crate::cli::{ReportFormat, VersionArgs};
use crate::error::Result;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    commit: &'static str,
    /// `linux/amd64`, as kubectl writes a platform.
    platform: String,
}

pub fn run(ctx: &Ctx, args: &VersionArgs) -> Result<Outcome> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("MPO_GIT_COMMIT").unwrap_or("unknown"),
        platform: format!("{}/{arch}", std::env::consts::OS),
    };
    match args.output {
        Some(ReportFormat::Json) => ctx.printer.json(&info)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&info)?,
        None => ctx.printer.line(format!(
            "kubectl-mpo {} ({}, {})",
            info.version, info.commit, info.platform
        )),
    }
    Ok(Outcome::Success)
}
