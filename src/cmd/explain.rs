//! `kubectl mpo explain MODULE` (aliases `why`, `doctor`): re-runs the controller's
//! checks and the registry checks, step by step, with the cause and the fix.

use serde::Serialize;

use crate::app::diagnose;
use crate::app::overrides::Overrides;
use crate::app::sources::REGISTRY_TIMEOUT;
use crate::app::{Ctx, Outcome};
use crate::cli::{ExplainArgs, ReportFormat};
use crate::deckhouse::checks::{self, Step, StepState, SyncState, is_ready};
use crate::error::Result;
use crate::output::{Printer, To, Tone, print_steps};

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
    let overrides = Overrides::connect(ctx).await?;
    let name: &str = &args.module;
    let existing = overrides.get(name).await?;
    let tag = args
        .tag
        .as_ref()
        .map(|t| t.to_string())
        .or_else(|| existing.as_ref().map(|o| o.spec.image_tag.clone()));

    let spinner = ctx.printer.spinner(format!("checking {name}"));
    let diagnosis = diagnose::diagnose(
        &overrides.cluster,
        name,
        tag.as_deref(),
        args.offline,
        REGISTRY_TIMEOUT,
    )
    .await;
    drop(spinner);
    let diagnosis = diagnosis?;
    for notice in &diagnosis.notices {
        if notice.verbose {
            ctx.printer.debug(1, crate::output::inline(&notice.text));
        } else {
            ctx.printer.warn(crate::output::inline(&notice.text));
        }
    }
    let mut steps = diagnosis.steps.clone();
    let registry_digest = diagnosis.registry_digest().map(|d| d.digest.clone());
    let predicted = checks::predicted_message(&steps);

    let mut stale = None;
    let mut sync = SyncState::Unknown;
    if let Some(mpo) = &existing {
        let cluster_digest = mpo.image_digest().map(str::to_string);
        // A --tag other than the override's says nothing about what the cluster runs.
        if tag.as_deref() == Some(mpo.spec.image_tag.as_str()) {
            sync = SyncState::of(cluster_digest.as_deref(), registry_digest.as_deref());
            // The index digest itself is in sync too (docs/deckhouse-real.md §3.1).
            if let (Some(cluster), Some(resolved)) =
                (cluster_digest.as_deref(), diagnosis.registry_digest())
                && resolved.matches(cluster).is_some()
            {
                sync = SyncState::InSync;
            }
        }
        stale = checks::staleness(mpo, predicted.as_deref());
        steps.push(checks::override_step(
            name,
            mpo,
            sync,
            registry_digest.as_deref(),
            stale.as_deref(),
        ));
        if let Some(note) = diagnosis
            .source
            .as_ref()
            .and_then(|source| checks::source_lag_note(source, name))
        {
            steps.push(note);
        }
    }

    let healthy = !steps.iter().any(|s| s.state == StepState::Failed)
        && existing
            .as_ref()
            .is_none_or(|o| is_ready(o) && sync != SyncState::Behind);

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
        Some(ReportFormat::Json) => ctx.printer.json(&report)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&report)?,
        None => print_report(&ctx.printer, &overrides.cluster.context, &report),
    }
    Ok(if report.healthy {
        Outcome::Success
    } else {
        Outcome::ConditionFailed
    })
}

fn print_report(printer: &Printer, context: &str, report: &Report) {
    let exists = report.override_state.exists;
    let heading = match (&report.tag, exists) {
        (Some(tag), true) => format!("{} (tag {tag})", report.module),
        (Some(tag), false) => format!("{} (no override yet; checking tag {tag})", report.module),
        (None, _) => format!(
            "{} (no override yet; pass --tag to check the registry too)",
            report.module
        ),
    };
    printer.line(format!("Checks for {heading} on context {context:?}:"));
    print_steps(printer, &report.steps, To::Out);
    printer.line(printer.paint(
        &summary(report),
        if report.healthy {
            Tone::Good
        } else {
            Tone::Bad
        },
    ));
}

/// The last line of the report, as a sentence.
fn summary(report: &Report) -> String {
    let exists = report.override_state.exists;
    if report.healthy {
        return match (exists, report.sync, &report.tag) {
            (true, SyncState::InSync, _) => {
                "OK: the cluster runs the registry's current build.".into()
            }
            (true, _, _) => "OK: the override is Ready.".into(),
            (false, _, Some(tag)) => format!("OK: an override for tag {tag} would become Ready."),
            (false, _, None) => {
                "OK: nothing in the cluster blocks an override (no tag was checked).".into()
            }
        };
    }
    let failed = report.steps.iter().find(|s| s.state == StepState::Failed);
    match (failed, report.predicted_message.as_deref()) {
        (Some(step), Some(message)) if exists => format!(
            "Problem: {}; the controller reports (or will report) {message:?}.",
            step.summary
        ),
        (Some(step), Some(message)) => format!(
            "Problem: {}; an override would get {message:?}.",
            step.summary
        ),
        (Some(step), None) => format!("Problem: {}.", step.summary),
        (None, _) => {
            "Problem: the override is not in the state the checks expect; see the warnings above."
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &'static str, state: StepState, summary: &str) -> Step {
        Step {
            id,
            state,
            summary: summary.into(),
            cause: (state != StepState::Passed).then(|| format!("cause of {id}")),
            fix: if state == StepState::Failed {
                vec![
                    format!("kubectl mpo renew echo"),
                    "line one\nline two".into(),
                ]
            } else {
                Vec::new()
            },
            controller_message: (state == StepState::Failed).then(|| "The module disabled".into()),
        }
    }

    #[test]
    fn the_explain_report() {
        let report = Report {
            module: "echo".into(),
            tag: Some("pr1".into()),
            override_state: OverrideState {
                exists: true,
                image_tag: Some("pr1".into()),
                message: Some("The module disabled".into()),
                image_digest: None,
                updated_at: None,
            },
            steps: vec![
                step("module", StepState::Passed, "Module echo exists"),
                step(
                    "embedded",
                    StepState::Passed,
                    "not embedded: the module comes from a ModuleSource",
                ),
                step(
                    "enabled",
                    StepState::Failed,
                    "Module echo is disabled (turned off)",
                ),
            ],
            predicted_message: Some("The module disabled".into()),
            registry_digest: None,
            sync: SyncState::Unknown,
            stale: None,
            healthy: false,
        };
        let (printer, out, _) = Printer::capture(false, 0);
        print_report(&printer, "sandbox", &report);
        insta::assert_snapshot!(out.text());
    }
}
