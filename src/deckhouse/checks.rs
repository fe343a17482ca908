//! The Deckhouse controller's checks, re-run from the objects themselves: objects in,
//! steps out. No I/O, so every check is unit-tested on literal objects. Each check is a
//! small named function (`check_*`); `cluster_checks` runs them in the controller's
//! order (docs/deckhouse-real.md §3.0), `registry_step` adds the registry's answer, and
//! `override_step`/`source_lag_note` judge an existing override. `status`, `explain`,
//! the create/edit preflight and the report after `--wait` all use these.

use serde::Serialize;

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: &'static str,
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
    fn passed(id: &'static str, summary: impl Into<String>) -> Self {
        Step {
            id,
            state: StepState::Passed,
            summary: summary.into(),
            cause: None,
            fix: Vec::new(),
            controller_message: None,
        }
    }

    fn failed(id: &'static str, summary: impl Into<String>, message: &str) -> Self {
        Step {
            state: StepState::Failed,
            controller_message: Some(message.to_string()),
            ..Step::passed(id, summary)
        }
    }

    fn unknown(id: &'static str, summary: impl Into<String>) -> Self {
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

/// Check 1: the Module exists (the override is named after it).
pub fn check_module_exists<'a>(facts: &ClusterFacts<'a>) -> Check<&'a Module> {
    let name = facts.name;
    let Some(module) = facts.module else {
        let mut step = Step::failed(
            "module",
            format!("Module {name} does not exist"),
            MSG_NOT_FOUND,
        )
        .because(format!(
            "no Module named {name}: the override's name must be the module's name, and a \
                 module appears only once a ModuleSource's registry lists it (a tag {name} in the \
                 ModuleSource's repository, its module catalog)"
        ));
        if let Some(guess) = closest(name, facts.module_names) {
            step = step.fix(format!(
                "kubectl mpo explain {guess}    # did you mean {guess}?"
            ));
        }
        step = step.fix("kubectl get modules    # the module names the cluster knows".to_string());
        // `registry modules` needs --source when there are several.
        let sources = source_names(facts.sources.unwrap_or_default());
        match sources.as_slice() {
            [] => {}
            [_] => {
                step = step.fix(format!(
                    "kubectl mpo registry modules    # is {name} in the source's catalog?"
                ))
            }
            several => {
                for source in several {
                    step = step.fix(format!(
                        "kubectl mpo registry modules --source {source}    # is {name} in {source}'s catalog?"
                    ));
                }
            }
        }
        return Err(step);
    };
    Ok((
        Step::passed("module", format!("Module {name} exists")),
        module,
    ))
}

/// The Module carries `properties` (Module v1alpha1); a Module API that keeps its data
/// elsewhere cannot be checked further (docs/deckhouse-real.md §3.18).
pub fn check_properties<'a>(name: &str, module: &'a Module) -> Result<&'a ModuleProperties, Step> {
    module.properties.as_ref().ok_or_else(|| {
        Step::unknown("embedded", format!("Module {name} has no `properties`"))
            .because("this Module API version keeps its data elsewhere; the checks below cannot be run from it")
    })
}

/// Check 2: the module is not embedded in Deckhouse.
pub fn check_not_embedded(name: &str, properties: &ModuleProperties) -> Check<()> {
    if properties.source.as_deref() == Some("Embedded") {
        return Err(
            Step::failed("embedded", format!("Module {name} is embedded in Deckhouse"), MSG_EMBEDDED)
                .because("built-in modules ship inside the Deckhouse image; a ModulePullOverride cannot replace them")
                .fix(format!("kubectl mpo delete {name}    # the override can never become Ready")),
        );
    }
    Ok((
        Step::passed(
            "embedded",
            "not embedded: the module comes from a ModuleSource",
        ),
        (),
    ))
}

