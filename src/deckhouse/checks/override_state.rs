//! An existing override judged against the checks and the registry: its step, the
//! failing deploy a Ready status hides, the source's lag, a stale renew key, the sync
//! state, the predicted message and whether the written one is stale.

use super::*;

/// The override itself, judged against what the checks and the registry say: Ready and
/// current, Ready but behind, stale, or rejected by Deckhouse.
pub fn override_step(
    name: &str,
    mpo: &ModulePullOverride,
    sync: SyncState,
    registry_digest: Option<&str>,
    stale: Option<&str>,
) -> Step {
    let message = mpo.message().unwrap_or("<no status yet>");
    let cluster_digest = mpo.image_digest().unwrap_or("<none>");
    let mut summary = format!("override {}: \"{message}\"", mpo.spec.image_tag);
    if let Some(digest) = mpo.image_digest() {
        summary.push_str(&format!(", cluster runs {digest}"));
    }
    if let Some(updated) = mpo.updated_at() {
        summary.push_str(&format!(" (status written at {updated})"));
    }
    let step = Step::passed(StepId::Override, summary);
    if let Some(stale) = stale {
        return Step {
            state: StepState::Warning,
            ..step
        }
        .because(stale)
        .fix(format!("kubectl mpo renew {name} --check-only --wait"));
    }
    match (is_ready(mpo), sync) {
        (true, SyncState::Behind) => Step {
            state: StepState::Warning,
            summary: format!(
                "override: Ready, but the cluster runs {cluster_digest} and the registry has {}",
                registry_digest.unwrap_or("?")
            ),
            ..step
        }
        .because(format!(
            "a newer build was pushed; the controller notices at its next scan (scanInterval {})",
            mpo.spec.scan_interval.as_deref().unwrap_or("15s")
        ))
        .fix(format!("kubectl mpo renew {name} --check-only --wait"))
        .fix(format!(
            "kubectl mpo diff {name} --content    # what changed"
        )),
        (true, _) => step,
        (false, _) if message.starts_with("Validation error") => Step {
            state: StepState::Failed,
            ..step
        }
        .because("the image was downloaded but Deckhouse rejected its content")
        .fix(format!(
            "kubectl mpo registry files {name}:{}    # inspect the image",
            mpo.spec.image_tag
        )),
        (false, _) => Step {
            state: StepState::Failed,
            ..step
        }
        .because(format!("the controller reports \"{message}\"")),
    }
}

/// A Ready override still behind a registry image built longer ago than one scan
/// interval (and a minute): if the image was pushed when it was built, the controller
/// has seen the new digest, and a deploy whose download or install fails writes no
/// status (docs/deckhouse-real.md §3.11), so "Ready" stays on the old image. A warning,
/// not a verdict: an image can be pushed long after it was built. `built`: the image's
/// `created` (RFC 3339); reproducible builds' epoch dates say nothing and are skipped.
pub fn failing_deploy(
    name: &str,
    mpo: &ModulePullOverride,
    sync: SyncState,
    built: Option<&str>,
    now: jiff::Timestamp,
) -> Option<Step> {
    if sync != SyncState::Behind || !is_ready(mpo) {
        return None;
    }
    let interval_text = mpo.spec.scan_interval.as_deref().unwrap_or("15s");
    let interval = crate::validate::scan_interval(interval_text).ok()?;
    let built_at: jiff::Timestamp = built?.parse().ok()?;
    if built_at.as_second() < 946_684_800 {
        return None;
    }
    let waited = now.duration_since(built_at);
    let limit =
        jiff::SignedDuration::try_from(interval).ok()? + jiff::SignedDuration::from_secs(60);
    if waited <= limit {
        return None;
    }
    let summary = format!(
        "the registry's image of {} was built {} ago and the cluster still runs the old one",
        mpo.spec.image_tag,
        crate::output::humanize(waited.unsigned_abs())
    );
    Some(
        Step {
            state: StepState::Warning,
            ..Step::passed(StepId::Deploy, summary)
        }
        .because(format!(
            "if it was pushed then, the controller (scanning every {interval_text}) has seen it: a deploy whose download or install fails writes no status, and the override keeps saying Ready on the old image"
        ))
        .fix(format!("kubectl mpo logs {name} --level error    # why the deploy fails"))
        .fix(format!("kubectl mpo renew {name} --check-only --wait    # try again and follow it")),
    )
}

