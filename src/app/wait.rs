//! Waiting on the controller: one watch-based wait ([`wait_for`]) and small named
//! conditions on the watched override, each unit-tested on literal objects (the shape
//! of kube-runtime's `wait::conditions`). A condition sees `None` once the override is
//! gone.

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::wait::Condition;
use kube::runtime::watcher;

use super::Ctx;
use super::Outcome;
use super::diagnose;
use super::overrides::{Overrides, RESOURCE};
use crate::cluster::Cluster;
use crate::deckhouse::checks::is_ready;
use crate::deckhouse::resources::{ModulePullOverride, RENEW_ANNOTATION};
use crate::error::{Error, Kind, Result};
use crate::output::{To, Tone, humanize};

/// What a `--wait` asks for, as the command decided it from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The whole wait's budget, counted from when the write was sent.
    pub timeout: Duration,
    /// Follow a Ready override on to the module running (`--wait-for=module`).
    pub follow_module: bool,
}

/// How long a wait rides out a failing watch before it gives up on the API server.
pub const WATCH_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// The controller has judged the override: a message (gen B–D), or gen A's empty
/// message with a digest.
pub fn has_verdict(object: Option<&ModulePullOverride>) -> bool {
    object.is_none_or(|o| o.message().is_some_and(|m| !m.is_empty()) || is_ready(o))
}

/// The controller has written status since `before` (a new digest, message or
/// `updatedAt`) and that status is a verdict.
pub fn new_verdict_since(
    before: &ModulePullOverride,
) -> impl Fn(Option<&ModulePullOverride>) -> bool + use<> {
    let baseline = before.status.clone().unwrap_or_default();
    move |object| {
        let Some(object) = object else {
            return true;
        };
        let status = object.status.clone().unwrap_or_default();
        let reacted = status.image_digest != baseline.image_digest
            || status.message != baseline.message
            || status.updated_at != baseline.updated_at;
        reacted && has_verdict(Some(object))
    }
}

/// The controller's verdict on the spec an edit sent: new status (as
/// [`new_verdict_since`]) that is about `tag`. Deckhouse writes no
/// `observedGeneration` (docs/deckhouse-real.md), so an answer to the previous spec that
/// lands after the patch is told apart by what it names: a message that names the
/// module with another tag (`…/echo:old-tag: …`), or Ready with a digest that is not
/// the one the registry has for `tag` (`expected`, when the registry was read).
pub fn new_verdict_on(
    before: &ModulePullOverride,
    tag: &str,
    expected: Vec<String>,
) -> impl Fn(Option<&ModulePullOverride>) -> bool + use<> {
    let reacted = new_verdict_since(before);
    let name = before.metadata.name.clone().unwrap_or_default();
    let tag = tag.to_string();
    move |object| {
        if !reacted(object) {
            return false;
        }
        let Some(object) = object else {
            return true;
        };
        if is_ready(object) {
            return expected.is_empty()
                || object
                    .image_digest()
                    .is_some_and(|digest| expected.iter().any(|e| e == digest));
        }
        let message = object.message().unwrap_or_default();
        tags_named(message, &name).iter().all(|named| *named == tag)
    }
}

/// The tags a controller message names for module `name` (`…/NAME:TAG`).
fn tags_named<'m>(message: &'m str, name: &str) -> Vec<&'m str> {
    let marker = format!("/{name}:");
    message
        .match_indices(&marker)
        .map(|(at, _)| {
            let rest = &message[at + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|tag| !tag.is_empty())
        .collect()
}

/// The controller has reacted to a renew. When the registry has a new image
/// (`new_image_expected`), only that image or a new problem is the answer; otherwise
/// any status write, or the removal of the renew annotation after a forced redeploy.
pub fn renew_reacted(
    before: &ModulePullOverride,
    new_image_expected: bool,
) -> impl Fn(Option<&ModulePullOverride>) -> bool + use<> {
    let old = before.status.clone().unwrap_or_default();
    move |object| {
        let Some(object) = object else {
            return true;
        };
        let status = object.status.clone().unwrap_or_default();
        if new_image_expected {
            return status.image_digest != old.image_digest
                || (status.message != old.message && !is_ready(object));
        }
        let changed = status.updated_at != old.updated_at
            || status.image_digest != old.image_digest
            || status.message != old.message;
        let consumed = !object
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(RENEW_ANNOTATION));
        changed || consumed
    }
}

