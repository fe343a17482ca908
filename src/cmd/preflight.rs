//! The checks `create` and `edit` run before writing: would the override become Ready?

use dialoguer::FuzzySelect;

use super::Ctx;
use super::inspect;
use super::shared::Overrides;
use crate::error::{Error, Result};

/// The preflight verdict.
pub struct Checks {
    /// True when nothing blocks the override.
    pub ok: bool,
    /// The ModuleSource the module would be pulled from.
    pub source: Option<String>,
    /// The digest the controller would deploy, when the registry could be asked.
    pub registry_digest: Option<String>,
}

pub async fn run(ctx: &Ctx, overrides: &Overrides, module: &str, tag: &str) -> Result<Checks> {
    let spinner = ctx.printer.spinner(format!("checking {module}:{tag}"));
    let diagnosis = inspect::diagnose(
        &overrides.cluster,
        module,
        Some(tag),
        false,
        inspect::REGISTRY_TIMEOUT,
    )
    .await;
    drop(spinner);
    let diagnosis = diagnosis?;
    if diagnosis.blocked() {
        ctx.printer
            .note(format!("{module}:{tag} would not become Ready:"));
        let failing: Vec<_> = diagnosis
            .steps
            .iter()
            .filter(|s| s.state != crate::deckhouse::diagnosis::StepState::Passed)
            .cloned()
            .collect();
        inspect::print_steps(ctx, &failing, true);
    }
    let registry_digest = diagnosis.registry_digest().map(|d| d.digest.clone());
    Ok(Checks {
        ok: !diagnosis.blocked(),
        source: diagnosis.source.and_then(|s| s.metadata.name),
        registry_digest,
    })
}

/// The fuzzy tag picker (terminal only): the module's tags from its source's registry.
pub async fn pick_tag(ctx: &Ctx, overrides: &Overrides, module: &str) -> Result<String> {
    let source = inspect::choose_source(ctx, &overrides.cluster, Some(module), None, None).await?;
    let client = inspect::client_for(&source, inspect::REGISTRY_TIMEOUT)?;
    let spinner = ctx
        .printer
        .spinner(format!("listing tags of {}/{module}", client.repo()));
    let tags = client.tags(module).await;
    drop(spinner);
    let tags = tags.map_err(|err| inspect::registry_error(&source, err))?;
    let tags: Vec<String> = tags
        .into_iter()
        .filter(|t| !super::registry::is_hash_tag(t))
        .collect();
    if tags.is_empty() {
        return Err(Error::runtime(format!(
            "{}/{module} has no tags",
            client.repo()
        )));
    }
    let chosen = FuzzySelect::new()
        .with_prompt(format!("tag of {}/{module}", client.repo()))
        .items(&tags)
        .default(0)
        .interact_opt()
        .map_err(|err| Error::runtime(format!("tag picker: {err}")))?;
    chosen
        .map(|index| tags[index].clone())
        .ok_or_else(|| Error::interrupted("no tag chosen; nothing was changed"))
}

/// After a conflict, show why, with the fix.
pub async fn explain_after_conflict(ctx: &Ctx, overrides: &Overrides, name: &str) {
    let tag = overrides
        .get(name)
        .await
        .ok()
        .flatten()
        .map(|o| o.spec.image_tag);
    if let Ok(diagnosis) = inspect::diagnose(
        &overrides.cluster,
        name,
        tag.as_deref(),
        false,
        inspect::REGISTRY_TIMEOUT,
    )
    .await
    {
        let failing: Vec<_> = diagnosis
            .steps
            .into_iter()
            .filter(|s| s.state != crate::deckhouse::diagnosis::StepState::Passed)
            .collect();
        inspect::print_steps(ctx, &failing, true);
    }
    ctx.printer
        .note(format!("full report: kubectl mpo explain {name}"));
}
