//! The Deckhouse controller's checks, re-run from the objects themselves: objects in,
//! steps out. No I/O, so every check is unit-tested on literal objects. Each check is a
//! small named function (`check_*`); `cluster_checks` runs them in the controller's
//! order (docs/deckhouse-real.md §3.0), `registry_step` adds the registry's answer, and
//! `override_step`/`source_lag_note` judge an existing override. `status`, `explain`,
//! the create/edit preflight and the report after `--wait` all use these.

use serde::Serialize;

mod cluster;
mod gen_a;
mod override_state;
mod registry;
#[cfg(test)]
mod tests;

pub use cluster::*;
use gen_a::run_gen_a_checks;
pub use override_state::*;
pub use registry::*;

use super::resources::{Module, ModuleConfig, ModuleProperties, ModulePullOverride, ModuleSource};
use crate::registry::{RegistryError, RegistryErrorKind, ResolvedDigest};

pub const MSG_READY: &str = "Ready";
pub const MSG_NOT_FOUND: &str = "The module not found";
pub const MSG_EMBEDDED: &str = "The module is embedded";
pub const MSG_DISABLED: &str = "The module disabled";
pub const MSG_NO_SOURCE: &str = "The module does not have an active source";
pub const MSG_SOURCE_NOT_FOUND: &str = "The source not found";
pub const MSG_DOWNLOAD_ERROR: &str = "Download error";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    Passed,
    /// Passes on some DKP versions, fails on others.
    Warning,
    Failed,
    /// Could not be checked (RBAC, offline, earlier failure).
    Unknown,
}

/// Which check a step reports (`explain -o json` writes it as `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    /// A Module of that name exists (§3.0 check 1).
    Module,
    /// It is not built into Deckhouse (check 2).
    Embedded,
    /// It is enabled (check 3).
    Enabled,
    /// It has an active source (check 4).
    ActiveSource,
    /// That ModuleSource exists (check 5).
    Source,
    /// The registry has the tag, with the source's credentials.
    Registry,
    /// What the controller last wrote on the override.
    Override,
    /// The source's scan errors under a Ready override.
    SourceErrors,
    /// The source's own status (a dockerCfg that does not parse, a stale scan).
    SourceStatus,
    /// A renew key left where nothing removes it.
    RenewKey,
    /// The tag is not (or no longer) in the registry.
    MissingTag,
    /// The image's settings schema against the ModuleConfig.
    ImageSettings,
    /// The image's requirements against the cluster.
    ImageRequirements,
    /// The image's stage against the allowed ones (experimental modules).
    ImageStage,
    /// The image's module definition.
    ImageDefinition,
    /// The image could be read at all.
    ImageRead,
    /// A Ready override whose newer image fails to deploy (the failure writes no status).
    Deploy,
    /// Whether the module runs (deckhouse-real §4).
    ModuleHealth,
    /// Its hooks.
    ModuleHooks,
    /// Its settings as the ModuleConfig reports them.
    ModuleSettings,
}

impl std::fmt::Display for StepId {
    /// The id as `explain -o json` writes it (`active-source`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(id)) => f.write_str(&id),
            _ => write!(f, "{self:?}"),
        }
    }
}

impl StepId {
    /// The checks of the image itself (`image-*`).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            StepId::ImageSettings
                | StepId::ImageRequirements
                | StepId::ImageStage
                | StepId::ImageDefinition
                | StepId::ImageRead
        )
    }

    /// The checks of the running module (`module-*` after the deploy, §4).
    pub fn is_module_health(self) -> bool {
        matches!(
            self,
            StepId::ModuleHealth | StepId::ModuleHooks | StepId::ModuleSettings
        )
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: StepId,
    pub state: StepState,
    /// One line: what was checked and what was found.
    pub summary: String,
    /// The cause in plain words, when not passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Commands that fix it, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fix: Vec<String>,
    /// The `status.message` the controller writes when this step fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_message: Option<String>,
}

impl Step {
    fn passed(id: StepId, summary: impl Into<String>) -> Self {
        Step {
            id,
            state: StepState::Passed,
            summary: summary.into(),
            cause: None,
            fix: Vec::new(),
            controller_message: None,
        }
    }

    fn failed(id: StepId, summary: impl Into<String>, message: &str) -> Self {
        Step {
            state: StepState::Failed,
            controller_message: Some(message.to_string()),
            ..Step::passed(id, summary)
        }
    }

    fn unknown(id: StepId, summary: impl Into<String>) -> Self {
        Step {
            state: StepState::Unknown,
            ..Step::passed(id, summary)
        }
    }

    fn because(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    fn fix(mut self, command: impl Into<String>) -> Self {
        self.fix.push(command.into());
        self
    }
}

/// What the cluster-side checks need. `sources: None` means they could not be read.
pub struct ClusterFacts<'a> {
    pub name: &'a str,
    pub module: Option<&'a Module>,
    pub config: Option<&'a ModuleConfig>,
    pub sources: Option<&'a [ModuleSource]>,
    /// Names of all Modules, for "did you mean".
    pub module_names: &'a [String],
    /// What the `deckhouse` module decides for every module.
    pub deckhouse: &'a DeckhouseEnv,
    /// Which controller judges the override.
    pub judge: Judge<'a>,
}

impl<'a> Judge<'a> {
    /// The judge of an existing override: a v1alpha1 object names its source.
    pub fn of(object: &'a ModulePullOverride) -> Self {
        match object.spec.source.as_deref() {
            Some(source) => Judge::SpecSource(Some(source)),
            None => Judge::Module,
        }
    }
}