/// Check 3: the module is enabled (condition `EnabledByModuleConfig`; without a
/// ModuleConfig, newer controllers follow the bundle default).
pub fn check_enabled(
    name: &str,
    module: &Module,
    properties: &ModuleProperties,
    config: Option<&ModuleConfig>,
    env: &DeckhouseEnv,
) -> Check<()> {
    let enabled = module.condition("EnabledByModuleConfig");
    let patch_enabled = format!(
        "kubectl patch moduleconfig {name} --type=merge -p '{{\"spec\":{{\"enabled\":true}}}}'"
    );
    let create_config = format!(
        "kubectl apply -f - <<EOF\napiVersion: deckhouse.io/v1alpha1\nkind: ModuleConfig\nmetadata:\n  name: {name}\nspec:\n  enabled: true\nEOF"
    );
    let verdict = match enabled.map(|c| c.status.as_str()) {
        Some("True") => Ok((
            Step::passed("enabled", "enabled (condition EnabledByModuleConfig=True)"),
            (),
        )),
        Some("False") => {
            let reason = enabled
                .and_then(|c| c.message.clone().or_else(|| c.reason.clone()))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "turned off".to_string());
            let config_says_off = config
                .and_then(|c| c.spec.enabled)
                .is_some_and(|enabled| !enabled);
            let config_silent = config.is_some_and(|c| c.spec.enabled.is_none());
            let step = Step::failed(
                "enabled",
                format!("Module {name} is disabled ({reason})"),
                MSG_DISABLED,
            );
            let step = if config_says_off {
                step.because(format!("ModuleConfig {name} has spec.enabled: false"))
                    .fix(patch_enabled.clone())
            } else if config_silent {
                step.because(format!(
                    "ModuleConfig {name} does not set spec.enabled, which the controller reads as disabled"
                ))
                .fix(patch_enabled.clone())
            } else if config.is_none() {
                step.because(format!(
                    "the module is off ({reason}) and there is no ModuleConfig {name}"
                ))
                .fix(create_config.clone())
            } else {
                step.because(format!(
                    "the module manager turned it off: {reason}; a ModuleConfig cannot override that"
                ))
            };
            Err(step.fix(renew_hint(name)))
        }
        _ if env.enables(properties) => {
            let by = env.describe();
            match env.dkp_minor {
                Some(minor) if minor >= 77 => Ok((
                    Step::passed(
                        "enabled",
                        format!("enabled by default in {by} (no ModuleConfig; Deckhouse 1.{minor} follows it)"),
                    ),
                    (),
                )),
                Some(minor) => Err(Step::failed(
                    "enabled",
                    format!("Module {name} is not enabled (no ModuleConfig)"),
                    MSG_DISABLED,
                )
                .because(format!(
                    "{by} enables it, but Deckhouse 1.{minor} does not follow bundle defaults for overrides (1.77+ does): it reports \"The module disabled\" until a ModuleConfig enables it"
                ))
                .fix(create_config.clone())
                .fix(renew_hint(name))),
                None => Ok((
                    Step {
                        state: StepState::Warning,
                        ..Step::passed(
                            "enabled",
                            format!("enabled by default in {by} (no ModuleConfig)"),
                        )
                    }
                    .because(
                        "DKP 1.77+ follows the bundle default; older DKP reports \"The module disabled\" \
                         until a ModuleConfig enables it (the Deckhouse version is not readable)",
                    )
                    .fix(create_config.clone()),
                    (),
                )),
            }
        }
        _ => Err(Step::failed(
            "enabled",
            format!("Module {name} is not enabled (no ModuleConfig)"),
            MSG_DISABLED,
        )
        .because(format!(
            "there is no ModuleConfig {name}, and {} does not enable it by default",
            env.describe()
        ))
        .fix(create_config.clone())
        .fix(renew_hint(name))),
    };
    // The ModuleConfig webhook refuses to enable an experimental module unless the
    // deckhouse ModuleConfig allows them (§3.17): a fix that enables one says so first.
    let experimental = properties
        .stage
        .as_deref()
        .is_some_and(|stage| stage.eq_ignore_ascii_case("experimental"))
        && env.allow_experimental != Some(true);
    let allow_first = |mut step: Step| {
        if experimental
            && step
                .fix
                .iter()
                .any(|f| *f == patch_enabled || *f == create_config)
        {
            step.fix.insert(
                0,
                format!("{ALLOW_EXPERIMENTAL_FIX}    # {name} is Experimental: the ModuleConfig webhook refuses to enable it without this"),
            );
        }
        step
    };
    verdict
        .map(|(step, ())| (allow_first(step), ()))
        .map_err(allow_first)
}

/// Check 4: the module has an active source (`properties.source`).
pub fn check_active_source<'a>(
    name: &str,
    properties: &'a ModuleProperties,
    config: Option<&ModuleConfig>,
) -> Check<&'a str> {
    let source_name = properties.source.as_deref().unwrap_or_default();
    if !source_name.is_empty() {
        return Ok((
            Step::passed("active-source", format!("active source: {source_name}")),
            source_name,
        ));
    }
    let available = &properties.available_sources;
    let step = Step::failed(
        "active-source",
        format!("Module {name} has no active source"),
        MSG_NO_SOURCE,
    );
    let step = match available.first() {
        None => step
            .because("no ModuleSource lists this module in its registry catalog")
            .fix("kubectl get modulesources    # which sources exist, and their repos")
            .fix(format!("push the module to <repo>/{name}:<tag> and the catalog tag <repo>:{name}, then wait for the source rescan (3 min)")),
        Some(first) => step
            .because(format!(
                "several ModuleSources offer it ({}) and ModuleConfig {name} does not choose one",
                available.join(", ")
            ))
            .fix(if config.is_some() {
                format!(
                    "kubectl patch moduleconfig {name} --type=merge -p '{{\"spec\":{{\"source\":\"{first}\"}}}}'"
                )
            } else {
                format!(
                    "kubectl apply -f - <<EOF\napiVersion: deckhouse.io/v1alpha1\nkind: ModuleConfig\nmetadata:\n  name: {name}\nspec:\n  enabled: true\n  source: {first}\nEOF"
                )
            }),
    };
    Err(step.fix(renew_hint(name)))
}

