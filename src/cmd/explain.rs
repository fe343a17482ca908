//! `kubectl mpo explain MODULE` (aliases `why`, `doctor`): re-runs the controller's
//! checks and the registry checks, step by step, with the cause and the fix.

use serde::Serialize;

use crate::app::diagnose;
use crate::app::overrides::Overrides;
use crate::app::report::print_steps;
use crate::app::sources::REGISTRY_TIMEOUT;
use crate::app::tags::ProvenancePair;
use crate::app::{Ctx, Outcome};
use crate::cli::{ExplainArgs, ReportFormat};
use crate::deckhouse::checks::{self, Step, StepId, StepState, SyncState, is_ready};
use crate::deckhouse::health::health_steps;
use crate::error::Result;
use crate::output::{Printer, To, Tone};

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
    /// The controller generation the cluster runs (docs/deckhouse-real.md §1).
    controller: crate::app::generation::Generation,
    /// Which commit runs and which the registry has (OCI annotations or labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<ProvenancePair>,
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

    let fallback = crate::app::sources::fallback(&args.fallback.spec())?;
    if let Some(fallback) = fallback.as_ref().filter(|_| !args.offline) {
        fallback.announce(ctx);
    }
    let judge = diagnose::judge_for(&overrides, existing.as_ref(), None);
    let spinner = ctx.printer.spinner(format!("checking {name}"));
    let (diagnosis, controller) = tokio::join!(
        diagnose::diagnose(
            &overrides.cluster,
            name,
            diagnose::Request {
                tag: tag.as_deref(),
                offline: args.offline,
                timeout: REGISTRY_TIMEOUT,
                inspect_image: !args.offline,
                fallback: fallback.as_ref().map(|f| &f.target),
                judge,
            },
        ),
        crate::app::generation::detect(&overrides.cluster)
    );
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
    // Gen A writes an empty message on success (docs/deckhouse-real.md §3.3).
    let predicted =
        checks::predicted_message(&steps).map(|message| match (judge, message.as_str()) {
            (checks::Judge::SpecSource(_), checks::MSG_READY) => String::new(),
            _ => message,
        });

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
        let tag_gone = tag.as_deref() == Some(mpo.spec.image_tag.as_str())
            && matches!(&diagnosis.registry, Some(Err(err)) if err.kind == crate::registry::RegistryErrorKind::NotFound);
        if tag_gone {
            steps.push(crate::deckhouse::image_checks::missing_tag_step(
                name,
                &mpo.spec.image_tag,
                mpo.image_digest(),
                mpo.spec.scan_interval.as_deref().unwrap_or("15s"),
            ));
        }
        // Only the override's own tag says whether its message is stale.
        if tag.as_deref() == Some(mpo.spec.image_tag.as_str()) {
            stale = checks::staleness(mpo, predicted.as_deref());
        }
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
        // The module's own health once the override is Ready (deckhouse-real §4).
        if is_ready(mpo) {
            let health = crate::app::health::module_health(&overrides.cluster, name).await?;
            steps.extend(health_steps(
                name,
                &mpo.spec.image_tag,
                health.as_ref(),
                diagnosis.source.as_ref(),
            ));
        }
    }

    let provenance = match (&diagnosis.client, &tag, diagnosis.registry_digest()) {
        (Some(client), Some(tag), Some(_)) => {
            let deployed = existing.as_ref().and_then(|o| o.image_digest());
            Some(crate::app::tags::provenance(client, name, tag, deployed).await)
        }
        _ => None,
    };
    // Ready, but behind an image older than a scan: the deploy fails silently.
    if let (Some(mpo), Some(provenance)) = (&existing, &provenance)
        && let Some(step) = checks::failing_deploy(
            name,
            mpo,
            sync,
            provenance.registry_built.as_deref(),
            jiff::Timestamp::now(),
        )
    {
        insert_after_override(&mut steps, step);
    }
    if let Some(step) = existing
        .as_ref()
        .and_then(|mpo| checks::stale_renew_key(name, mpo, &controller.generation))
    {
        insert_after_override(&mut steps, step);
    }
    let provenance = provenance.filter(|p| !p.is_empty());

    let other_tag = existing
        .as_ref()
        .is_some_and(|o| tag.as_deref() != Some(o.spec.image_tag.as_str()));
    // For another --tag, the question is whether that tag would work.
    let healthy = !steps
        .iter()
        .any(|s| s.state == StepState::Failed && (!other_tag || s.id != StepId::Override))
        && (other_tag
            || existing
                .as_ref()
                .is_none_or(|o| is_ready(o) && sync != SyncState::Behind));

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
        controller,
        provenance,
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
    printer.line(format!(
        "Controller generation: {} ({})",
        report.controller.generation, report.controller.basis
    ));
    print_steps(printer, &report.steps, To::Out);
    if let Some(provenance) = &report.provenance {
        printer.line("Provenance (OCI annotations):");
        for line in provenance.lines() {
            printer.line(format!("  {line}"));
        }
    }
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
    let own = report.override_state.image_tag.as_deref();
    if let (true, Some(tag), Some(own)) = (exists, report.tag.as_deref(), own)
        && tag != own
    {
        let module = &report.module;
        let failed = report
            .steps
            .iter()
            .find(|s| s.state == StepState::Failed && s.id != StepId::Override);
        return match (failed, report.predicted_message.as_deref()) {
            (None, _) => format!(
                "OK: tag {tag} would become Ready (the override runs {own} now): kubectl mpo edit {module} --tag {tag}"
            ),
            (Some(step), Some(message)) => format!(
                "Problem: {}; with tag {tag} the override would get {message:?} (it runs {own} now).",
                step.summary
            ),
            (Some(step), None) => format!(
                "Problem: {}; with tag {tag} the override would not become Ready (it runs {own} now).",
                step.summary
            ),
        };
    }
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
    // The module's own health is past the controller's message.
    let predicted = report
        .predicted_message
        .as_deref()
        .filter(|_| failed.is_none_or(|step| !step.id.is_module_health()));
    match (failed, predicted) {
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

/// Puts `step` right after the override's own step (at the end when there is none).
fn insert_after_override(steps: &mut Vec<Step>, step: Step) {
    let at = steps
        .iter()
        .position(|s| s.id == StepId::Override)
        .map_or(steps.len(), |i| i + 1);
    steps.insert(at, step);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: StepId, state: StepState, summary: &str) -> Step {
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
                step(StepId::Module, StepState::Passed, "Module echo exists"),
                step(
                    StepId::Embedded,
                    StepState::Passed,
                    "not embedded: the module comes from a ModuleSource",
                ),
                step(
                    StepId::Enabled,
                    StepState::Failed,
                    "Module echo is disabled (turned off)",
                ),
            ],
            predicted_message: Some("The module disabled".into()),
            registry_digest: None,
            sync: SyncState::Unknown,
            stale: None,
            healthy: false,
            controller: crate::app::generation::Generation {
                generation: "C or D".into(),
                basis: "ModulePullOverride v1alpha2 and Deckhouse 1.78".into(),
                mpo_versions: vec!["v1alpha2".into()],
                deckhouse_version: Some("v1.78.1".into()),
                edition: Some("ce".into()),
                future_module_api: false,
            },
            provenance: None,
        };
        let (printer, out, _) = Printer::capture(false, 0);
        print_report(&printer, "sandbox", &report);
        insta::assert_snapshot!(out.text());
    }
}
