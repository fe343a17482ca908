//! Pieces several commands share: reading one override, printing objects, waiting on a
//! watch, and the state a write should be judged against.

use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;

use super::Ctx;
use crate::cli::OutputFormat;
use crate::cluster::Cluster;
use crate::deckhouse::resources::{ModulePullOverride, MpoVersion};
use crate::error::{Error, Kind, Result};

pub const RESOURCE: &str = "modulepulloverrides.deckhouse.io";
/// Field manager recorded on every write, so `kubectl get --show-managed-fields`
/// tells which fields this tool owns.
pub const FIELD_MANAGER: &str = "kubectl-mpo";

/// The cluster, the served MPO version, and an API handle for it.
pub struct Overrides {
    pub cluster: Cluster,
    pub version: MpoVersion,
    pub api: kube::Api<ModulePullOverride>,
}

impl Overrides {
    pub async fn connect(ctx: &Ctx) -> Result<Self> {
        let cluster = ctx.cluster().await?;
        let version = cluster.mpo_version().await?;
        ctx.printer.debug(
            1,
            format!(
                "using {} on {} (context {:?})",
                version.api_version(),
                cluster.server,
                cluster.context
            ),
        );
        let api = cluster.mpo_api(version);
        Ok(Self {
            cluster,
            version,
            api,
        })
    }

    /// The override, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<ModulePullOverride>> {
        crate::cluster::decode::get_opt(&self.api, name)
            .await
            .map_err(|err| self.cluster.api_error(err, "get", RESOURCE))
    }

    /// The override, or an error that says how to create it.
    pub async fn require(&self, name: &str) -> Result<ModulePullOverride> {
        self.get(name).await?.ok_or_else(|| {
            Error::runtime(format!(
                "modulepulloverride {name:?} not found on {} (context {:?})",
                self.cluster.server, self.cluster.context
            ))
            .with_hint(format!(
                "create it with: kubectl mpo create {name} --tag TAG"
            ))
        })
    }

    /// A JSON merge patch; `dry_run` asks the API server to validate without persisting.
    pub async fn merge_patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
        dry_run: bool,
        verb: &str,
    ) -> Result<ModulePullOverride> {
        match self.guarded_merge_patch(name, patch, dry_run, verb).await? {
            Some(updated) => Ok(updated),
            None => Err(Error::runtime(format!(
                "modulepulloverride {name:?} changed while it was being written"
            ))
            .with_hint("run the command again")),
        }
    }

    /// Like [`Self::merge_patch`], but a patch carrying `metadata.resourceVersion` that
    /// lost a race returns `None` (409 Conflict) so the caller can re-read and decide.
    pub async fn guarded_merge_patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
        dry_run: bool,
        verb: &str,
    ) -> Result<Option<ModulePullOverride>> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            dry_run,
            ..PatchParams::default()
        };
        match self.api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(updated) => Ok(Some(updated)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(err) => Err(self.cluster.api_error(err, verb, RESOURCE)),
        }
    }
}

/// Prints an object as `-o json|yaml|name`; returns false for table-ish formats so
/// the caller prints its own summary.
pub fn print_object(
    ctx: &Ctx,
    object: &ModulePullOverride,
    version: MpoVersion,
    format: Option<OutputFormat>,
) -> Result<bool> {
    let mut object = object.clone();
    object.api_version = Some(version.api_version());
    object.kind = Some(ModulePullOverride::kind(&version).into_owned());
    // Nobody reading an override wants the server's bookkeeping of field owners.
    object.metadata.managed_fields = None;
    match format {
        Some(OutputFormat::Json) => ctx.printer.json(&object)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&object)?,
        Some(OutputFormat::Name) => ctx.printer.line(format!(
            "modulepulloverride.deckhouse.io/{}",
            object.metadata.name.as_deref().unwrap_or_default()
        )),
        Some(OutputFormat::Wide) | None => return Ok(false),
    }
    Ok(true)
}

/// How long a wait rides out a failing watch before it gives up on the API server.
const WATCH_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// What a watched override looks like to a wait predicate.
pub enum Seen<'a> {
    Present(&'a ModulePullOverride),
    Gone,
}