/// Which controller judges an override, and so which checks it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge<'a> {
    /// The v1alpha2 controllers (gen B–D): the Module, its ModuleConfig, then the
    /// module's active source (docs/deckhouse-real.md §3.0).
    Module,
    /// Gen A (v1alpha1 only, §3.3): the ModuleSource named in `spec.source` and the
    /// registry, nothing of the Module or ModuleConfig. `None` before the override
    /// exists: `create` then names the module's active source.
    SpecSource(Option<&'a str>),
}

/// What the cluster-wide Deckhouse settings decide for one module: whether a module
/// without a ModuleConfig is on (docs/deckhouse-real.md §3.6: the edition, the bundle,
/// and whether this Deckhouse follows bundle defaults at all, 1.77+), and whether the
/// admission webhook lets an experimental module be enabled (§3.17).
#[derive(Debug, Clone, Default)]
pub struct DeckhouseEnv {
    /// `ce`, `ee`... from the `deckhouse` Deployment; `None` when it is not readable.
    pub edition: Option<String>,
    /// ModuleConfig `deckhouse` `spec.settings.bundle` (`Default` when unset); `None`
    /// when that ModuleConfig is not readable.
    pub bundle: Option<String>,
    /// The Deckhouse minor version (`78` for v1.78.1), when readable.
    pub dkp_minor: Option<u32>,
    /// ModuleConfig `deckhouse` `spec.settings.allowExperimentalModules` (`false` when
    /// unset); `None` when that ModuleConfig is not readable.
    pub allow_experimental: Option<bool>,
}

/// The command that allows experimental modules (docs/deckhouse-real.md §3.17).
pub const ALLOW_EXPERIMENTAL_FIX: &str = "kubectl patch moduleconfig deckhouse --type=merge -p '{\"spec\":{\"settings\":{\"allowExperimentalModules\":true}}}'";

impl DeckhouseEnv {
    fn bundle(&self) -> &str {
        self.bundle.as_deref().unwrap_or("Default")
    }

    /// `Module.IsEnabledByBundle`: the edition's entry, else `_default`'s, lists the
    /// cluster bundle; a module without `accessibility` is not enabled by any bundle.
    pub fn enables(&self, properties: &ModuleProperties) -> bool {
        let Some(access) = &properties.accessibility else {
            return false;
        };
        self.edition
            .as_deref()
            .and_then(|edition| access.editions.get(edition))
            .or_else(|| access.editions.get("_default"))
            .is_some_and(|entry| entry.enabled_in_bundles.iter().any(|b| b == self.bundle()))
    }

    /// "the Default bundle of edition ce", saying what was assumed.
    fn describe(&self) -> String {
        let bundle = match &self.bundle {
            Some(bundle) => format!("the {bundle} bundle"),
            None => "the Default bundle (assumed: ModuleConfig deckhouse is not readable)".into(),
        };
        match &self.edition {
            Some(edition) => format!("{bundle} of edition {edition}"),
            None => format!(
                "{bundle} (the edition is not readable from deployment d8-system/deckhouse: the module's _default entry is used)"
            ),
        }
    }
}

/// Cluster-side verdict: the steps up to the ModuleSource, and the source to use.
pub struct ClusterVerdict<'a> {
    pub steps: Vec<Step>,
    pub source: Option<&'a ModuleSource>,
}

fn renew_hint(name: &str) -> String {
    format!("kubectl mpo renew {name} --check-only    # re-check now instead of waiting up to 60 s")
}

/// Whether a status message means the override works: `Ready` (gen B–D), or an empty
/// message with a digest on gen A (docs/deckhouse-real.md §3.3).
pub fn is_ready(object: &ModulePullOverride) -> bool {
    match object.message() {
        Some(MSG_READY) => true,
        Some("") => object.image_digest().is_some_and(|d| !d.is_empty()),
        _ => false,
    }
}

/// The candidate a typo most likely meant ("did you mean"), if one is close.
pub fn closest<'n>(name: &str, candidates: &'n [String]) -> Option<&'n str> {
    candidates
        .iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance > 0 && *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

/// A check passes (its step, and what the later checks need) or stops the sequence
/// with its step.
pub type Check<T> = Result<(Step, T), Step>;

/// Records a check's step; the value when it passed.
fn record<T>(steps: &mut Vec<Step>, check: Check<T>) -> Option<T> {
    match check {
        Ok((step, value)) => {
            steps.push(step);
            Some(value)
        }
        Err(step) => {
            steps.push(step);
            None
        }
    }
}

/// The controller's checks 1–6 in its order (docs/deckhouse-real.md §3.0), stopping at
/// the first that fails, as the controller does.
pub fn cluster_checks<'a>(facts: &ClusterFacts<'a>) -> ClusterVerdict<'a> {
    let mut steps = Vec::new();
    let source = match facts.judge {
        Judge::Module => run_cluster_checks(facts, &mut steps),
        Judge::SpecSource(named) => run_gen_a_checks(facts, named, &mut steps),
    };
    ClusterVerdict { steps, source }
}

fn run_cluster_checks<'a>(
    facts: &ClusterFacts<'a>,
    steps: &mut Vec<Step>,
) -> Option<&'a ModuleSource> {
    let name = facts.name;
    let module = record(steps, check_module_exists(facts))?;
    let properties = match check_properties(name, module) {
        Ok(properties) => properties,
        Err(step) => {
            steps.push(step);
            return None;
        }
    };
    record(steps, check_not_embedded(name, properties))?;
    record(
        steps,
        check_enabled(name, module, properties, facts.config, facts.deckhouse),
    )?;
    let source_name = record(steps, check_active_source(name, properties, facts.config))?;
    record(steps, check_source_exists(name, source_name, facts.sources))
}
