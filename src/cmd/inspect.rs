//! Gathers what the diagnosis needs from the cluster and the registry, and prints the
//! resulting steps. Shared by `explain`, `create`/`edit` preflight and `status`.

use std::time::Duration;

use super::Ctx;
use crate::cli::RegistryFallbackArgs;
use crate::cluster::Cluster;
use crate::deckhouse::diagnosis::{self, ClusterFacts, Step, StepState};
use crate::deckhouse::resources::{Module, ModuleConfig, ModuleSource};
use crate::error::{Error, Result};
use crate::output::Tone;
use crate::registry::{RegistryError, RegistryOptions, ResolvedDigest, SourceRegistry};

/// Default bound on each registry request.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn registry_options(timeout: Duration) -> RegistryOptions {
    RegistryOptions { timeout }
}

/// The cluster objects one module's diagnosis reads.
pub struct Facts {
    pub module: Option<Module>,
    pub config: Option<ModuleConfig>,
    /// `None`: the user may not list ModuleSources.
    pub sources: Option<Vec<ModuleSource>>,
    pub module_names: Vec<String>,
}

/// Lists ModuleSources; a 403 is "not readable", not an error.
pub async fn list_sources(cluster: &Cluster) -> Result<Option<Vec<ModuleSource>>> {
    match crate::cluster::decode::list(&cluster.module_sources(), &Default::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
        Err(err) => Err(cluster.api_error(err, "list", "modulesources.deckhouse.io")),
    }
}

