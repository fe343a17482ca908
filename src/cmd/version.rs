//! `kubectl mpo version`

use serde::Serialize;

use super::{Ctx, Outcome};
use crate::cli::{OutputFormat, VersionArgs};
use crate::error::Result;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    commit: &'static str,
    target: &'static str,
}

pub fn run(ctx: &Ctx, args: &VersionArgs) -> Result<Outcome> {
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("MPO_GIT_COMMIT").unwrap_or("unknown"),
        target: std::env::consts::ARCH,
    };
    match args.output {
        Some(OutputFormat::Json) => ctx.printer.json(&info)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&info)?,
        _ => ctx.printer.line(format!(
            "kubectl-mpo {} ({}, {})",
            info.version, info.commit, info.target
        )),
    }
    Ok(Outcome::Success)
}
