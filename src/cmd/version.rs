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
    /// The cluster's side, as `kubectl version` shows it (absent with `--client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerInfo>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerInfo {
    server: String,
    kubernetes_version: String,
    #[serde(flatten)]
    deckhouse: crate::app::generation::Generation,
}

/// Kubernetes version and the Deckhouse controller generation (docs/deckhouse-real.md §1).
async fn server(ctx: &Ctx) -> Result<ServerInfo> {
    let cluster = ctx.cluster().await?;
    let info = cluster
        .client
        .apiserver_version()
        .await
        .map_err(|err| cluster.api_error(err, "get", "/version"))?;
    Ok(ServerInfo {
        server: cluster.server.clone(),
        kubernetes_version: info.git_version,
        deckhouse: crate::app::generation::detect(&cluster).await,
    })
}

pub fn run(ctx: &Ctx, args: &VersionArgs) -> Result<Outcome> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let server = if args.client {
        None
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| {
                crate::error::Error::runtime(format!("cannot start the async runtime: {err}"))
            })?;
        Some(runtime.block_on(server(ctx))?)
    };
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("MPO_GIT_COMMIT").unwrap_or("unknown"),
        platform: format!("{}/{arch}", std::env::consts::OS),
        server,
    };
    match args.output {
        Some(ReportFormat::Json) => ctx.printer.json(&info)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&info)?,
        None => {
            ctx.printer.line(format!(
                "kubectl-mpo {} ({}, {})",
                info.version, info.commit, info.platform
            ));
            if let Some(server) = &info.server {
                let deckhouse = &server.deckhouse;
                ctx.printer.line(format!(
                    "Server: {}, Kubernetes {}",
                    server.server, server.kubernetes_version
                ));
                let version = match (&deckhouse.deckhouse_version, &deckhouse.edition) {
                    (Some(version), Some(edition)) => format!("{version} ({edition})"),
                    (Some(version), None) => version.clone(),
                    _ => "not readable (deployment d8-system/deckhouse)".to_string(),
                };
                ctx.printer.line(format!("Deckhouse: {version}"));
                ctx.printer.line(format!(
                    "Controller generation: {} ({})",
                    deckhouse.generation, deckhouse.basis
                ));
                if deckhouse.future_module_api {
                    ctx.printer.line(
                        "Module API: a version other than v1alpha1 is served (unsupported variant)",
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}
