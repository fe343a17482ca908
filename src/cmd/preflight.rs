//! The checks `create` and `edit` run before writing: would the override become Ready?

use super::Ctx;
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

pub async fn run(_ctx: &Ctx, overrides: &Overrides, module: &str, _tag: &str) -> Result<Checks> {
    let module_object = overrides
        .cluster
        .modules()
        .get_opt(module)
        .await
        .map_err(|err| {
            overrides
                .cluster
                .api_error(err, "get", "modules.deckhouse.io")
        })?;
    let source = module_object
        .and_then(|m| m.properties)
        .and_then(|p| p.source)
        .filter(|s| !s.is_empty());
    Ok(Checks {
        ok: true,
        source,
        registry_digest: None,
    })
}

pub async fn pick_tag(_ctx: &Ctx, _overrides: &Overrides, module: &str) -> Result<String> {
    Err(Error::usage("--tag is required").with_hint(format!(
        "list the module's tags with: kubectl mpo registry tags {module}"
    )))
}

pub async fn explain_after_conflict(_ctx: &Ctx, _overrides: &Overrides, name: &str) {
    _ctx.printer
        .note(format!("see why with: kubectl mpo explain {name}"));
}