/// Check 6: the active ModuleSource exists (check 5 is the controller's own
/// bookkeeping: `IsOverridden`, the finalizer). Unknown when ModuleSources are not
/// readable.
pub fn check_source_exists<'a>(
    name: &str,
    source_name: &str,
    sources: Option<&'a [ModuleSource]>,
) -> Check<&'a ModuleSource> {
    let Some(sources) = sources else {
        return Err(
            Step::unknown("source", format!("ModuleSource {source_name}: not readable"))
                .because("your user may not read ModuleSources (they hold registry credentials); the registry is checked only through --registry-repo with your own docker config.json")
                .fix(format!("kubectl mpo explain {name} --registry-repo HOST/PATH    # the repo of ModuleSource {source_name}")),
        );
    };
    let Some(source) = find_source(sources, source_name) else {
        let others = source_names(sources);
        let step = Step::failed(
            "source",
            format!("ModuleSource {source_name} does not exist"),
            MSG_SOURCE_NOT_FOUND,
        )
        .because(format!(
            "Module {name} points at ModuleSource {source_name}, which is gone{}",
            if others.is_empty() {
                String::new()
            } else {
                format!(" (existing: {})", others.join(", "))
            }
        ))
        .fix(format!(
            "recreate ModuleSource {source_name}, or choose another: kubectl patch moduleconfig {name} --type=merge -p '{{\"spec\":{{\"source\":\"<name>\"}}}}'"
        ));
        return Err(step.fix(renew_hint(name)));
    };
    Ok((
        Step::passed(
            "source",
            format!(
                "ModuleSource {source_name} exists (repo {})",
                source.spec.registry.repo
            ),
        ),
        source,
    ))
}

/// The ModuleSource of that name.
fn find_source<'a>(sources: &'a [ModuleSource], name: &str) -> Option<&'a ModuleSource> {
    sources
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
}

/// The names of the ModuleSources there are, for "existing: ...".
fn source_names(sources: &[ModuleSource]) -> Vec<&str> {
    sources
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect()
}

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

/// Gen A (docs/deckhouse-real.md §3.3): the controller checks nothing of the Module or
/// ModuleConfig and pulls from the ModuleSource the override names. What the module's
/// own state means is still said, as warnings: the image is deployed, but Deckhouse
/// does not run a module that is missing or disabled.
fn run_gen_a_checks<'a>(
    facts: &ClusterFacts<'a>,
    named: Option<&'a str>,
    steps: &mut Vec<Step>,
) -> Option<&'a ModuleSource> {
    let name = facts.name;
    let mut module_steps = Vec::new();
    run_cluster_checks(facts, &mut module_steps);
    // Before the override exists: the module's active source, else its only one.
    let active = facts
        .module
        .and_then(|module| module.properties.as_ref())
        .and_then(|properties| match properties.source.as_deref() {
            Some(source) if !source.is_empty() && source != "Embedded" => Some(source),
            _ => match properties.available_sources.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            },
        });
    for mut step in module_steps {
        // The module's own source does not matter here: spec.source does.
        if matches!(step.id, "active-source" | "source") {
            continue;
        }
        if step.state == StepState::Failed {
            step.state = StepState::Warning;
            step.controller_message = None;
            step.cause = Some(format!(
                "{}; this controller (gen A) does not check it and deploys anyway, but Deckhouse does not run the module until it is fixed",
                step.cause.as_deref().unwrap_or(&step.summary)
            ));
            step.fix.retain(|fix| !fix.starts_with("kubectl mpo renew"));
        }
        steps.push(step);
    }
    let Some(source_name) = named.or(active) else {
        steps.push(
            Step {
                controller_message: None,
                ..Step::failed(
                    "source",
                    format!("no ModuleSource to name in spec.source for {name}"),
                    "",
                )
            }
            .because("this cluster serves ModulePullOverride v1alpha1 only, where the override names its ModuleSource, and the module has no active source to take")
            .fix("kubectl get modulesources    # which sources exist")
            .fix(format!("kubectl mpo create {name} --tag TAG --source NAME")),
        );
        return None;
    };
    let origin = if named.is_some() {
        "spec.source"
    } else {
        "the module's active source, which create names in spec.source"
    };
    let Some(sources) = facts.sources else {
        steps.push(Step::unknown(
            "source",
            format!("ModuleSource {source_name} ({origin}): you may not read ModuleSources"),
        ));
        return None;
    };
    let Some(source) = find_source(sources, source_name) else {
        let others = source_names(sources);
        let mut step = Step::failed(
            "source",
            format!("ModuleSource {source_name} ({origin}) does not exist"),
            &format!("ModuleSource \"{source_name}\" not found"),
        )
        .because(if others.is_empty() {
            "there is no ModuleSource in the cluster".to_string()
        } else {
            format!("existing: {}", others.join(", "))
        });
        if let Some(other) = others.first() {
            step = step.fix(format!(
                "kubectl patch modulepulloverride {name} --type=merge -p '{{\"spec\":{{\"source\":\"{other}\"}}}}'"
            ));
        }
        steps.push(step);
        return None;
    };
    steps.push(Step::passed(
        "source",
        format!(
            "ModuleSource {source_name} ({origin}) exists (repo {})",
            source.spec.registry.repo
        ),
    ));
    Some(source)
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