/// The ModuleSource's `overridden` flag lags the override by up to one rescan
/// (3 minutes, docs/deckhouse-real.md §3.16): said, so that nobody chases it.
pub fn source_lag_note(source: &ModuleSource, name: &str) -> Option<Step> {
    let listed = source
        .status
        .as_ref()?
        .modules
        .iter()
        .find(|m| m.name == name)?;
    if listed.overridden {
        return None;
    }
    Some(Step::passed(
        StepId::SourceStatus,
        format!(
            "ModuleSource {} does not show {name} as overridden yet (it rescans every 3 minutes; harmless)",
            source.metadata.name.as_deref().unwrap_or_default()
        ),
    ))
}

/// A `modules.deckhouse.io/renew` key left on an override where nothing removes it
/// (docs/deckhouse-real.md §3.2): gen A–C never remove it (A and B ignore it), and after
/// an upgrade to gen D it forces a redeploy and a Deckhouse restart. On a cluster that
/// may be gen D, a key still there on a Ready override (gen D removes it after the
/// redeploy) is most likely gen C's. `generation`: as `generation::detect` says it.
pub fn stale_renew_key(name: &str, mpo: &ModulePullOverride, generation: &str) -> Option<Step> {
    let key = mpo
        .metadata
        .annotations
        .as_ref()?
        .get(crate::deckhouse::resources::RENEW_ANNOTATION)?;
    let certain = matches!(generation, "A" | "B");
    if !certain && !is_ready(mpo) {
        // Gen D may still be redeploying.
        return None;
    }
    let who = if certain {
        format!("this controller (gen {generation}) ignores it and never removes it")
    } else {
        "gen D removes it once it has redeployed, so on a Ready override it is most likely left on gen C, which never removes it".to_string()
    };
    Some(
        Step {
            state: StepState::Warning,
            ..Step::passed(
                StepId::RenewKey,
                format!(
                    "the override carries {}={key:?}, left from an earlier renew",
                    crate::deckhouse::resources::RENEW_ANNOTATION
                ),
            )
        }
        .because(format!(
            "{who}; after an upgrade to gen D it forces a redeploy of the unchanged image and a Deckhouse restart"
        ))
        .fix(format!(
            "kubectl annotate modulepulloverride {name} {}-",
            crate::deckhouse::resources::RENEW_ANNOTATION
        )),
    )
}

/// How the cluster's digest relates to the registry's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    InSync,
    Behind,
    Unknown,
}

impl SyncState {
    pub fn of(cluster: Option<&str>, registry: Option<&str>) -> Self {
        match (cluster, registry) {
            (Some(cluster), Some(registry)) if cluster == registry => SyncState::InSync,
            (Some(_), Some(_)) => SyncState::Behind,
            _ => SyncState::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SyncState::InSync => "in sync",
            SyncState::Behind => "behind",
            SyncState::Unknown => "unknown",
        }
    }
}

/// The controller message the steps predict (first failure), `Ready` when all passed.
pub fn predicted_message(steps: &[Step]) -> Option<String> {
    for step in steps {
        match step.state {
            StepState::Failed => return step.controller_message.clone(),
            StepState::Unknown => return None,
            StepState::Passed | StepState::Warning => {}
        }
    }
    Some(MSG_READY.to_string())
}

/// Whether the override's `status.message` disagrees with what the checks predict, and why.
pub fn staleness(mpo: &ModulePullOverride, predicted: Option<&str>) -> Option<String> {
    let current = mpo.status.as_ref()?.message.as_deref().unwrap_or_default();
    let predicted = predicted?;
    let same_kind = current == predicted
        || (predicted == MSG_DOWNLOAD_ERROR && current.starts_with("Download error"))
        || (predicted == MSG_READY && current.is_empty());
    if same_kind {
        return None;
    }
    Some(format!(
        "status.message says {current:?} but the checks now predict {predicted:?}: the controller \
         re-checks a blocked override only every 60 s (or after scanInterval) and is not woken by \
         Module, ModuleConfig or ModuleSource changes"
    ))
}