/// The error for an override deleted while a command waited for its verdict.
pub fn deleted_while_waiting(name: &str) -> Error {
    Error::condition(format!(
        "modulepulloverride {name:?} was deleted while waiting"
    ))
}

/// Watches one override until `condition` holds (the object, or `None` when it is
/// gone), `timeout` passes (exit 1) or the user presses Ctrl-C. Only reads:
/// interrupting leaves nothing half-written. Conditions are kube-runtime's
/// [`Condition`]s (`conditions::is_deleted(uid)`, or the ones above).
pub async fn wait_for(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    timeout: Duration,
    waiting_for: &str,
    condition: impl Condition<ModulePullOverride>,
) -> Result<Option<ModulePullOverride>> {
    let spinner = ctx
        .printer
        .spinner(format!("waiting for {name}: {waiting_for}"));
    let config = watch_config(&overrides.cluster);
    let mut objects = std::pin::pin!(watch_object(overrides.api.clone(), name, config));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // The last failure of the watch: a blip (an API server restart) is ridden out by
    // the backoff, a server that stays away ends the wait as a runtime failure.
    let mut last_failure: Option<watcher::Error> = None;
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
            next = objects.next() => match next {
                Some(Ok(seen)) => {
                    last_failure = None;
                    if condition.matches_object(seen.as_ref()) {
                        return Ok(seen);
                    }
                }
                Some(Err(err)) => match ride_out(ctx, &overrides.cluster, name, err) {
                    Ok(err) => last_failure = Some(err),
                    Err(error) => {
                        drop(spinner);
                        return Err(error);
                    }
                },
                None => {
                    drop(spinner);
                    return Err(lost_api_server(&overrides.cluster, &format!("waiting for {name}"), last_failure)
                        .with_hint(format!("what was sent before the wait is saved; once the cluster answers, check it with: kubectl mpo status {name}")));
                }
            }
        }
    }
}

/// A failed watch: the error to end with at once when retrying cannot mend it
/// ([`final_watch_error`]), else the failure, noted at `-v`, for the backoff to ride
/// out (`watching` says what, for the note).
pub fn ride_out(
    ctx: &Ctx,
    cluster: &Cluster,
    watching: &str,
    err: watcher::Error,
) -> Result<watcher::Error> {
    if let Some(error) = final_watch_error(cluster, &err) {
        return Err(error);
    }
    ctx.printer
        .debug(1, format!("watch of {watching} restarted: {err}"));
    Ok(err)
}

/// The error for a watch the backoff gave up on, `doing` what (`waiting for echo`).
pub fn lost_api_server(cluster: &Cluster, doing: &str, failure: Option<watcher::Error>) -> Error {
    let error = Error::runtime(format!(
        "lost the API server {} while {doing}{}",
        cluster.place(),
        failure
            .as_ref()
            .map(|err| format!(": {err}"))
            .unwrap_or_default()
    ));
    match failure {
        Some(err) => error.with_source(err),
        None => error,
    }
}

/// One object's watch, as kube-runtime's `watch_object` gives it: the object on every
/// change, `None` when it is deleted or when a list (the first, or a re-list after the
/// watch fell too far behind) no longer has it. Unlike `watch_object` it takes the
/// watch config (timeouts that fit `--request-timeout`) and rides out failures with
/// [`RideOut`], closing once the API server has been away for [`WATCH_FAILURE_GRACE`].
pub fn watch_object<K>(
    api: kube::Api<K>,
    name: &str,
    config: watcher::Config,
) -> impl futures::Stream<Item = std::result::Result<Option<K>, watcher::Error>> + Send + use<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = config.fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .backoff(RideOut::new(WATCH_FAILURE_GRACE))
        // Whether the object was in the list being read: reset on every Init, so that
        // a re-list without it reports it gone.
        .scan(false, |seen, event| {
            match &event {
                Ok(watcher::Event::Init) => *seen = false,
                Ok(watcher::Event::InitApply(_)) => *seen = true,
                _ => {}
            }
            futures::future::ready(Some((*seen, event)))
        })
        .filter_map(|(seen, event)| {
            futures::future::ready(match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    Some(Ok(Some(object)))
                }
                Ok(watcher::Event::Delete(_)) => Some(Ok(None)),
                Ok(watcher::Event::InitDone) if !seen => Some(Ok(None)),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(err) => Some(Err(err)),
            })
        })
}

