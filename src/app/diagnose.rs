//! What a diagnosis needs from the cluster (one loader with one RBAC policy, for one
//! module or for all), the checks run on it, the registry's answer, and the reports
//! built from them: `explain`, the preflight of `create`/`edit`, the causes under
//! `status`, and the explanation after a failed `--wait`.

use std::time::Duration;

use super::Ctx;
use super::overrides::Overrides;
use super::report::print_steps;
use super::sources;
use crate::cluster::{Cluster, decode};
use crate::deckhouse::checks::{self, ClusterFacts, DeckhouseEnv, Judge, Step, StepId, StepState};
use crate::deckhouse::resources::{
    Module, ModuleConfig, ModulePullOverride, ModuleSource, MpoVersion,
};
use crate::error::Result;
use crate::output::To;
use crate::registry::{
    RegistryError, RegistryOptions, RegistryTarget, ResolvedDigest, SourceRegistry,
};

/// The cluster objects the checks read. ModuleSources and ModuleConfigs the user may
/// not read (403) are "unknown", never an error: they hold credentials and settings
/// that a developer's RBAC often hides.
pub struct World {
    pub modules: ByName<Module>,
    pub configs: ByName<ModuleConfig>,
    /// `None`: the user may not list ModuleSources.
    pub sources: Option<Vec<ModuleSource>>,
    /// All Module names, for "did you mean" (filled only when one module is missing).
    pub module_names: Vec<String>,
    /// The cluster's edition, bundle, Deckhouse version and experimental allowance.
    pub deckhouse: DeckhouseEnv,
}

/// The Deckhouse version and edition (from the `deckhouse` Deployment) with the bundle
/// and experimental allowance of ModuleConfig `deckhouse` (outer `None`: that
/// ModuleConfig is not readable).
fn deckhouse_env(
    (version, edition): (Option<String>, Option<String>),
    deckhouse_config: Option<Option<&ModuleConfig>>,
) -> DeckhouseEnv {
    DeckhouseEnv {
        edition,
        bundle: deckhouse_config.map(|config| {
            config
                .and_then(|c| c.spec.settings.as_ref())
                .and_then(|settings| settings.get("bundle"))
                .and_then(|bundle| bundle.as_str())
                .filter(|bundle| !bundle.is_empty())
                .unwrap_or("Default")
                .to_string()
        }),
        dkp_minor: version.as_deref().and_then(super::generation::minor),
        allow_experimental: deckhouse_config.map(|config| {
            config
                .and_then(|c| c.spec.settings.as_ref())
                .and_then(|settings| settings.get("allowExperimentalModules"))
                .and_then(|allow| allow.as_bool())
                .unwrap_or(false)
        }),
    }
}

fn forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 403)
}

/// Objects looked up by name: sorted once and searched. With thousands of large
/// objects this is a third of the memory of a map, and the list is not copied into it.
pub struct ByName<T>(Vec<T>);

impl<T: kube::Resource> ByName<T> {
    fn new(mut items: Vec<T>) -> Self {
        items.sort_unstable_by(|a, b| Self::name(a).cmp(Self::name(b)));
        items.shrink_to_fit();
        ByName(items)
    }

    fn name(item: &T) -> &str {
        item.meta().name.as_deref().unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        let found = self.0.binary_search_by(|item| Self::name(item).cmp(name));
        found.ok().map(|index| &self.0[index])
    }
}

/// Lists ModuleSources; a 403 is "not readable", not an error.
pub async fn list_sources(cluster: &Cluster) -> Result<Option<Vec<ModuleSource>>> {
    match decode::list(&cluster.module_sources(), &Default::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(err) if forbidden(&err) => Ok(None),
        Err(err) => Err(cluster.api_error(err, "list", "modulesources.deckhouse.io")),
    }
}

