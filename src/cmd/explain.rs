//! `kubectl mpo explain MODULE` (aliases `why`, `doctor`): re-runs the controller's
//! checks and the registry checks, step by step, with the cause and the fix.

use serde::Serialize;

use super::shared::{self, Overrides};
use super::{Ctx, Outcome, inspect};
use crate::cli::{ExplainArgs, OutputFormat};
use crate::deckhouse::diagnosis::{self, Step, StepState, SyncState};
use crate::error::{Error, Result};
use crate::output::{Tone, age_of};
use crate::validate;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OverrideState {
    exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
}

/// `explain -o json|yaml` schema.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    module: String,
    tag: Option<String>,
    #[serde(rename = "override")]
    override_state: OverrideState,
    steps: Vec<Step>,
    predicted_message: Option<String>,
    registry_digest: Option<String>,
    sync: SyncState,
    stale: Option<String>,
    healthy: bool,
}

pub async fn run(ctx: &Ctx, args: ExplainArgs) -> Result<Outcome> {
    validate::module_name(&args.module)?;
    if let Some(tag) = &args.tag {
        validate::image_tag(tag)?;
    }
    if matches!(args.output, Some(OutputFormat::Name | OutputFormat::Wide)) {
        return Err(Error::usage("explain supports -o json or -o yaml"));
    }
    let overrides = Overrides::connect(ctx).await?;
    let name = args.module.as_str();
    let existing = overrides.get(name).await?;
    let tag = args
        .tag
        .clone()
        .or_else(|| existing.as_ref().map(|o| o.spec.image_tag.clone()));

    let spinner = ctx.printer.spinner(format!("checking {name}"));
    let diagnosis = inspect::diagnose(
        &overrides.cluster,
        name,
        tag.as_deref(),
        args.offline,
        inspect::REGISTRY_TIMEOUT,
    )
    .await;
    drop(spinner);
    let diagnosis = diagnosis?;
    let mut steps = diagnosis.steps.clone();
    let registry_digest = diagnosis.registry_digest().map(|d| d.digest.clone());
    let predicted = diagnosis::predicted_message(&steps);

    let mut stale = None;
    let mut sync = SyncState::Unknown;
    if let Some(mpo) = &existing {
        let cluster_digest = mpo.image_digest().map(str::to_string);
        // A --tag other than the override's says nothing about what the cluster runs.
        if tag.as_deref() == Some(mpo.spec.image_tag.as_str()) {
            sync = SyncState::of(cluster_digest.as_deref(), registry_digest.as_deref());
        }
        stale = diagnosis::staleness(mpo, predicted.as_deref());
        steps.push(override_step(
            name,
            mpo,
            sync,
            registry_digest.as_deref(),
            stale.as_deref(),
        ));
        if let Some(note) = source_lag_note(&diagnosis, name) {
            steps.push(note);
        }
    }

    let healthy = !steps.iter().any(|s| s.state == StepState::Failed)
        && existing
            .as_ref()
            .is_none_or(|o| shared::is_ready(o) && sync != SyncState::Behind);

    let report = Report {
        module: name.to_string(),
        tag: tag.clone(),
        override_state: match &existing {
            Some(mpo) => OverrideState {
                exists: true,
                image_tag: Some(mpo.spec.image_tag.clone()),
                message: mpo.message().map(str::to_string),
                image_digest: mpo.image_digest().map(str::to_string),
                updated_at: mpo.updated_at().map(str::to_string),
            },
            None => OverrideState {
                exists: false,
                image_tag: None,
                message: None,
                image_digest: None,
                updated_at: None,
            },
        },
        steps,
        predicted_message: predicted,
        registry_digest,
        sync,
        stale,
        healthy,
    };
    match args.output {
        Some(OutputFormat::Json) => ctx.printer.json(&report)?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&report)?,
        _ => print_report(ctx, &overrides, &report, existing.is_some()),
    }
    Ok(if report.healthy {
        Outcome::Success
    } else {
        Outcome::ConditionFailed
    })
}

