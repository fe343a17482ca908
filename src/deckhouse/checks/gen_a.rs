//! Gen A's checks (docs/deckhouse-real.md §3.3): the ModuleSource `spec.source` names.

use super::*;

/// Gen A (docs/deckhouse-real.md §3.3): the controller checks nothing of the Module or
/// ModuleConfig and pulls from the ModuleSource the override names. What the module's
/// own state means is still said, as warnings: the image is deployed, but Deckhouse
/// does not run a module that is missing or disabled.
pub(super) fn run_gen_a_checks<'a>(
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
        if matches!(step.id, StepId::ActiveSource | StepId::Source) {
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
                    StepId::Source,
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
            StepId::Source,
            format!("ModuleSource {source_name} ({origin}): you may not read ModuleSources"),
        ));
        return None;
    };
    let Some(source) = find_source(sources, source_name) else {
        let others = source_names(sources);
        let mut step = Step::failed(
            StepId::Source,
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
        StepId::Source,
        format!(
            "ModuleSource {source_name} ({origin}) exists (repo {})",
            source.spec.registry.repo
        ),
    ));
    Some(source)
}