impl World {
    /// Everything, for checks over all overrides (`status`).
    pub async fn load_all(cluster: &Cluster) -> Result<Self> {
        let params = kube::api::ListParams::default();
        let (modules_api, configs_api) = (cluster.modules(), cluster.module_configs());
        let (modules, configs, sources, version) = tokio::join!(
            decode::list(&modules_api, &params),
            decode::list(&configs_api, &params),
            list_sources(cluster),
            super::generation::deckhouse(cluster)
        );
        let modules =
            modules.map_err(|err| cluster.api_error(err, "list", "modules.deckhouse.io"))?;
        // ModuleConfigs only refine the causes: a user who may not read them (or a
        // cluster without the CRD) still gets a table; an answer that does not decode
        // is reported.
        let (configs, readable) = match configs {
            Ok(list) => (list.items, true),
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
                (Vec::new(), false)
            }
            Err(err) => return Err(cluster.api_error(err, "list", "moduleconfigs.deckhouse.io")),
        };
        let configs = ByName::new(configs);
        let deckhouse = deckhouse_env(version, readable.then(|| configs.get("deckhouse")));
        Ok(World {
            modules: ByName::new(modules.items),
            configs,
            sources: sources?,
            module_names: Vec::new(),
            deckhouse,
        })
    }

    /// One module's objects (`explain`, preflight).
    pub async fn load_one(cluster: &Cluster, name: &str) -> Result<Self> {
        let modules = cluster.modules();
        let configs = cluster.module_configs();
        let (module, config, sources, version, deckhouse_config) = tokio::join!(
            decode::get_opt(&modules, name),
            decode::get_opt(&configs, name),
            list_sources(cluster),
            super::generation::deckhouse(cluster),
            decode::get_opt(&configs, "deckhouse")
        );
        let deckhouse = deckhouse_env(version, deckhouse_config.as_ref().ok().map(Option::as_ref));
        let module = module.map_err(|err| cluster.api_error(err, "get", "modules.deckhouse.io"))?;
        let config = match config {
            Ok(config) => config,
            Err(err) if forbidden(&err) => None,
            Err(err) => return Err(cluster.api_error(err, "get", "moduleconfigs.deckhouse.io")),
        };
        let module_names = if module.is_none() {
            modules
                .list_metadata(&Default::default())
                .await
                .map(|list| {
                    list.items
                        .into_iter()
                        .filter_map(|m| m.metadata.name)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(World {
            modules: ByName::new(module.into_iter().collect()),
            configs: ByName::new(config.into_iter().collect()),
            sources: sources?,
            module_names,
            deckhouse,
        })
    }

    /// The checks' view of one module, as `judge` sees it.
    pub fn facts<'a>(&'a self, name: &'a str, judge: Judge<'a>) -> ClusterFacts<'a> {
        ClusterFacts {
            name,
            module: self.modules.get(name),
            config: self.configs.get(name),
            sources: self.sources.as_deref(),
            module_names: &self.module_names,
            deckhouse: &self.deckhouse,
            judge,
        }
    }

    /// The first check that did not pass, as one line (the cause under a `status`
    /// row), and the ModuleSource the controller would pull from. The source is
    /// borrowed: a ModuleSource lists every module in its status, so a copy per row
    /// would grow with the square of the number of modules.
    pub fn cause_and_source<'a>(
        &'a self,
        object: &'a ModulePullOverride,
    ) -> (Option<String>, Option<&'a ModuleSource>) {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let verdict = checks::cluster_checks(&self.facts(name, Judge::of(object)));
        let cause = verdict
            .steps
            .iter()
            // ModuleSources the user may not read are said once for the whole table
            // (a note on stderr), not as every row's cause: the row keeps the
            // controller's own message then.
            .find(|s| {
                s.state == StepState::Failed
                    || (s.state == StepState::Unknown
                        && !(s.id == StepId::Source && self.sources.is_none()))
            })
            .map(|s| s.cause.clone().unwrap_or_else(|| s.summary.clone()));
        (cause, verdict.source)
    }
}

/// The full diagnosis of one module at one tag.
pub struct Diagnosis {
    pub steps: Vec<Step>,
    pub source: Option<ModuleSource>,
    pub registry: Option<std::result::Result<ResolvedDigest, RegistryError>>,
    /// The registry client the diagnosis used (for further reads of the same image).
    pub client: Option<SourceRegistry>,
    /// What the registry client noticed (a CA ignored, a wrong digest header...).
    pub notices: Vec<crate::registry::Notice>,
}

impl Diagnosis {
    pub fn blocked(&self) -> bool {
        self.steps.iter().any(|s| s.state == StepState::Failed)
    }

    pub fn registry_digest(&self) -> Option<&ResolvedDigest> {
        self.registry.as_ref()?.as_ref().ok()
    }

    /// The steps that did not pass, for short reports.
    pub fn problems(&self) -> Vec<Step> {
        self.steps
            .iter()
            .filter(|s| s.state != StepState::Passed)
            .cloned()
            .collect()
    }
}

