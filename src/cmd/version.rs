//! `kubectl mpo version`: the client line first (version, commit, build date, target:
//! fixed at build time by build.rs), then the cluster's side or why it could not be
//! read, as `kubectl version` does. A cluster that cannot be reached still exits 3,
//! after the client line.

use serde::Serialize;

use crate::app::{Ctx, Outcome};
use crate::cli::{ReportFormat, VersionArgs};
use crate::error::Result;

/// The plugin's version: Cargo.toml's `version` (build.rs).
pub use crate::VERSION;
/// The commit built, or `unknown` for a build outside git without `MPO_BUILD_COMMIT`.
pub const COMMIT: &str = env!("MPO_BUILD_COMMIT");
/// The commit's date (or `SOURCE_DATE_EPOCH`), RFC 3339 UTC, or `unknown`.
pub const BUILD_DATE: &str = env!("MPO_BUILD_DATE");
/// The Rust target triple the binary was built for.
pub const TARGET: &str = env!("MPO_TARGET");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    commit: &'static str,
    build_date: &'static str,
    target: &'static str,
    /// `linux/amd64`, as kubectl writes a platform.
    platform: String,
    /// The cluster's side, as `kubectl version` shows it (absent with `--client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerInfo>,
    /// Why the cluster's side could not be read (the `error:` line on stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_error: Option<String>,
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

fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `kubectl-mpo 0.1.0 (commit 0123abc…, built 2025-01-02T03:04:05Z, x86_64-unknown-linux-musl)`
fn client_line(info: &VersionInfo) -> String {
    format!(
        "kubectl-mpo {} (commit {}, built {}, {})",
        info.version, info.commit, info.build_date, info.target
    )
}

pub fn run(ctx: &Ctx, args: &VersionArgs) -> Result<Outcome> {
    let mut info = VersionInfo {
        version: VERSION,
        commit: COMMIT,
        build_date: BUILD_DATE,
        target: TARGET,
        platform: platform(),
        server: None,
        server_error: None,
    };
    // The client line goes out before the cluster is asked: it is there even when the
    // cluster never answers.
    if args.output.is_none() {
        ctx.printer.line(client_line(&info));
    }
    let mut failure = None;
    if !args.client {
        let asked = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| {
                crate::error::Error::runtime(format!("cannot start the async runtime: {err}"))
            })
            .and_then(|runtime| runtime.block_on(server(ctx)));
        match asked {
            Ok(server) => info.server = Some(server),
            Err(err) => {
                info.server_error = Some(err.message.clone());
                failure = Some(err);
            }
        }
    }
    match args.output {
        Some(ReportFormat::Json) => ctx.printer.json(&info)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&info)?,
        None => {
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
    match failure {
        Some(err) => Err(err),
        None => Ok(Outcome::Success),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_facts_are_embedded() {
        assert!(!VERSION.is_empty());
        assert!(!COMMIT.is_empty());
        assert!(!TARGET.is_empty(), "build.rs sets the target");
        // Inside a git checkout (the tests run in one) the commit is known and its
        // date is a fixed RFC 3339 UTC time, never the wall clock.
        if COMMIT != "unknown" {
            assert!(COMMIT.len() >= 7, "{COMMIT}");
            assert!(
                BUILD_DATE.len() == 20 && BUILD_DATE.ends_with('Z'),
                "{BUILD_DATE}"
            );
        }
    }

    #[test]
    fn client_line_names_version_commit_date_and_target() {
        let info = VersionInfo {
            version: "1.2.3",
            commit: "abc",
            build_date: "2025-01-02T03:04:05Z",
            target: "x86_64-unknown-linux-musl",
            platform: "linux/amd64".into(),
            server: None,
            server_error: None,
        };
        assert_eq!(
            client_line(&info),
            "kubectl-mpo 1.2.3 (commit abc, built 2025-01-02T03:04:05Z, x86_64-unknown-linux-musl)"
        );
        let json = serde_json::to_value(&info).expect("json");
        assert_eq!(json["buildDate"], "2025-01-02T03:04:05Z");
        assert!(json.get("server").is_none() && json.get("serverError").is_none());
    }
}
