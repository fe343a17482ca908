//! Following a deploy through to the module (deckhouse-real §4 "Runs"): after the
//! override is Ready with the expected digest, Deckhouse restarts with a new Pod and
//! runs the module; `--wait` ends when it runs, or early when it cannot.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::logs;
use super::wait;
use super::{Ctx, Outcome};
use crate::cluster::Cluster;
use crate::deckhouse::health::{ModuleHealth, RunVerdict, Stage, judge};
use crate::deckhouse::resources::{Module, ModuleConfig, ModulePullOverride};
use crate::error::{Error, Kind, Result};
use crate::output::{To, Tone, humanize, inline};

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

/// The first stage, when a `--wait` that follows the module starts: the controller
/// checks the override.
pub fn announce_checking(ctx: &Ctx, name: &str, wait: &super::wait::Plan) {
    if wait.follow_module {
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

/// What the module watch has seen: one update of the Module, its ModuleConfig, or a
/// deckhouse Pod.
enum Seen {
    Module(Option<Module>),
    Config(Option<ModuleConfig>),
    /// A deckhouse Pod started (not deleting): when.
    Pod(Option<jiff::Timestamp>),
    ModuleWatchFailed(kube::runtime::watcher::Error),
}

/// After the override's Ready (`object`), waits until the module runs or fails.
/// `expect_restart`: a deploy happened, so the Module's status is only an answer once
/// Deckhouse has started again. The Module, its ModuleConfig and the deckhouse Pods are
/// watched (kube-runtime watchers, riding out an API server restart): every change is
/// judged as it arrives. The ModuleConfig and the Pods may not be readable; the wait
/// then goes on without them.
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
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // `checking` was shown when the wait began; the controller's Ready says it has
    // downloaded the image (the download itself writes no status, deckhouse-real §3.11).
    let mut shown = Some(Stage::Checking);
    show_stage(ctx, &name, Stage::Downloading, &mut shown);
    let mut seen_starting = !expect_restart;

    let config = wait::watch_config(cluster);
    let modules =
        wait::watch_object(cluster.modules(), &name, config.clone()).map(|seen| match seen {
            Ok(module) => Seen::Module(module),
            Err(err) => Seen::ModuleWatchFailed(err),
        });
    // Not readable (a developer's role): no settings errors, as `None`.
    let configs = wait::watch_object(cluster.module_configs(), &name, config.clone())
        .map(|seen| Seen::Config(seen.ok().flatten()));
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), logs::NAMESPACE);
    let pods = watcher(pods, config.labels(logs::SELECTOR))
        .backoff(wait::RideOut::new(wait::WATCH_FAILURE_GRACE))
        .applied_objects()
        .filter_map(|pod| {
            futures::future::ready(pod.ok().map(|pod| {
                let started = pod
                    .metadata
                    .creation_timestamp
                    .filter(|_| pod.metadata.deletion_timestamp.is_none())
                    .map(|created| created.0);
                Seen::Pod(started)
            }))
        });
    let mut updates = std::pin::pin!(futures::stream::select(
        futures::stream::select(modules, configs),
        pods
    ));
    let mut module: Option<Option<Module>> = None;
    let mut module_config: Option<ModuleConfig> = None;
    let mut config_known = false;
    let mut last_failure = None;
    let mut phase = None;
    loop {
        let update = tokio::select! {
            update = updates.next() => update,
            _ = &mut deadline => {
                return Err(Error::condition(format!(
                    "timed out after {} waiting for module {name} to run {tag} (phase {})",
                    humanize(timeout),
                    phase.as_deref().unwrap_or("unknown")
                ))
                .with_hint(format!(
                    "see its health with: kubectl mpo explain {name}; its log with: kubectl mpo logs {name}"
                )));
            }
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::new(Kind::Interrupted, format!("interrupted while waiting for module {name}; nothing was changed by the wait")));
            }
        };
        match update {
            Some(Seen::Module(seen)) => {
                last_failure = None;
                module = Some(seen);
            }
            Some(Seen::Config(seen)) => {
                config_known = true;
                module_config = seen;
            }
            Some(Seen::Pod(started)) => {
                let since = deployed_at.map(|at| at.round(jiff::Unit::Second).unwrap_or(at));
                if started
                    .zip(since)
                    .is_some_and(|(started, since)| started >= since)
                {
                    seen_starting = true;
                }
            }
            Some(Seen::ModuleWatchFailed(err)) => {
                last_failure = Some(wait::ride_out(
                    ctx,
                    cluster,
                    &format!("module {name}"),
                    err,
                )?);
                continue;
            }
            None => {
                return Err(wait::lost_api_server(
                    cluster,
                    &format!("waiting for module {name}"),
                    last_failure,
                ));
            }
        }
        // Judged once the Module and its ModuleConfig (or that it cannot be read) are in.
        let Some(current) = &module else { continue };
        if !config_known {
            continue;
        }
        let Some(current) = current else {
            return Err(Error::condition(format!(
                "module {name:?} disappeared while waiting for it to run"
            )));
        };
        let health = ModuleHealth::of(current, module_config.as_ref());
        phase.clone_from(&health.phase);
        if matches!(health.phase.as_deref(), Some("Installing" | "Reconciling")) {
            seen_starting = true;
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