/// What one diagnosis looks at, and how far.
pub struct Request<'a> {
    pub tag: Option<&'a str>,
    /// No registry lookup.
    pub offline: bool,
    pub timeout: Duration,
    /// Also read the image's settings schema and `module.yaml`.
    pub inspect_image: bool,
    /// `--registry-repo`: the registry to ask instead of the ModuleSource's.
    pub fallback: Option<&'a RegistryTarget>,
    pub judge: Judge<'a>,
}

impl<'a> Request<'a> {
    /// The cluster checks only, as `judge` makes them.
    pub fn offline(judge: Judge<'a>) -> Self {
        Request {
            tag: None,
            offline: true,
            timeout: sources::REGISTRY_TIMEOUT,
            inspect_image: false,
            fallback: None,
            judge,
        }
    }

    /// The cluster checks and the registry's answer for `tag`.
    pub fn online(tag: &'a str, judge: Judge<'a>) -> Self {
        Request {
            tag: Some(tag),
            offline: false,
            ..Request::offline(judge)
        }
    }
}

/// Who judges an override on this cluster: on a v1alpha1-only cluster (gen A) the
/// ModuleSource named by `named` (`--source`), else by the existing override, else
/// none yet; the Module on the others.
pub fn judge_for<'a>(
    overrides: &Overrides,
    existing: Option<&'a ModulePullOverride>,
    named: Option<&'a str>,
) -> Judge<'a> {
    match (overrides.version, named, existing) {
        (MpoVersion::V1alpha2, _, _) => Judge::Module,
        (MpoVersion::V1alpha1, Some(named), _) => Judge::SpecSource(Some(named)),
        (MpoVersion::V1alpha1, None, Some(existing)) => Judge::of(existing),
        (MpoVersion::V1alpha1, None, None) => Judge::SpecSource(None),
    }
}

/// The cluster checks, then (with a tag, online, and a readable source or
/// `--registry-repo`) the registry.
pub async fn diagnose(cluster: &Cluster, name: &str, request: Request<'_>) -> Result<Diagnosis> {
    let Request {
        tag,
        offline,
        timeout,
        inspect_image,
        fallback,
        judge,
    } = request;
    let world = World::load_one(cluster, name).await?;
    let verdict = checks::cluster_checks(&world.facts(name, judge));
    let mut steps = verdict.steps;
    let source = verdict.source.cloned();
    let mut registry = None;
    let mut kept_client = None;
    let mut notices = Vec::new();
    // `--registry-repo` wins over the ModuleSource, as in every other command.
    let origin = match (fallback, &source) {
        (Some(fallback), _) => Some((fallback.clone(), None)),
        (None, Some(source)) => Some((super::sources::target_of(source), Some(source))),
        (None, None) => None,
    };
    if let (Some((target, from_source)), Some(tag), false) = (origin, tag, offline) {
        let client = SourceRegistry::new(&target, &RegistryOptions { timeout });
        let settings = world
            .configs
            .get(name)
            .and_then(|config| config.spec.settings.as_ref());
        let (image, result, image_steps) = match &client {
            Ok(client) => {
                // The image is read while the digest is resolved: one round trip less;
                // its steps count only when the tag resolved.
                let image_steps = async {
                    if inspect_image {
                        super::image_preflight::image_steps(cluster, client, name, tag, settings)
                            .await
                    } else {
                        Vec::new()
                    }
                };
                let (result, image_steps) =
                    tokio::join!(client.module_digest(name, tag), image_steps);
                notices = client.take_notices();
                (client.image_name(name, tag), result, image_steps)
            }
            Err(err) => (
                format!("{}/{name}:{tag}", target.repo),
                Err(err.clone()),
                Vec::new(),
            ),
        };
        let mut step = match from_source {
            Some(source) => checks::registry_step(name, tag, source, &image, &result),
            None => checks::registry_step_via_flag(name, tag, &target.repo, &image, &result),
        };
        if matches!(judge, Judge::SpecSource(_)) {
            // Gen A writes the registry client's own error text (§3.3).
            step.controller_message = None;
        }
        steps.push(step);
        if result.is_ok() {
            steps.extend(image_steps);
        }
        registry = Some(result);
        kept_client = client.ok();
    }
    Ok(Diagnosis {
        steps,
        source,
        registry,
        client: kept_client,
        notices,
    })
}