/// kube-runtime's default watch backoff (client-go's parameters), which gives up once
/// the watch has failed without a break for `grace`: a restarting API server is ridden
/// out, one that stays away closes the stream. Any event resets it.
pub struct RideOut {
    inner: watcher::DefaultBackoff,
    grace: Duration,
    failing_since: Option<std::time::Instant>,
}

impl RideOut {
    pub fn new(grace: Duration) -> Self {
        RideOut {
            inner: watcher::DefaultBackoff::default(),
            grace,
            failing_since: None,
        }
    }
}

impl Iterator for RideOut {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let since = *self
            .failing_since
            .get_or_insert_with(std::time::Instant::now);
        let left = self.grace.checked_sub(since.elapsed())?;
        if left.is_zero() {
            return None;
        }
        self.inner.next().map(|delay| delay.min(left))
    }
}

impl kube::runtime::utils::Backoff for RideOut {
    fn reset(&mut self) {
        self.failing_since = None;
        self.inner.reset();
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

/// Reports the controller's verdict on `to`: Ready with the digest, or the conflict
/// with the failing checks and the fix. With `-o json|yaml|name` the verdict goes to
/// stderr so that stdout stays machine-readable.
pub async fn report_verdict(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    object: &ModulePullOverride,
    to: To,
) -> Result<Outcome> {
    report_verdict_after_checks(ctx, overrides, name, object, to, false).await
}

/// [`report_verdict`], where `explained` says the failing checks were printed already
/// (`create --force`), so that a conflict only names the controller's message.
pub async fn report_verdict_after_checks(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    object: &ModulePullOverride,
    to: To,
    explained: bool,
) -> Result<Outcome> {
    if is_ready(object) {
        let digest = object
            .image_digest()
            .map_or_else(|| "<none>".to_string(), |d| ctx.printer.digest_on(to, d));
        ctx.printer.line_to(
            to,
            format!(
                "{} {name} runs {}@{digest}",
                ctx.printer.paint("Ready:", Tone::Good),
                object.spec.image_tag
            ),
        );
        return Ok(Outcome::Success);
    }
    ctx.printer.line_to(
        to,
        format!(
            "{} {name}: {}",
            ctx.printer.paint("Conflict:", Tone::Bad),
            object.message().unwrap_or_default()
        ),
    );
    if !explained {
        diagnose::explain_failure(ctx, overrides, object).await;
    }
    Ok(Outcome::ConditionFailed)
}

/// Whether the controller deployed between `before` (`None`: a new override) and
/// `after`: a new digest, or a status write on a Ready override (gen D's forced
/// redeploy). A deploy restarts Deckhouse (deckhouse-real §4).
pub fn deployed_since(before: Option<&ModulePullOverride>, after: &ModulePullOverride) -> bool {
    before.is_none_or(|before| {
        before.image_digest() != after.image_digest() || before.updated_at() != after.updated_at()
    })
}

/// Reports the verdict and, with `--wait-for=module` (the default), follows a Ready
/// override through to the module: it runs, or the wait stops early with why.
pub async fn report_and_follow(
    ctx: &Ctx,
    overrides: &Overrides,
    before: Option<&ModulePullOverride>,
    settled: &ModulePullOverride,
    to: To,
    wait: &Plan,
    started: tokio::time::Instant,
) -> Result<Outcome> {
    report_and_follow_after_checks(ctx, overrides, before, settled, to, wait, started, false).await
}

/// [`report_and_follow`], where `explained` says the failing checks were printed already
/// (`create --force`).
#[allow(clippy::too_many_arguments)]
pub async fn report_and_follow_after_checks(
    ctx: &Ctx,
    overrides: &Overrides,
    before: Option<&ModulePullOverride>,
    settled: &ModulePullOverride,
    to: To,
    wait: &Plan,
    started: tokio::time::Instant,
    explained: bool,
) -> Result<Outcome> {
    let name = settled.metadata.name.as_deref().unwrap_or_default();
    let outcome = report_verdict_after_checks(ctx, overrides, name, settled, to, explained).await?;
    if outcome != Outcome::Success || !wait.follow_module || !is_ready(settled) {
        return Ok(outcome);
    }
    let remaining = wait.timeout.saturating_sub(started.elapsed());
    super::health::follow_module(
        ctx,
        &overrides.cluster,
        settled,
        deployed_since(before, settled),
        remaining,
        to,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deckhouse::resources::MpoStatus;

    fn with_status(message: &str, digest: Option<&str>, updated: &str) -> ModulePullOverride {
        ModulePullOverride {
            status: Some(MpoStatus {
                message: Some(message.into()),
                image_digest: digest.map(str::to_string),
                updated_at: Some(updated.into()),
                weight: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_verdict_is_a_message_or_gen_a_success() {
        assert!(!has_verdict(Some(&ModulePullOverride::default())));
        assert!(has_verdict(Some(&with_status(
            "The module disabled",
            None,
            "t1"
        ))));
        assert!(has_verdict(Some(&with_status("", Some("sha256:a"), "t1"))));
        assert!(!has_verdict(Some(&with_status("", None, "t1"))));
        assert!(has_verdict(None));
    }

    #[test]
    fn an_edit_is_judged_only_by_status_written_after_it() {
        let before = with_status("Ready", Some("sha256:a"), "t1");
        let condition = new_verdict_since(&before);
        assert!(!condition(Some(&before)));
        assert!(condition(Some(&with_status(
            "Ready",
            Some("sha256:a"),
            "t2"
        ))));
        assert!(condition(Some(&with_status(
            "Download error: x",
            Some("sha256:a"),
            "t1"
        ))));
        assert!(condition(None));
    }

    #[test]
    fn an_edit_is_judged_by_the_verdict_on_the_tag_it_sent() {
        let mut before = with_status("Ready", Some("sha256:a"), "t1");
        before.metadata.name = Some("echo".into());
        let condition = new_verdict_on(&before, "v2", vec!["sha256:b".into()]);
        let mut stale = with_status(
            "Download error: fetch the image digest 127.0.0.1:5000/m/echo:nosuch: manifest unknown",
            Some("sha256:a"),
            "t2",
        );
        stale.metadata.name = Some("echo".into());
        assert!(!condition(Some(&stale)), "the answer to the previous tag");
        assert!(
            !condition(Some(&with_status("Ready", Some("sha256:a"), "t2"))),
            "Ready on the old digest"
        );
        assert!(condition(Some(&with_status(
            "Ready",
            Some("sha256:b"),
            "t2"
        ))));
        let mut refused = stale.clone();
        refused.status.as_mut().unwrap().message =
            Some("Download error: fetch 127.0.0.1:5000/m/echo:v2: denied".into());
        assert!(condition(Some(&refused)), "a verdict on the new tag");
        assert!(condition(None));
    }

    #[test]
    fn a_renew_expecting_a_new_image_waits_for_it() {
        let before = with_status("Ready", Some("sha256:a"), "t1");
        let expecting = renew_reacted(&before, true);
        // A re-check that wrote only updatedAt is not the answer yet.
        assert!(!expecting(Some(&with_status(
            "Ready",
            Some("sha256:a"),
            "t2"
        ))));
        assert!(expecting(Some(&with_status(
            "Ready",
            Some("sha256:b"),
            "t2"
        ))));
        assert!(expecting(Some(&with_status(
            "Download error: x",
            Some("sha256:a"),
            "t2"
        ))));
        let quiet = renew_reacted(&before, false);
        assert!(quiet(Some(&with_status("Ready", Some("sha256:a"), "t2"))));
        let mut annotated = before.clone();
        annotated.metadata.annotations =
            Some([(RENEW_ANNOTATION.to_string(), "true".to_string())].into());
        assert!(!quiet(Some(&annotated)));
        assert!(
            quiet(Some(&before)),
            "renew annotation removed: a forced redeploy finished"
        );
    }

    #[test]
    fn a_deploy_is_a_new_digest_or_a_new_status_write() {
        let before = with_status("Ready", Some("sha256:a"), "t1");
        assert!(deployed_since(None, &before));
        assert!(!deployed_since(Some(&before), &before));
        assert!(deployed_since(
            Some(&before),
            &with_status("Ready", Some("sha256:b"), "t1")
        ));
        assert!(deployed_since(
            Some(&before),
            &with_status("Ready", Some("sha256:a"), "t2")
        ));
    }

    #[test]
    fn ride_out_backs_off_within_the_grace_and_starts_again_after_an_event() {
        use kube::runtime::utils::Backoff;
        let mut backoff = RideOut::new(Duration::from_millis(300));
        let first = backoff.next().expect("a first delay");
        assert!(first <= Duration::from_millis(300), "{first:?}");
        std::thread::sleep(Duration::from_millis(320));
        assert_eq!(backoff.next(), None, "given up once the grace is spent");
        backoff.reset();
        assert!(backoff.next().is_some(), "an event starts a new grace");
    }
}