/// Step 7: the registry answer for `<repo>/<name>:<tag>`, as a step with its fix.
pub fn registry_step(
    name: &str,
    tag: &str,
    source: &ModuleSource,
    image: &str,
    result: &Result<ResolvedDigest, RegistryError>,
) -> Step {
    let source_name = source.metadata.name.as_deref().unwrap_or_default();
    let host = source
        .spec
        .registry
        .repo
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let error = match result {
        Ok(resolved) => {
            let mut summary = format!("{image} resolves to {}", resolved.digest);
            if let Some(index) = &resolved.index_digest {
                summary.push_str(&format!(" (linux/amd64 of index {index})"));
            }
            return Step::passed("registry", summary);
        }
        Err(error) => error,
    };
    let step = Step::failed(
        "registry",
        format!("{image}: {}", error.message),
        MSG_DOWNLOAD_ERROR,
    );
    let docker_cfg_fix = format!(
        "kubectl patch modulesource {source_name} --type=merge -p \"{{\\\"spec\\\":{{\\\"registry\\\":{{\\\"dockerCfg\\\":\\\"$(printf '{{\"auths\":{{\"{host}\":{{\"auth\":\"%s\"}}}}}}' \"$(printf '%s:%s' USER PASSWORD | base64 -w0)\" | base64 -w0)\\\"}}}}}}\""
    );
    match error.kind {
        RegistryErrorKind::Credentials => step
            .because(format!(
                "ModuleSource {source_name}'s dockerCfg has no usable entry for {host} (the entry's key must equal the repo host, port included)"
            ))
            .fix(docker_cfg_fix),
        RegistryErrorKind::Unauthorized => step
            .because(format!("the registry rejected ModuleSource {source_name}'s credentials for {host}"))
            .fix(docker_cfg_fix)
            .fix(format!("kubectl mpo registry tags {name} --source {source_name}    # check the new credentials")),
        RegistryErrorKind::Tls => step
            .because(format!(
                "the registry's TLS certificate is not trusted: ModuleSource {source_name} needs spec.registry.ca with the registry's CA"
            ))
            .fix(format!(
                "kubectl patch modulesource {source_name} --type=merge -p \"$(jq -n --rawfile ca ca.crt '{{spec:{{registry:{{ca:$ca}}}}}}')\""
            )),
        RegistryErrorKind::NotFound => step
            .because(format!("tag {tag} does not exist in {}/{name}", source.spec.registry.repo))
            .fix(format!("kubectl mpo registry tags {name}    # the tags that exist"))
            .fix(format!("kubectl mpo edit {name} --tag TAG")),
        RegistryErrorKind::Unreachable | RegistryErrorKind::Timeout => step
            .because(format!("the registry {host} cannot be reached from here (the cluster may still reach it)"))
            .fix(format!("curl -sI https://{host}/v2/    # check the network path")),
        RegistryErrorKind::Malformed => {
            step.because("the registry answered, but not with a usable image")
        }
        RegistryErrorKind::Limit => step.because(
            "the image is larger than the caps on image reads allow (see the flag named above)",
        ),
        RegistryErrorKind::Config => step
            .because(format!(
                "ModuleSource {source_name}'s repo {:?} does not make a valid image reference; the registry was not asked",
                source.spec.registry.repo
            ))
            .fix(format!("kubectl get modulesource {source_name} -o jsonpath='{{.spec.registry.repo}}'    # host[:port]/path, lower case")),
        RegistryErrorKind::Other => step.because("the registry answered with an error"),
    }
}