pub async fn gather(cluster: &Cluster, name: &str) -> Result<Facts> {
    let modules = cluster.modules();
    let configs = cluster.module_configs();
    let (module, config, sources) = tokio::join!(
        crate::cluster::decode::get_opt(&modules, name),
        crate::cluster::decode::get_opt(&configs, name),
        list_sources(cluster)
    );
    let module = module.map_err(|err| cluster.api_error(err, "get", "modules.deckhouse.io"))?;
    let config = match config {
        Ok(config) => config,
        Err(kube::Error::Api(status)) if status.code == 403 => None,
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
    Ok(Facts {
        module,
        config,
        sources: sources?,
        module_names,
    })
}

/// The full diagnosis of one module at one tag.
pub struct Diagnosis {
    pub steps: Vec<Step>,
    pub source: Option<ModuleSource>,
    pub registry: Option<std::result::Result<ResolvedDigest, RegistryError>>,
}

impl Diagnosis {
    pub fn blocked(&self) -> bool {
        self.steps.iter().any(|s| s.state == StepState::Failed)
    }

    pub fn registry_digest(&self) -> Option<&ResolvedDigest> {
        self.registry.as_ref()?.as_ref().ok()
    }
}

pub async fn diagnose(
    cluster: &Cluster,
    name: &str,
    tag: Option<&str>,
    offline: bool,
    timeout: Duration,
) -> Result<Diagnosis> {
    let facts = gather(cluster, name).await?;
    let verdict = diagnosis::cluster_checks(&ClusterFacts {
        name,
        module: facts.module.as_ref(),
        config: facts.config.as_ref(),
        sources: facts.sources.as_deref(),
        module_names: &facts.module_names,
    });
    let mut steps = verdict.steps;
    let source = verdict.source.cloned();
    let mut image: Option<String> = None;
    let mut registry = None;
    if let (Some(source), Some(tag), false) = (&source, tag, offline) {
        let result = match SourceRegistry::from_source(source, &registry_options(timeout)) {
            Ok(client) => {
                image = Some(client.image_name(name, tag));
                client.module_digest(name, tag).await
            }
            Err(err) => Err(err),
        };
        let shown = image
            .clone()
            .unwrap_or_else(|| format!("{}/{name}:{tag}", source.spec.registry.repo));
        steps.push(diagnosis::registry_step(name, tag, source, &shown, &result));
        registry = Some(result);
    }
    Ok(Diagnosis {
        steps,
        source,
        registry,
    })
}

fn mark(ctx: &Ctx, state: StepState) -> String {
    match state {
        StepState::Passed => ctx.printer.paint("✓", Tone::Good),
        StepState::Warning => ctx.printer.paint("!", Tone::Warn),
        StepState::Failed => ctx.printer.paint("✗", Tone::Bad),
        StepState::Unknown => ctx.printer.paint("?", Tone::Dim),
    }
}

/// One line per step; causes and fixes under the steps that did not pass.
pub fn print_steps(ctx: &Ctx, steps: &[Step], to_stderr: bool) {
    let emit = |text: String| {
        if to_stderr {
            ctx.printer.note(text);
        } else {
            ctx.printer.line(text);
        }
    };
    for step in steps {
        emit(format!("  {} {}", mark(ctx, step.state), step.summary));
        if let Some(cause) = &step.cause {
            emit(format!("      cause: {cause}"));
        }
        for (index, fix) in step.fix.iter().enumerate() {
            let label = if index == 0 { "fix:  " } else { "      " };
            for (line_index, line) in fix.lines().enumerate() {
                let prefix = if line_index == 0 { label } else { "      " };
                emit(format!("      {prefix}{line}"));
            }
        }
    }
}

/// Name shown for the registry given with `--registry-repo`.
const FALLBACK_SOURCE: &str = "(--registry-repo)";

/// The registry given with `--registry-repo`, as a ModuleSource-shaped value: the repo,
/// the docker config.json's credentials (as a dockerCfg), the CA and the scheme.
pub struct Fallback {
    pub source: ModuleSource,
    /// `<repo> with credentials from <path>`, for the note; never the credentials.
    described: String,
}

impl Fallback {
    /// Says on stderr that registry access does not come from a ModuleSource.
    pub fn announce(&self, ctx: &Ctx) {
        ctx.printer.note(format!(
            "note: registry access through --registry-repo {}, not a ModuleSource",
            self.described
        ));
    }
}

/// Reads and checks `--registry-repo`, `--registry-config` and `--registry-ca` (bad
/// values are usage errors, before any request). `None` when `--registry-repo` is
/// absent. The config's content never reaches a message.
pub fn fallback_source(args: &RegistryFallbackArgs) -> Result<Option<Fallback>> {
    let Some(given) = args.registry_repo.as_deref() else {
        return Ok(None);
    };
    let (scheme, repo) = if let Some(rest) = given.strip_prefix("http://") {
        (Some("HTTP".to_string()), rest)
    } else {
        (None, given.strip_prefix("https://").unwrap_or(given))
    };
    let repo = repo.trim().trim_end_matches('/');
    let (host, path) = repo.split_once('/').unwrap_or((repo, ""));
    if host.is_empty() || path.is_empty() || repo.chars().any(char::is_whitespace) {
        return Err(Error::usage(format!(
            "--registry-repo {given:?} is not of the form [http://]HOST[:PORT]/PATH"
        )));
    }
    let (config_path, explicit) = match &args.registry_config {
        Some(path) => (Some(path.clone()), true),
        None => (default_docker_config(), false),
    };
    let mut described = "no credentials".to_string();
    let mut docker_cfg = None;
    if let Some(path) = config_path {
        match std::fs::read(&path) {
            Ok(bytes) => {
                docker_cfg = Some(docker_cfg_from_config(&bytes).map_err(|what| {
                    Error::usage(format!("{}: {what}", path.display()))
                        .with_hint("expected a docker config.json: {\"auths\": {\"HOST\": {\"auth\": \"...\"}}}")
                })?);
                described = format!("credentials from {}", path.display());
            }
            Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(Error::usage(format!(
                    "cannot read --registry-config {}: {err}",
                    path.display()
                )));
            }
        }
    }
    let ca = match &args.registry_ca {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
            Error::usage(format!(
                "cannot read --registry-ca {}: {err}",
                path.display()
            ))
        })?),
        None => None,
    };
    let mut source = ModuleSource::new(FALLBACK_SOURCE, Default::default());
    source.spec.registry = crate::deckhouse::resources::SourceRegistry {
        repo: repo.to_string(),
        docker_cfg,
        ca,
        scheme,
    };
    Ok(Some(Fallback {
        source,
        described: format!("{repo} with {described}"),
    }))
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn default_docker_config() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(std::path::Path::new(&dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(
        std::path::Path::new(&home)
            .join(".docker")
            .join("config.json"),
    )
}

/// A docker config.json turned into a ModuleSource dockerCfg (base64), with the
/// `auths` keys reduced to `host[:port]` (docker also writes `https://host/v1/`).
fn docker_cfg_from_config(bytes: &[u8]) -> std::result::Result<String, &'static str> {
    use base64::Engine;
    let config: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not valid JSON")?;
    let auths = match config.get("auths") {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(auths)) => auths.clone(),
        Some(_) => return Err("\"auths\" is not an object"),
    };
    let normalised: serde_json::Map<String, serde_json::Value> = auths
        .into_iter()
        .map(|(key, entry)| {
            let bare = key
                .strip_prefix("https://")
                .or_else(|| key.strip_prefix("http://"))
                .unwrap_or(&key);
            let host = bare.split('/').next().unwrap_or(bare).to_string();
            (host, entry)
        })
        .collect();
    let text = serde_json::json!({ "auths": normalised }).to_string();
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

