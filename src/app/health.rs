//! Following a deploy through to the module (deckhouse-real §4 "Runs"): after the
//! override is Ready with the expected digest, Deckhouse restarts with a new Pod and
//! runs the module; `--wait` ends when it runs, or early when it cannot.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::logs;
use super::{Ctx, Outcome};
use crate::cluster::Cluster;
use crate::deckhouse::health::{ModuleHealth, RunVerdict, Stage, judge};
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Kind, Result};
use crate::output::{To, Tone, humanize, inline};

/// How often the module is looked at while it starts (`--wait` answers within it).
const POLL: Duration = Duration::from_millis(150);

/// The Module's health now; `None` when there is no Module.
pub async fn module_health(cluster: &Cluster, name: &str) -> Result<Option<ModuleHealth>> {
    let module = cluster
        .modules()
        .get_opt(name)
        .await
        .map_err(|err| cluster.api_error(err, "get", "modules.deckhouse.io"))?;
    let Some(module) = module else {
        return Ok(None);
    };
    // Settings errors live on the ModuleConfig, which a developer may not read.
    let config = cluster.module_configs().get_opt(name).await.ok().flatten();
    Ok(Some(ModuleHealth::of(&module, config.as_ref())))
}

/// Whether a deckhouse Pod started at or after `since` (Deckhouse restarted); `None`
/// when Pods cannot be read.
async fn restarted_since(cluster: &Cluster, since: Option<jiff::Timestamp>) -> Option<bool> {
    let since = since?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), logs::NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(logs::SELECTOR))
        .await
        .ok()?;
    Some(list.items.iter().any(|pod| {
        pod.metadata.deletion_timestamp.is_none()
            && pod
                .metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|created| {
                    created.0 >= since.round(jiff::Unit::Second).unwrap_or(since)
                })
    }))
}

/// The first stage, when a `--wait` that follows the module starts: the controller
/// checks the override.
pub fn announce_checking(ctx: &Ctx, name: &str, wait: &crate::cli::WaitArgs) {
    if wait.wait && wait.wait_for == crate::cli::WaitFor::Module {
        show_checking(ctx, name);
    }
}

pub fn show_checking(ctx: &Ctx, name: &str) {
    show_stage(ctx, name, Stage::Checking, &mut None);
}

/// Prints a stage when it changes: a line on a terminal, a `-v` note elsewhere. A
/// deploy passes through every stage in order; one that went by between two polls is
/// still shown, before the stage the wait saw.
fn show_stage(ctx: &Ctx, name: &str, stage: Stage, shown: &mut Option<Stage>) {
    const ORDER: [Stage; 5] = [
        Stage::Checking,
        Stage::Downloading,
        Stage::Installing,
        Stage::Restarting,
        Stage::Running,
    ];
    if *shown == Some(stage) {
        return;
    }
    let passed: Vec<Stage> = match *shown {
        Some(last) if last < stage => ORDER
            .iter()
            .copied()
            .filter(|s| *s > last && *s <= stage)
            .collect(),
        _ => vec![stage],
    };
    *shown = Some(stage);
    for stage in passed {
        let text = format!("{name}: {}", stage.as_str());
        if ctx.printer.interactive() {
            ctx.printer.note(text);
        } else {
            ctx.printer.debug(1, format!("stage: {text}"));
        }
    }
}

/// After the override's Ready (`object`), waits until the module runs or fails.
/// `expect_restart`: a deploy happened, so the Module's status is only an answer once
/// Deckhouse has started again.
pub async fn follow_module(
    ctx: &Ctx,
    cluster: &Cluster,
    object: &ModulePullOverride,
    expect_restart: bool,
    timeout: Duration,
    to: To,
) -> Result<Outcome> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let tag = object.spec.image_tag.clone();
    let deployed_at = object
        .updated_at()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let deadline = tokio::time::Instant::now() + timeout;
    // `checking` was shown when the wait began; the controller's Ready says it has
    // downloaded the image (the download itself writes no status, deckhouse-real §3.11).
    let mut shown = Some(Stage::Checking);
    show_stage(ctx, &name, Stage::Downloading, &mut shown);
    let mut seen_starting = !expect_restart;
    loop {
        let Some(health) = module_health(cluster, &name).await? else {
            return Err(Error::condition(format!(
                "module {name:?} disappeared while waiting for it to run"
            )));
        };
        if matches!(health.phase.as_deref(), Some("Installing" | "Reconciling")) {
            seen_starting = true;
        }
        if !seen_starting {
            seen_starting = restarted_since(cluster, deployed_at).await.unwrap_or(false);
        }
        match judge(&health, &tag, seen_starting) {
            RunVerdict::Running => {
                show_stage(ctx, &name, Stage::Running, &mut shown);
                ctx.printer.line_to(
                    to,
                    format!(
                        "{} module {name} runs {tag} (phase Ready)",
                        ctx.printer.paint("Running:", Tone::Good)
                    ),
                );
                return Ok(Outcome::Success);
            }
            RunVerdict::Failed(why) => {
                report_failure(ctx, cluster, &name, &health, &why, to).await;
                return Ok(Outcome::ConditionFailed);
            }
            RunVerdict::Pending(stage) => show_stage(ctx, &name, stage, &mut shown),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::condition(format!(
                "timed out after {} waiting for module {name} to run {tag} (phase {})",
                humanize(timeout),
                health.phase.as_deref().unwrap_or("unknown")
            ))
            .with_hint(format!(
                "see its health with: kubectl mpo explain {name}; its log with: kubectl mpo logs {name}"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::new(Kind::Interrupted, format!("interrupted while waiting for module {name}; nothing was changed by the wait")));
            }
        }
    }
}

/// The module will not run: the reason, the hook and its error, the last error lines
/// of the log, and the command for the rest.
async fn report_failure(
    ctx: &Ctx,
    cluster: &Cluster,
    name: &str,
    health: &ModuleHealth,
    why: &str,
    to: To,
) {
    let printer = &ctx.printer;
    printer.line_to(
        to,
        format!(
            "{} module {name}: {}",
            printer.paint("Module error:", Tone::Bad),
            inline(why)
        ),
    );
    if let Some(hooks) = &health.hooks_state {
        printer.line_to(to, format!("  hooks: {}", inline(hooks)));
    }
    let errors = logs::last_errors(cluster, name, 5).await;
    if !errors.is_empty() {
        printer.line_to(to, "  last error lines of the deckhouse log:");
        for entry in errors {
            let source = entry
                .hook
                .as_deref()
                .or(entry.module.as_deref())
                .unwrap_or("-");
            printer.line_to(
                to,
                format!(
                    "    {} {} {}",
                    inline(&entry.time),
                    inline(source),
                    inline(&entry.message)
                ),
            );
        }
    }
    printer.line_to(to, format!("  more: kubectl mpo logs {name} --level error"));
    printer.line_to(to, format!("  health: kubectl mpo explain {name}"));
}