/// The registry check through `--registry-repo` with the user's own docker config.json
/// (for users who may not read ModuleSources). Only a missing tag predicts the
/// controller's `Download error`: any other failure is about the user's access, and the
/// cluster pulls with the ModuleSource's credentials.
pub fn registry_step_via_flag(
    name: &str,
    tag: &str,
    repo: &str,
    image: &str,
    result: &Result<ResolvedDigest, RegistryError>,
) -> Step {
    let error = match result {
        Ok(resolved) => {
            let mut summary = format!(
                "{image} resolves to {} (via --registry-repo)",
                resolved.digest
            );
            if let Some(index) = &resolved.index_digest {
                summary.push_str(&format!(" (linux/amd64 of index {index})"));
            }
            return Step::passed("registry", summary);
        }
        Err(error) => error,
    };
    let summary = format!("{image}: {}", error.message);
    let host = repo
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = host.split('/').next().unwrap_or_default();
    let yours = |cause: String| {
        Step::unknown("registry", summary.clone()).because(format!(
            "{cause}; this is your access through --registry-repo, the cluster pulls with the ModuleSource's credentials"
        ))
    };
    match error.kind {
        RegistryErrorKind::NotFound => Step::failed("registry", summary, MSG_DOWNLOAD_ERROR)
            .because(format!("tag {tag} does not exist in {repo}/{name}"))
            .fix(format!("kubectl mpo registry tags {name} --registry-repo {repo}    # the tags that exist"))
            .fix(format!("kubectl mpo edit {name} --tag TAG")),
        RegistryErrorKind::Credentials => {
            yours(format!("your docker config.json has no usable entry for {host}"))
                .fix(format!("docker login {host}    # or pass --registry-config PATH"))
        }
        RegistryErrorKind::Unauthorized => {
            yours(format!("the registry refused your credentials for {host}"))
                .fix(format!("docker login {host}    # or pass --registry-config PATH"))
        }
        RegistryErrorKind::Tls => yours(format!("the TLS certificate of {host} is not trusted here"))
            .fix("pass --registry-ca PATH with the registry's CA (PEM)"),
        RegistryErrorKind::Unreachable | RegistryErrorKind::Timeout => {
            yours(format!("the registry {host} cannot be reached from here"))
        }
        RegistryErrorKind::Config => Step::unknown("registry", summary)
            .because(format!("--registry-repo {repo:?} does not make a valid image reference; the registry was not asked")),
        RegistryErrorKind::Malformed | RegistryErrorKind::Limit | RegistryErrorKind::Other => {
            yours("the registry answered with an error".to_string())
        }
    }
}

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
    let step = Step::passed("override", summary);
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
            ..Step::passed("deploy", summary)
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
        "source-status",
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
                "renew-key",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renew_key_nothing_removes_is_reported() {
        let mut mpo = ModulePullOverride::default();
        mpo.metadata.annotations = Some(
            [(
                crate::deckhouse::resources::RENEW_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        mpo.status = Some(crate::deckhouse::resources::MpoStatus {
            message: Some("Ready".into()),
            image_digest: Some("sha256:a".into()),
            ..Default::default()
        });
        let step = stale_renew_key("echo", &mpo, "B").expect("gen B never removes it");
        assert_eq!(step.state, StepState::Warning);
        assert!(step.cause.as_deref().unwrap().contains("gen B"));
        assert!(step.fix[0].ends_with("modules.deckhouse.io/renew-"));
        assert!(stale_renew_key("echo", &mpo, "C or D").is_some());
        // Not Ready on a cluster that may be gen D: it may still be redeploying.
        mpo.status.as_mut().unwrap().message = Some("Download error: x".into());
        assert!(stale_renew_key("echo", &mpo, "C or D").is_none());
        assert!(stale_renew_key("echo", &mpo, "A").is_some());
        mpo.metadata.annotations = None;
        assert!(stale_renew_key("echo", &mpo, "A").is_none());
    }

    #[test]
    fn ready_behind_an_old_build_is_a_failing_deploy() {
        let mut mpo = ModulePullOverride::default();
        mpo.metadata.name = Some("echo".into());
        mpo.spec = crate::deckhouse::resources::MpoSpec {
            image_tag: "main".into(),
            scan_interval: Some("1m".into()),
            ..Default::default()
        };
        mpo.status = Some(crate::deckhouse::resources::MpoStatus {
            message: Some("Ready".into()),
            image_digest: Some("sha256:old".into()),
            ..Default::default()
        });
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().expect("time");
        let old_build = Some("2026-11-25T11:55:00Z");
        let fresh_build = Some("2026-11-25T11:59:30Z");
        let step = failing_deploy("echo", &mpo, SyncState::Behind, old_build, now)
            .expect("5 minutes behind a 1m scan");
        assert_eq!(step.state, StepState::Warning);
        assert!(step.summary.contains("built 5m ago"), "{}", step.summary);
        assert!(step.fix[0].starts_with("kubectl mpo logs echo"));
        // Within a scan and a minute, in sync, unknown build time, or not Ready: no verdict.
        assert!(failing_deploy("echo", &mpo, SyncState::Behind, fresh_build, now).is_none());
        assert!(failing_deploy("echo", &mpo, SyncState::InSync, old_build, now).is_none());
        assert!(failing_deploy("echo", &mpo, SyncState::Behind, None, now).is_none());
        let epoch = Some("1970-01-01T00:00:01Z");
        assert!(failing_deploy("echo", &mpo, SyncState::Behind, epoch, now).is_none());
        mpo.status.as_mut().expect("status").message = Some("Download error: x".into());
        assert!(failing_deploy("echo", &mpo, SyncState::Behind, old_build, now).is_none());
    }
    use crate::deckhouse::resources::SourceRegistry as RegistrySpec;
    use crate::deckhouse::resources::{
        EditionAccess, ModuleAccessibility, ModuleCondition, ModuleConfigSpec, ModuleProperties,
        ModuleSourceSpec, ModuleStatus, MpoSpec, MpoStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn module(name: &str, source: &str, available: &[&str], enabled: Option<&str>) -> Module {
        Module {
            metadata: meta(name),
            properties: Some(ModuleProperties {
                source: Some(source.into()),
                available_sources: available.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            status: Some(ModuleStatus {
                conditions: enabled
                    .map(|status| ModuleCondition {
                        type_: "EnabledByModuleConfig".into(),
                        status: status.into(),
                        reason: None,
                        message: Some("turned off by module config".into()),
                        last_transition_time: None,
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn config(name: &str, enabled: bool) -> ModuleConfig {
        ModuleConfig::new(
            name,
            ModuleConfigSpec {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
    }

    fn source(name: &str) -> ModuleSource {
        ModuleSource::new(
            name,
            ModuleSourceSpec {
                registry: RegistrySpec {
                    repo: "reg.io/modules".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    fn verdict_message(facts: &ClusterFacts<'_>) -> Option<String> {
        predicted_message(&cluster_checks(facts).steps)
    }

    fn facts<'a>(
        name: &'a str,
        module: Option<&'a Module>,
        config: Option<&'a ModuleConfig>,
        sources: Option<&'a [ModuleSource]>,
    ) -> ClusterFacts<'a> {
        ClusterFacts {
            name,
            module,
            config,
            sources,
            module_names: &[],
            deckhouse: &UNKNOWN_ENV,
            judge: Judge::Module,
        }
    }

    /// Neither edition, bundle nor Deckhouse version readable.
    static UNKNOWN_ENV: DeckhouseEnv = DeckhouseEnv {
        edition: None,
        bundle: None,
        dkp_minor: None,
        allow_experimental: None,
    };

    #[test]
    fn every_controller_message_in_order() {
        let sources = [source("test")];
        assert_eq!(
            verdict_message(&facts("x", None, None, Some(&sources))).as_deref(),
            Some(MSG_NOT_FOUND)
        );

        let embedded = module("ingress-nginx", "Embedded", &[], None);
        assert_eq!(
            verdict_message(&facts(
                "ingress-nginx",
                Some(&embedded),
                None,
                Some(&sources)
            ))
            .as_deref(),
            Some(MSG_EMBEDDED)
        );

        let disabled = module("d", "test", &["test"], Some("False"));
        let off = config("d", false);
        let verdict = cluster_checks(&facts("d", Some(&disabled), Some(&off), Some(&sources)));
        assert_eq!(
            predicted_message(&verdict.steps).as_deref(),
            Some(MSG_DISABLED)
        );
        assert!(verdict.steps.last().unwrap().fix[0].contains("\"enabled\":true"));

        let two = module("t", "", &["a", "b"], Some("True"));
        let on = config("t", true);
        let verdict = cluster_checks(&facts("t", Some(&two), Some(&on), Some(&sources)));
        assert_eq!(
            predicted_message(&verdict.steps).as_deref(),
            Some(MSG_NO_SOURCE)
        );
        assert!(verdict.steps.last().unwrap().fix[0].contains("\"source\":\"a\""));

        let lost = module("l", "gone", &["gone"], Some("True"));
        assert_eq!(
            verdict_message(&facts("l", Some(&lost), None, Some(&sources))).as_deref(),
            Some(MSG_SOURCE_NOT_FOUND)
        );

        let good = module("echo", "test", &["test"], Some("True"));
        let verdict = cluster_checks(&facts("echo", Some(&good), None, Some(&sources)));
        assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
        assert_eq!(
            verdict.source.and_then(|s| s.metadata.name.as_deref()),
            Some("test")
        );
    }

    #[test]
    fn bundle_default_is_a_warning_and_missing_properties_unknown() {
        let mut bundled = module("b", "test", &["test"], None);
        if let Some(p) = bundled.properties.as_mut() {
            p.accessibility = Some(ModuleAccessibility {
                editions: [(
                    "_default".to_string(),
                    EditionAccess {
                        available: None,
                        enabled_in_bundles: vec!["Default".into()],
                    },
                )]
                .into_iter()
                .collect(),
            });
        }
        let sources = [source("test")];
        let verdict = cluster_checks(&facts("b", Some(&bundled), None, Some(&sources)));
        assert_eq!(verdict.steps[2].state, StepState::Warning);
        assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));

        // The cluster's own edition and bundle decide (§3.6), and Deckhouse before
        // 1.77 does not follow bundle defaults at all.
        let mut per_edition = module("e", "test", &["test"], None);
        if let Some(p) = per_edition.properties.as_mut() {
            let entry = |bundles: &[&str]| EditionAccess {
                available: None,
                enabled_in_bundles: bundles.iter().map(|b| b.to_string()).collect(),
            };
            p.accessibility = Some(ModuleAccessibility {
                editions: [
                    ("_default".to_string(), entry(&["Default"])),
                    ("ce".to_string(), entry(&["Minimal"])),
                ]
                .into_iter()
                .collect(),
            });
        }
        let env = |edition: Option<&str>, bundle: &str, minor: Option<u32>| DeckhouseEnv {
            edition: edition.map(Into::into),
            bundle: Some(bundle.into()),
            dkp_minor: minor,
            allow_experimental: Some(false),
        };
        let step = |env: &DeckhouseEnv| {
            let properties = per_edition.properties.as_ref().unwrap();
            match check_enabled("e", &per_edition, properties, None, env) {
                Ok((step, ())) => (step.state, step.summary),
                Err(step) => (step.state, step.cause.unwrap_or_default()),
            }
        };
        let (state, text) = step(&env(Some("ce"), "Default", Some(78)));
        assert_eq!(state, StepState::Failed, "{text}");
        assert!(text.contains("the Default bundle of edition ce"), "{text}");
        let (state, text) = step(&env(Some("ce"), "Minimal", Some(78)));
        assert_eq!(state, StepState::Passed, "{text}");
        assert_eq!(
            step(&env(Some("ee"), "Default", Some(78))).0,
            StepState::Passed
        );
        let (state, text) = step(&env(Some("ee"), "Default", Some(76)));
        assert_eq!(state, StepState::Failed, "{text}");
        assert!(text.contains("Deckhouse 1.76"), "{text}");
        assert_eq!(step(&env(None, "Default", None)).0, StepState::Warning);

        let not_bundled = module("n", "test", &["test"], None);
        assert_eq!(
            verdict_message(&facts("n", Some(&not_bundled), None, Some(&sources))).as_deref(),
            Some(MSG_DISABLED)
        );

        let bare = Module {
            metadata: meta("v2"),
            properties: None,
            status: None,
        };
        let verdict = cluster_checks(&facts("v2", Some(&bare), None, Some(&sources)));
        assert_eq!(verdict.steps.last().unwrap().state, StepState::Unknown);
        assert_eq!(predicted_message(&verdict.steps), None);
    }

    #[test]
    fn unreadable_sources_are_unknown_not_failed() {
        let good = module("echo", "test", &["test"], Some("True"));
        let verdict = cluster_checks(&facts("echo", Some(&good), None, None));
        assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
        assert_eq!(verdict.steps.last().unwrap().state, StepState::Unknown);
    }

    #[test]
    fn did_you_mean() {
        let names = vec!["echo".to_string(), "hello-world".to_string()];
        let f = ClusterFacts {
            name: "ecoh",
            module: None,
            config: None,
            sources: None,
            module_names: &names,
            deckhouse: &UNKNOWN_ENV,
            judge: Judge::Module,
        };
        assert!(cluster_checks(&f).steps[0].fix[0].contains("did you mean echo"));
    }

    #[test]
    fn staleness_and_sync() {
        let mut mpo = ModulePullOverride {
            api_version: None,
            kind: None,
            metadata: meta("echo"),
            spec: MpoSpec {
                image_tag: "v1".into(),
                ..Default::default()
            },
            status: None,
        };
        mpo.status = Some(MpoStatus {
            message: Some(MSG_DISABLED.into()),
            ..Default::default()
        });
        assert!(staleness(&mpo, Some(MSG_READY)).unwrap().contains("60 s"));
        assert!(staleness(&mpo, Some(MSG_DISABLED)).is_none());
        mpo.status = Some(MpoStatus {
            message: Some("Download error: 401".into()),
            ..Default::default()
        });
        assert!(staleness(&mpo, Some(MSG_DOWNLOAD_ERROR)).is_none());
        assert_eq!(SyncState::of(Some("a"), Some("a")), SyncState::InSync);
        assert_eq!(SyncState::of(Some("a"), Some("b")), SyncState::Behind);
        assert_eq!(SyncState::of(None, Some("b")), SyncState::Unknown);
    }

    #[test]
    fn each_check_alone_on_literal_objects() {
        let module = module("echo", "test", &["test"], Some("True"));
        let properties = module.properties.as_ref().unwrap();
        assert!(check_not_embedded("echo", properties).is_ok());
        let embedded = self::module("ingress-nginx", "Embedded", &[], Some("True"));
        let step =
            check_not_embedded("ingress-nginx", embedded.properties.as_ref().unwrap()).unwrap_err();
        assert_eq!(step.controller_message.as_deref(), Some(MSG_EMBEDDED));
        let (step, active) = check_active_source("echo", properties, None).unwrap();
        assert_eq!((step.state, active), (StepState::Passed, "test"));
        let sources = [source("test")];
        assert!(check_source_exists("echo", "test", Some(&sources)).is_ok());
        let gone = check_source_exists("echo", "lost", Some(&sources)).unwrap_err();
        assert_eq!(
            gone.controller_message.as_deref(),
            Some(MSG_SOURCE_NOT_FOUND)
        );
        let unreadable = check_source_exists("echo", "test", None).unwrap_err();
        assert_eq!(unreadable.state, StepState::Unknown);
    }

    /// Gen A (§3.3): spec.source and the registry decide; the module's own state is
    /// only a warning.
    #[test]
    fn gen_a_judges_by_spec_source_and_warns_about_the_module() {
        let sources = [source("test"), source("other")];
        let disabled = module("echo", "other", &["other"], Some("False"));
        let off = config("echo", false);
        let mut f = facts("echo", Some(&disabled), Some(&off), Some(&sources));
        f.judge = Judge::SpecSource(Some("test"));
        let verdict = cluster_checks(&f);
        assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
        let enabled = verdict.steps.iter().find(|s| s.id == "enabled").unwrap();
        assert_eq!(enabled.state, StepState::Warning);
        assert!(enabled.cause.as_deref().unwrap().contains("deploys anyway"));
        assert_eq!(
            verdict.source.and_then(|s| s.metadata.name.as_deref()),
            Some("test")
        );
        assert_eq!(
            predicted_message(&verdict.steps).as_deref(),
            Some(MSG_READY)
        );

        f.judge = Judge::SpecSource(Some("gone"));
        assert_eq!(
            verdict_message(&f).as_deref(),
            Some("ModuleSource \"gone\" not found")
        );
        // Before the override exists, create names the module's active source.
        f.judge = Judge::SpecSource(None);
        assert_eq!(
            cluster_checks(&f)
                .source
                .and_then(|s| s.metadata.name.as_deref()),
            Some("other")
        );
        // A missing Module does not stop gen A either.
        let mut missing = facts("ghost", None, None, Some(&sources));
        missing.judge = Judge::SpecSource(Some("test"));
        assert_eq!(verdict_message(&missing).as_deref(), Some(MSG_READY));
    }

    #[test]
    fn enabling_an_experimental_module_first_allows_experimental_modules() {
        let mut module = module("exp", "test", &["test"], Some("False"));
        if let Some(p) = module.properties.as_mut() {
            p.stage = Some("Experimental".into());
        }
        let off = config("exp", false);
        let env = |allow: Option<bool>| DeckhouseEnv {
            allow_experimental: allow,
            ..DeckhouseEnv::default()
        };
        let properties = module.properties.as_ref().unwrap();
        for allow in [None, Some(false)] {
            let step =
                check_enabled("exp", &module, properties, Some(&off), &env(allow)).unwrap_err();
            assert!(
                step.fix[0].starts_with(ALLOW_EXPERIMENTAL_FIX),
                "{:?}",
                step.fix
            );
            assert!(step.fix[1].contains("\"enabled\":true"), "{:?}", step.fix);
        }
        let step =
            check_enabled("exp", &module, properties, Some(&off), &env(Some(true))).unwrap_err();
        assert!(step.fix[0].contains("\"enabled\":true"), "{:?}", step.fix);
    }

    #[test]
    fn a_module_config_without_enabled_is_disabled_with_the_fix() {
        let module = module("echo", "test", &["test"], Some("False"));
        let mut config = config("echo", true);
        config.spec.enabled = None;
        let step = check_enabled(
            "echo",
            &module,
            module.properties.as_ref().unwrap(),
            Some(&config),
            &UNKNOWN_ENV,
        )
        .unwrap_err();
        assert_eq!(step.controller_message.as_deref(), Some(MSG_DISABLED));
        assert!(step.fix[0].contains("\"enabled\":true"), "{:?}", step.fix);
    }

    #[test]
    fn the_override_step_names_what_the_controller_reports() {
        let mut mpo = ModulePullOverride {
            metadata: meta("echo"),
            spec: MpoSpec {
                image_tag: "pr1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        mpo.status = Some(MpoStatus {
            message: Some("Validation error: bad values".into()),
            ..Default::default()
        });
        let step = override_step("echo", &mpo, SyncState::Unknown, None, None);
        assert_eq!(step.state, StepState::Failed);
        assert!(step.fix[0].starts_with("kubectl mpo registry files echo:pr1"));
        mpo.status = Some(MpoStatus {
            message: Some("Ready".into()),
            image_digest: Some("sha256:a".into()),
            ..Default::default()
        });
        let behind = override_step("echo", &mpo, SyncState::Behind, Some("sha256:b"), None);
        assert_eq!(behind.state, StepState::Warning);
        assert!(behind.summary.contains("sha256:b"));
    }

    #[test]
    fn gen_a_success_is_an_empty_message_with_a_digest() {
        let mut mpo = ModulePullOverride {
            status: Some(MpoStatus {
                message: Some(String::new()),
                image_digest: Some("sha256:a".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_ready(&mpo));
        mpo.status = Some(MpoStatus {
            message: Some(String::new()),
            ..Default::default()
        });
        assert!(!is_ready(&mpo));
    }
}