fn override_step(
    name: &str,
    mpo: &crate::deckhouse::resources::ModulePullOverride,
    sync: SyncState,
    registry_digest: Option<&str>,
    stale: Option<&str>,
) -> Step {
    let message = mpo.message().unwrap_or("<no status yet>");
    let cluster_digest = mpo.image_digest().unwrap_or("<none>");
    let mut summary = format!("override {}: {message:?}", mpo.spec.image_tag);
    if let Some(digest) = mpo.image_digest() {
        summary.push_str(&format!(", cluster runs {digest}"));
    }
    if mpo.updated_at().is_some() {
        summary.push_str(&format!(" (updated {} ago)", age_of(mpo.updated_at())));
    }
    let mut step = Step {
        id: "override",
        state: StepState::Passed,
        summary,
        cause: None,
        fix: Vec::new(),
        controller_message: None,
    };
    if let Some(stale) = stale {
        step.state = StepState::Warning;
        step.cause = Some(stale.to_string());
        step.fix.push(format!("kubectl mpo renew {name} --wait"));
        return step;
    }
    match (shared::is_ready(mpo), sync) {
        (true, SyncState::Behind) => {
            step.state = StepState::Warning;
            step.summary = format!(
                "override: Ready, but the cluster runs {cluster_digest} and the registry has {}",
                registry_digest.unwrap_or("?")
            );
            step.cause = Some(format!(
                "a newer build was pushed; the controller notices at its next scan (scanInterval {})",
                mpo.spec.scan_interval.as_deref().unwrap_or("15s")
            ));
            step.fix.push(format!("kubectl mpo renew {name} --wait"));
            step.fix.push(format!(
                "kubectl mpo diff {name} --content    # what changed"
            ));
        }
        (true, _) => {}
        (false, _) if message.starts_with("Validation error") => {
            step.state = StepState::Failed;
            step.cause = Some("the image was downloaded but Deckhouse rejected its content".into());
            step.fix.push(format!(
                "kubectl mpo registry files {name}:{}    # inspect the image",
                mpo.spec.image_tag
            ));
        }
        (false, _) => {
            step.state = StepState::Failed;
            step.cause = Some("see the failed check above".into());
        }
    }
    step
}

/// The ModuleSource's `overridden` flag lags the MPO by up to one rescan (3 minutes).
fn source_lag_note(diagnosis: &inspect::Diagnosis, name: &str) -> Option<Step> {
    let source = diagnosis.source.as_ref()?;
    let listed = source
        .status
        .as_ref()?
        .modules
        .iter()
        .find(|m| m.name == name)?;
    if listed.overridden {
        return None;
    }
    Some(Step {
        id: "source-status",
        state: StepState::Passed,
        summary: format!(
            "ModuleSource {} does not show {name} as overridden yet (it rescans every 3 minutes; harmless)",
            source.metadata.name.as_deref().unwrap_or_default()
        ),
        cause: None,
        fix: Vec::new(),
        controller_message: None,
    })
}

fn print_report(ctx: &Ctx, overrides: &Overrides, report: &Report, exists: bool) {
    let heading = match (&report.tag, exists) {
        (Some(tag), true) => format!("{} (tag {tag})", report.module),
        (Some(tag), false) => format!("{} (no override yet; checking tag {tag})", report.module),
        (None, _) => format!(
            "{} (no override yet; pass --tag to check the registry too)",
            report.module
        ),
    };
    ctx.printer.line(format!(
        "Checks for {heading} on context {:?}:",
        overrides.cluster.context
    ));
    inspect::print_steps(ctx, &report.steps, false);
    let verdict = if report.healthy {
        match (exists, report.sync) {
            (true, SyncState::InSync) => ctx.printer.paint(
                "OK: the cluster runs the registry's current build",
                Tone::Good,
            ),
            (true, _) => ctx.printer.paint("OK: the override is Ready", Tone::Good),
            (false, _) => ctx
                .printer
                .paint("OK: an override would become Ready", Tone::Good),
        }
    } else {
        let predicted = report.predicted_message.as_deref().unwrap_or("unknown");
        ctx.printer.paint(
            &format!("Problem: expected status.message {predicted:?}"),
            Tone::Bad,
        )
    };
    ctx.printer.line(verdict);
}
