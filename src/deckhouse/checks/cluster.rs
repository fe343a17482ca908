//! The controller's cluster-side checks 1–6 (docs/deckhouse-real.md §3.0), one named
//! function each: the Module, embedded, enabled, its active source, that source.

use super::*;

/// Check 1: the Module exists (the override is named after it).
pub fn check_module_exists<'a>(facts: &ClusterFacts<'a>) -> Check<&'a Module> {
    let name = facts.name;
    let Some(module) = facts.module else {
        let mut step = Step::failed(
            StepId::Module,
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
        Step::passed(StepId::Module, format!("Module {name} exists")),
        module,
    ))
}

/// The Module carries `properties` (Module v1alpha1); a Module API that keeps its data
/// elsewhere cannot be checked further (docs/deckhouse-real.md §3.18).
pub fn check_properties<'a>(name: &str, module: &'a Module) -> Result<&'a ModuleProperties, Step> {
    module.properties.as_ref().ok_or_else(|| {
        Step::unknown(StepId::Embedded, format!("Module {name} has no `properties`"))
            .because("this Module API version keeps its data elsewhere; the checks below cannot be run from it")
    })
}

/// Check 2: the module is not embedded in Deckhouse.
pub fn check_not_embedded(name: &str, properties: &ModuleProperties) -> Check<()> {
    if properties.source.as_deref() == Some("Embedded") {
        return Err(
            Step::failed(StepId::Embedded, format!("Module {name} is embedded in Deckhouse"), MSG_EMBEDDED)
                .because("built-in modules ship inside the Deckhouse image; a ModulePullOverride cannot replace them")
                .fix(format!("kubectl mpo delete {name}    # the override can never become Ready")),
        );
    }
    Ok((
        Step::passed(
            StepId::Embedded,
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
            Step::passed(
                StepId::Enabled,
                "enabled (condition EnabledByModuleConfig=True)",
            ),
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
                StepId::Enabled,
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
                        StepId::Enabled,
                        format!("enabled by default in {by} (no ModuleConfig; Deckhouse 1.{minor} follows it)"),
                    ),
                    (),
                )),
                Some(minor) => Err(Step::failed(
                    StepId::Enabled,
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
                            StepId::Enabled,
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
            StepId::Enabled,
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
            Step::passed(
                StepId::ActiveSource,
                format!("active source: {source_name}"),
            ),
            source_name,
        ));
    }
    let available = &properties.available_sources;
    let step = Step::failed(
        StepId::ActiveSource,
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
            Step::unknown(StepId::Source, format!("ModuleSource {source_name}: not readable"))
                .because("your user may not read ModuleSources (they hold registry credentials); the registry is checked only through --registry-repo with your own docker config.json")
                .fix(format!("kubectl mpo explain {name} --registry-repo HOST/PATH    # the repo of ModuleSource {source_name}")),
        );
    };
    let Some(source) = find_source(sources, source_name) else {
        let others = source_names(sources);
        let step = Step::failed(
            StepId::Source,
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
            StepId::Source,
            format!(
                "ModuleSource {source_name} exists (repo {})",
                source.spec.registry.repo
            ),
        ),
        source,
    ))
}

/// The ModuleSource of that name.
pub(super) fn find_source<'a>(sources: &'a [ModuleSource], name: &str) -> Option<&'a ModuleSource> {
    sources
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
}

/// The names of the ModuleSources there are, for "existing: ...".
pub(super) fn source_names(sources: &[ModuleSource]) -> Vec<&str> {
    sources
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect()
}