/// Watches one override until `check` returns a value, `timeout` passes (exit 1) or the
/// user presses Ctrl-C. Only reads: interrupting leaves nothing half-written.
pub async fn wait_for<T>(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    timeout: Duration,
    waiting_for: &str,
    mut check: impl FnMut(Seen<'_>) -> Option<T>,
) -> Result<T> {
    let spinner = ctx
        .printer
        .spinner(format!("waiting for {name}: {waiting_for}"));
    let config = watch_config(&overrides.cluster).fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(overrides.api.clone(), config));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut seen_any = false;
    // When the watch started failing; a blip (an API server restart) is ridden out,
    // a server that stays away ends the wait as a runtime failure, not a timeout.
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut deadline => {
                drop(spinner);
                return Err(Error::condition(format!("timed out after {} waiting for {name}: {waiting_for}", humanize(timeout)))
                    .with_hint(format!("see what blocks it with: kubectl mpo explain {name}")));
            }
            _ = tokio::signal::ctrl_c() => {
                drop(spinner);
                return Err(Error::new(Kind::Interrupted, format!("interrupted while waiting for {name}; nothing was changed by the wait")));
            }
            event = events.next() => {
                let event = match event {
                    Some(Ok(event)) => {
                        failing_since = None;
                        event
                    }
                    Some(Err(err)) => {
                        if let Some(error) = final_watch_error(&overrides.cluster, &err) {
                            drop(spinner);
                            return Err(error);
                        }
                        ctx.printer.debug(1, format!("watch of {name} restarted: {err}"));
                        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= WATCH_FAILURE_GRACE {
                            drop(spinner);
                            return Err(Error::runtime(format!(
                                "lost the API server {} while waiting for {name}: {err}",
                                overrides.cluster.place()
                            ))
                            .with_hint(format!(
                                "what was sent before the wait is saved; once the cluster answers, check it with: kubectl mpo status {name}"
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    None => return Err(Error::runtime(format!("the watch of {name} ended unexpectedly"))),
                };
                let found = match &event {
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        seen_any = true;
                        check(Seen::Present(object))
                    }
                    watcher::Event::Delete(_) => check(Seen::Gone),
                    // An empty initial list means the object does not exist (any more).
                    watcher::Event::InitDone if !seen_any => check(Seen::Gone),
                    watcher::Event::Init | watcher::Event::InitDone => None,
                };
                if let Some(value) = found {
                    return Ok(value);
                }
            }
        }
    }
}

/// Watch requests shorter than the client's read timeout (`--request-timeout`), so a
/// quiet object does not look like a dead connection.
pub fn watch_config(cluster: &Cluster) -> watcher::Config {
    let watch_secs = cluster
        .request_timeout
        .map_or(290, |t| t.as_secs().saturating_sub(2).clamp(1, 290)) as u32;
    watcher::Config::default().timeout(watch_secs)
}

/// A watch failure that retrying cannot mend, as the error to report at once: a 401
/// or 403 (expired credentials, revoked RBAC) with the usual message, or an answer
/// that does not decode. `None` for failures worth riding out (a restarting server).
pub fn final_watch_error(cluster: &Cluster, err: &watcher::Error) -> Option<Error> {
    let (inner, verb) = match err {
        watcher::Error::InitialListFailed(inner) => (inner, "list"),
        watcher::Error::WatchStartFailed(inner) | watcher::Error::WatchFailed(inner) => {
            (inner, "watch")
        }
        watcher::Error::WatchError(status) => {
            return matches!(status.code, 401 | 403)
                .then(|| cluster.api_error(kube::Error::Api(status.clone()), "watch", RESOURCE));
        }
        _ => return None,
    };
    match inner {
        kube::Error::Api(status) if matches!(status.code, 401 | 403) => {
            Some(cluster.api_error(kube::Error::Api(status.clone()), verb, RESOURCE))
        }
        kube::Error::SerdeError(decode) => {
            let copy = <serde_json::Error as serde::de::Error>::custom(decode);
            Some(cluster.api_error(kube::Error::SerdeError(copy), verb, RESOURCE))
        }
        _ => None,
    }
}

/// `90s` → `1m30s`, as users write durations.
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Whether a status message means the override works.
pub fn is_ready(object: &ModulePullOverride) -> bool {
    object.message() == Some("Ready")
}