/// The ModuleSource a registry command or lookup should use: `--registry-repo`, else
/// `--source`, else the module's active source, else the only ModuleSource.
pub async fn choose_source(
    ctx: &Ctx,
    cluster: &Cluster,
    module: Option<&str>,
    flag: Option<&str>,
    fallback: Option<&Fallback>,
) -> Result<ModuleSource> {
    if let Some(fallback) = fallback {
        fallback.announce(ctx);
        return Ok(fallback.source.clone());
    }
    let sources = list_sources(cluster).await?.ok_or_else(|| {
        Error::runtime(format!(
            "forbidden: you may not list modulesources.deckhouse.io on {} (context {:?})",
            cluster.server, cluster.context
        ))
        .with_hint("the registry credentials live in the ModuleSource; ask for 'get' on modulesources.deckhouse.io, or pass --registry-repo HOST/PATH with your own docker config.json (--registry-config)")
    })?;
    let names = || {
        sources
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = match (flag, module) {
        (Some(flag), _) => Some(flag.to_string()),
        (None, Some(module)) => cluster
            .modules()
            .get_opt(module)
            .await
            .map_err(|err| cluster.api_error(err, "get", "modules.deckhouse.io"))?
            .and_then(|m| m.properties)
            .and_then(|p| {
                p.source
                    .filter(|s| !s.is_empty() && s != "Embedded")
                    .or_else(|| p.available_sources.first().cloned())
            }),
        (None, None) => None,
    };
    match wanted {
        Some(name) => sources
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .cloned()
            .ok_or_else(|| {
                Error::runtime(format!("ModuleSource {name:?} not found"))
                    .with_hint(format!("existing ModuleSources: {}", names()))
            }),
        None if sources.len() == 1 => Ok(sources[0].clone()),
        None if sources.is_empty() => Err(Error::runtime("the cluster has no ModuleSources")),
        None => Err(
            Error::usage("several ModuleSources exist; choose one with --source NAME")
                .with_hint(format!("ModuleSources: {}", names())),
        ),
    }
}

/// A registry client for a ModuleSource, with errors in the tool's format.
pub fn client_for(source: &ModuleSource, timeout: Duration) -> Result<SourceRegistry> {
    SourceRegistry::from_source(source, &registry_options(timeout))
        .map_err(|err| registry_error(source, err))
}

pub fn registry_error(source: &ModuleSource, err: RegistryError) -> Error {
    let name = source.metadata.name.as_deref().unwrap_or_default();
    Error::runtime(format!(
        "registry of ModuleSource {name} ({}): {}",
        source.spec.registry.repo, err.message
    ))
    .with_detail(format!("registry error kind: {:?}", err.kind))
    .with_hint(match err.kind {
        crate::registry::RegistryErrorKind::NotFound => {
            "list what exists with: kubectl mpo registry tags MODULE".to_string()
        }
        _ => "see what is wrong with: kubectl mpo explain MODULE".to_string(),
    })
}