/// What `create`/`edit` learn before writing: would the override become Ready, from
/// which source, with which digest. Problems are printed on stderr.
pub struct Preflight {
    pub ok: bool,
    /// The image's own checks failed (settings schema, requirements, stage).
    pub image_failed: bool,
    pub source: Option<String>,
    pub registry_digest: Option<String>,
    /// Set when the tag is a multi-arch index: the index's own digest.
    pub registry_index_digest: Option<String>,
}

/// `creating`: no override exists yet, so fixes say `create`, not `edit`.
/// `inspect_image`: also read the image's settings schema and `module.yaml`.
/// `named_source`: on a v1alpha1-only cluster, the ModuleSource the override names
/// (`--source`, or the existing override's `spec.source`).
pub async fn preflight(
    ctx: &Ctx,
    overrides: &Overrides,
    module: &str,
    tag: &str,
    creating: bool,
    inspect_image: bool,
    named_source: Option<&str>,
) -> Result<Preflight> {
    let spinner = ctx.printer.spinner(format!("checking {module}:{tag}"));
    let request = Request {
        inspect_image,
        ..Request::online(tag, judge_for(overrides, None, named_source))
    };
    let diagnosis = diagnose(&overrides.cluster, module, request).await;
    drop(spinner);
    let mut diagnosis = diagnosis?;
    if creating {
        // No override exists yet: a fix that changes its tag is a create with it.
        let edit = ["kubectl", "mpo", "edit", module, "--tag"].join(" ");
        let create = ["kubectl", "mpo", "create", module, "--tag"].join(" ");
        for step in &mut diagnosis.steps {
            for fix in &mut step.fix {
                *fix = fix.replace(&edit, &create);
            }
        }
    }
    if diagnosis
        .steps
        .iter()
        .any(|s| s.id == StepId::Source && s.state == StepState::Unknown)
    {
        ctx.printer.note(format!(
            "note: you may not read ModuleSources, so tag {tag} was not checked in the registry"
        ));
    }
    if diagnosis.blocked() {
        ctx.printer
            .note(format!("{module}:{tag} would not become Ready:"));
        print_steps(&ctx.printer, &diagnosis.problems(), To::Err);
    }
    // An image without the files the checks read passes, and says so.
    for step in diagnosis.steps.iter().filter(|s| {
        s.id.is_image() && s.state == StepState::Passed && s.summary.contains("not checked")
    }) {
        ctx.printer.note(&step.summary);
    }
    Ok(Preflight {
        ok: !diagnosis.blocked(),
        image_failed: diagnosis
            .steps
            .iter()
            .any(|s| s.id.is_image() && s.state == StepState::Failed),
        registry_digest: diagnosis.registry_digest().map(|d| d.digest.clone()),
        registry_index_digest: diagnosis
            .registry_digest()
            .and_then(|d| d.index_digest.clone()),
        source: diagnosis.source.and_then(|s| s.metadata.name),
    })
}

/// After the controller refused an override: the checks that fail now, the override's
/// own step (a `Validation error` is about the image, not the cluster), and where the
/// full report is. On stderr.
pub async fn explain_failure(ctx: &Ctx, overrides: &Overrides, object: &ModulePullOverride) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let tag = object.spec.image_tag.clone();
    if let Ok(diagnosis) = diagnose(
        &overrides.cluster,
        &name,
        Request::online(&tag, Judge::of(object)),
    )
    .await
    {
        let mut problems = diagnosis.problems();
        if !diagnosis.blocked() {
            problems.push(checks::override_step(
                &name,
                object,
                checks::SyncState::Unknown,
                None,
                None,
            ));
        }
        print_steps(&ctx.printer, &problems, To::Err);
    }
    ctx.printer
        .note(format!("full report: kubectl mpo explain {name}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_by_name_whatever_order_they_came_in() {
        let module = |name: &str| {
            let mut module = Module::default();
            module.metadata.name = Some(name.to_string());
            module
        };
        let by_name = ByName::new(["echo", "alpha", "zeta", "mid"].map(module).to_vec());
        for name in ["echo", "alpha", "zeta", "mid"] {
            let found = by_name.get(name).expect(name);
            assert_eq!(found.metadata.name.as_deref(), Some(name));
        }
        assert!(by_name.get("ghost").is_none());
        assert!(ByName::<Module>::new(Vec::new()).get("echo").is_none());
    }
}
