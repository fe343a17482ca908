//! Which registry a command talks to and how: a ModuleSource (the module's active
//! source, `--source`, or the only one), or `--registry-repo` with docker's
//! config.json for users who may not read ModuleSources; one client per registry; and
//! the concurrent digest lookups behind `status` and `renew --wait`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dialoguer::FuzzySelect;
use futures::StreamExt;

use super::Ctx;
use super::diagnose::World;
use super::overrides::Overrides;
use crate::cluster::Cluster;
use crate::deckhouse::layout::is_hash_tag;
use crate::deckhouse::resources::{ModulePullOverride, ModuleSource};
use crate::error::{Error, Result};
use crate::registry::{
    RegistryError, RegistryErrorKind, RegistryOptions, RegistryTarget, ResolvedDigest,
    SourceRegistry,
};

/// Default bound on each registry lookup.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many registry lookups run at once.
pub const CONCURRENCY: usize = 32;

/// The registry given with `--registry-repo`, and how to describe it (never the
/// credentials).
pub struct Fallback {
    pub target: RegistryTarget,
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

/// The registry a ModuleSource names, with its dockerCfg, CA and scheme.
pub fn target_of(source: &ModuleSource) -> RegistryTarget {
    let registry = &source.spec.registry;
    let mut target = RegistryTarget::with_docker_cfg(
        &registry.repo,
        registry.docker_cfg.as_deref(),
        registry.ca.as_deref(),
        registry.scheme.as_deref(),
    );
    target.name = source.metadata.name.clone().unwrap_or_default();
    target
}

/// `--registry-repo`, `--registry-config` and `--registry-ca` as given, not yet read.
#[derive(Debug, Clone, Default)]
pub struct FallbackSpec {
    pub registry_repo: Option<String>,
    pub registry_config: Option<std::path::PathBuf>,
    pub registry_ca: Option<std::path::PathBuf>,
}

/// Reads and checks `--registry-repo`, `--registry-config` and `--registry-ca` (bad
/// values are usage errors, before any request). `None` without `--registry-repo`.
pub fn fallback(args: &FallbackSpec) -> Result<Option<Fallback>> {
    let Some(given) = args.registry_repo.as_deref() else {
        return Ok(None);
    };
    // `https://` written out means HTTPS only; without a scheme, a private or loopback
    // host may fall back to plain HTTP as Deckhouse does (docs/deckhouse-real.md §3.8).
    let (scheme, repo) = if let Some(rest) = given.strip_prefix("http://") {
        (Some("HTTP"), rest)
    } else if let Some(rest) = given.strip_prefix("https://") {
        (Some("HTTPS"), rest)
    } else {
        (None, given)
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
    let config = match config_path {
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => Some((path, bytes)),
            Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(Error::usage(format!(
                    "cannot read --registry-config {}: {err}",
                    path.display()
                )));
            }
        },
        None => None,
    };
    let ca = match &args.registry_ca {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
            Error::usage(format!(
                "cannot read --registry-ca {}: {err}",
                path.display()
            ))
        })?),
        None => None,
    };
    let described = match &config {
        Some((path, _)) => format!("{repo} with credentials from {}", path.display()),
        None => format!("{repo} with no credentials"),
    };
    let target = RegistryTarget::from_docker_config(
        repo,
        scheme,
        config
            .as_ref()
            .map(|(path, bytes)| (path.as_path(), bytes.as_slice())),
        ca,
    )
    .map_err(|what| {
        Error::usage(what).with_hint(
            "expected a docker config.json: {\"auths\": {\"HOST\": {\"auth\": \"...\"}}}",
        )
    })?;
    Ok(Some(Fallback { target, described }))
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

/// The registry a command should use: `--registry-repo`, else `--source`, else the
/// module's active source, else the only ModuleSource.
pub async fn choose_target(
    ctx: &Ctx,
    cluster: &Cluster,
    module: Option<&str>,
    flag: Option<&str>,
    fallback: Option<&Fallback>,
) -> Result<RegistryTarget> {
    if let Some(fallback) = fallback {
        fallback.announce(ctx);
        return Ok(fallback.target.clone());
    }
    let sources = super::diagnose::list_sources(cluster).await?.ok_or_else(|| {
        Error::runtime(format!(
            "forbidden: you may not list modulesources.deckhouse.io on {}",
            cluster.place()
        ))
        .with_hint("the registry credentials live in the ModuleSource; ask for 'list' on modulesources.deckhouse.io, or pass --registry-repo HOST/PATH with your own docker config.json (--registry-config)")
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
        (None, Some(module)) => {
            let found = cluster
                .modules()
                .get_opt(module)
                .await
                .map_err(|err| cluster.api_error(err, "get", "modules.deckhouse.io"))?;
            let Some(found) = found else {
                // With one source the registry may still hold it; with several there is
                // nothing to choose by, and the module is the real problem.
                if sources.len() > 1 {
                    return Err(Error::from_server(
                        "NotFound",
                        format!(
                            "modules.deckhouse.io {module:?} not found on {}",
                            cluster.place()
                        ),
                    )
                    .with_hint(format!(
                        "see why and what exists with: kubectl mpo explain {module}"
                    )));
                }
                return Ok(target_of(sources.first().ok_or_else(|| {
                    Error::runtime("the cluster has no ModuleSources")
                })?));
            };
            let properties = found.properties.unwrap_or_default();
            if properties.source.as_deref() == Some("Embedded") {
                // deckhouse-real.md: an embedded module ships inside the Deckhouse image,
                // so no ModuleSource's registry is the module's own.
                return Err(Error::condition(format!(
                    "module {module} is embedded in Deckhouse: it ships inside the Deckhouse image, not in a ModuleSource's registry"
                ))
                .with_hint(format!(
                    "to look in a ModuleSource's registry anyway, pass --source NAME (ModuleSources: {})",
                    names()
                )));
            }
            match properties.source.filter(|s| !s.is_empty()) {
                Some(own) => Some(own),
                None => {
                    let available = properties.available_sources;
                    if available.len() > 1 {
                        ctx.printer.note(format!(
                            "note: ModuleSources {} offer {module} and ModuleConfig {module} chooses none; using {} (pick another with --source NAME)",
                            available.join(", "),
                            available[0]
                        ));
                    }
                    available.first().cloned()
                }
            }
        }
        (None, None) => None,
    };
    let chosen: &ModuleSource = match wanted {
        Some(name) => sources
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| {
                Error::runtime(format!("ModuleSource {name:?} not found"))
                    .with_hint(format!("existing ModuleSources: {}", names()))
            })?,
        None if sources.len() == 1 => &sources[0],
        None if sources.is_empty() => {
            return Err(Error::runtime("the cluster has no ModuleSources"));
        }
        None => {
            return Err(
                Error::usage("several ModuleSources exist; choose one with --source NAME")
                    .with_hint(format!("ModuleSources: {}", names())),
            );
        }
    };
    if sources.len() > 1 {
        ctx.printer.debug(
            1,
            format!(
                "using ModuleSource {}",
                chosen.metadata.name.as_deref().unwrap_or_default()
            ),
        );
    }
    Ok(target_of(chosen))
}

/// A registry client for `target`, with errors in the tool's format.
pub fn client_for(target: &RegistryTarget, timeout: Duration) -> Result<SourceRegistry> {
    SourceRegistry::new(target, &RegistryOptions { timeout })
        .map_err(|err| registry_error(target, None, err))
}

/// A registry failure as the tool reports it: which registry, what it said, and a next
/// step that exists (`module`: the module the command was about, for the hint).
pub fn registry_error(target: &RegistryTarget, module: Option<&str>, err: RegistryError) -> Error {
    let fallback = target.name == crate::registry::FALLBACK_NAME;
    let whose = if fallback {
        format!("registry {}", target.repo)
    } else {
        format!("registry of ModuleSource {} ({})", target.name, target.repo)
    };
    // Hints name the same registry the command used, so that they work for a user who
    // may not read ModuleSources too.
    let same_registry = if fallback {
        format!(" --registry-repo {}", target.repo)
    } else {
        format!(" --source {}", target.name)
    };
    let hint = match (err.kind, module) {
        // The module's repository itself is unknown: its tags cannot help.
        (RegistryErrorKind::NotFound, Some(module)) if err.message.contains("NameUnknown") => {
            format!(
                "{}/{module} is not a repository of that registry; list the modules it holds with: kubectl mpo registry modules{same_registry}",
                target.repo
            )
        }
        (RegistryErrorKind::NotFound, Some(module)) => format!(
            "list the tags that exist with: kubectl mpo registry tags {module}{same_registry}"
        ),
        (RegistryErrorKind::Limit, _) => {
            "if the image is genuine, raise the cap with the flag named above".to_string()
        }
        (RegistryErrorKind::Config, _) if fallback => {
            "check --registry-repo: [http://]HOST[:PORT]/PATH in lower case".to_string()
        }
        (RegistryErrorKind::Config, _) => {
            "check the ModuleSource's spec.registry.repo: host[:port]/path in lower case"
                .to_string()
        }
        (_, Some(module)) if !fallback => {
            format!("see what is wrong with: kubectl mpo explain {module}")
        }
        (_, _) if fallback => format!(
            "check the registry, --registry-config and --registry-ca given for {}",
            target.repo
        ),
        (_, _) => format!("check the registry with: kubectl mpo registry modules{same_registry}"),
    };
    let message = format!("{whose}: {}", err.message);
    Error::runtime(message)
        .with_detail(format!("registry error kind: {:?}", err.kind))
        .with_hint(hint)
        .with_source(err)
}

/// Lines the picker shows at most (its list; the prompt and key help come on top).
const PICKER_ROWS: usize = 10;

/// The fuzzy tag picker (terminal only): the module's tags from its registry, newest
/// first, each with kind, short digest and age, `current` (the override's tag) marked.
/// Esc cancels quietly; Ctrl-C clears the picker before exiting.
pub async fn pick_tag(
    ctx: &Ctx,
    overrides: &Overrides,
    module: &str,
    current: Option<&str>,
) -> Result<String> {
    let target = choose_target(ctx, &overrides.cluster, Some(module), None, None).await?;
    let client = client_for(&target, REGISTRY_TIMEOUT)?;
    let spinner = ctx
        .printer
        .spinner(format!("listing tags of {}/{module}", client.repo()));
    let tags = client.tags(module).await;
    let tags: Vec<String> = match tags {
        Ok(tags) => tags.into_iter().filter(|t| !is_hash_tag(t)).collect(),
        Err(err) => {
            drop(spinner);
            return Err(registry_error(&target, Some(module), err));
        }
    };
    let mut details = super::tags::details(&client, module, &tags, current).await;
    drop(spinner);
    if details.is_empty() {
        return Err(Error::runtime(format!(
            "{}/{module} has no tags",
            client.repo()
        )));
    }
    super::tags::sort(&mut details, false);
    let width = details
        .iter()
        .map(|d| d.tag.chars().count())
        .max()
        .unwrap_or(0);
    let shown: Vec<String> = details.iter().map(|d| picker_line(d, width)).collect();
    let prompt = format!(
        "tag of {}/{module} (type to filter, \u{2191}\u{2193} move, Enter choose, Esc cancel; newest first; no list below: no tag matches)",
        client.repo()
    );
    let term = dialoguer::console::Term::stderr();
    // Room for the picker first, so that it never scrolls the screen and Ctrl-C can
    // clear exactly what it drew (from the saved cursor down).
    let reserve = PICKER_ROWS + 2;
    let _ = term.write_str(&format!("{}\x1b[{reserve}A\x1b7", "\n".repeat(reserve)));
    // Ctrl-C becomes an interrupted read instead of killing the process mid-drawing.
    let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let chosen = FuzzySelect::new()
        .with_prompt(prompt)
        .items(&shown)
        .default(0)
        .max_length(PICKER_ROWS)
        .interact_on_opt(&term);
    drop(sigint);
    match chosen {
        Ok(Some(index)) => Ok(details[index].tag.clone()),
        Ok(None) => {
            ctx.printer.note("no tag chosen; nothing was changed");
            Err(Error::interrupted(String::new()))
        }
        Err(dialoguer::Error::IO(err)) if err.kind() == std::io::ErrorKind::Interrupted => {
            let _ = term.write_str("\x1b8\x1b[J");
            let _ = term.show_cursor();
            Err(Error::interrupted(String::new()))
        }
        Err(err) => {
            let _ = term.show_cursor();
            Err(Error::runtime(format!("tag picker: {err}")))
        }
    }
}

/// `main-2   build  sha256:1234abcd  3d ago   (current)`.
fn picker_line(detail: &super::tags::TagDetail, width: usize) -> String {
    let tag = crate::output::inline(&detail.tag).into_owned();
    let digest = detail
        .digest
        .as_deref()
        .map(crate::output::short_digest)
        .unwrap_or_else(|| "-".into());
    let age = detail
        .created
        .as_deref()
        .map(|c| format!("{} ago", crate::output::age_of(Some(c))))
        .unwrap_or_else(|| "-".into());
    let pad = width.saturating_sub(detail.tag.chars().count());
    format!(
        "{tag}{}  {:<9}  {digest}  {age}{}",
        " ".repeat(pad),
        detail.kind,
        if detail.current { "  (current)" } else { "" }
    )
}

/// Prints what a registry client noticed: warnings always, the rest at `-v`.
pub fn print_notices(printer: &crate::output::Printer, client: &SourceRegistry) {
    for notice in client.take_notices() {
        if notice.verbose {
            printer.debug(1, crate::output::inline(&notice.text));
        } else {
            printer.warn(crate::output::inline(&notice.text));
        }
    }
}

/// One override's registry lookup and what stands in its way.
pub struct Lookup {
    /// The first failing cluster check, as one line.
    pub cluster_cause: Option<String>,
    /// The registry asked (ModuleSource name or `(--registry-repo)`).
    pub source: Option<String>,
    /// `None`: not asked (offline, or no readable source).
    pub result: Option<std::result::Result<ResolvedDigest, RegistryError>>,
    /// Which commit runs and which the registry has, when asked for (`status -o wide`).
    pub provenance: Option<super::tags::ProvenancePair>,
}

/// The registry digest of each override's tag, concurrently, with one client per
/// registry (whose first lookup fetches tokens for all of them behind a token
/// service). One failing registry marks only its own rows.
pub async fn lookup_all(
    world: &World,
    fallback: Option<&RegistryTarget>,
    items: &[ModulePullOverride],
    offline: bool,
    timeout: Duration,
    with_provenance: bool,
    printer: Option<&crate::output::Printer>,
) -> Vec<Lookup> {
    let options = RegistryOptions { timeout };
    let mut clients: HashMap<String, Arc<std::result::Result<SourceRegistry, RegistryError>>> =
        HashMap::new();
    let mut jobs = Vec::with_capacity(items.len());
    for (index, mpo) in items.iter().enumerate() {
        let name = mpo.metadata.name.as_deref().unwrap_or_default();
        let (cluster_cause, source) = world.cause_and_source(mpo);
        let target = match (fallback, source) {
            (Some(fallback), _) => Some(fallback.clone()),
            (None, Some(source)) => Some(target_of(source)),
            (None, None) => None,
        };
        let client = match (&target, offline) {
            (Some(target), false) => {
                let client = clients
                    .entry(target.name.clone())
                    .or_insert_with(|| Arc::new(SourceRegistry::new(target, &options)))
                    .clone();
                if let Ok(registry) = client.as_ref() {
                    registry.plan_lookup(name);
                }
                Some(client)
            }
            _ => None,
        };
        jobs.push((index, cluster_cause, target.map(|t| t.name), client));
    }
    let mut done: Vec<(usize, Lookup)> = futures::stream::iter(jobs)
        .map(|(index, cluster_cause, source, client)| async move {
            let mpo = &items[index];
            let name = mpo.metadata.name.as_deref().unwrap_or_default();
            let result = match client.as_deref() {
                // The timeout bounds the whole lookup, token requests and retries included.
                Some(Ok(client)) => Some(
                    tokio::time::timeout(timeout, client.module_digest(name, &mpo.spec.image_tag))
                        .await
                        .unwrap_or_else(|_| Err(RegistryError::timed_out(name, timeout))),
                ),
                Some(Err(err)) => Some(Err(err.clone())),
                None => None,
            };
            let provenance = match (client.as_deref(), &result, with_provenance) {
                (Some(Ok(client)), Some(Ok(_)), true) => tokio::time::timeout(
                    timeout,
                    super::tags::provenance(client, name, &mpo.spec.image_tag, mpo.image_digest()),
                )
                .await
                .ok()
                .filter(|p| !p.is_empty()),
                _ => None,
            };
            (
                index,
                Lookup {
                    cluster_cause,
                    source,
                    result,
                    provenance,
                },
            )
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    done.sort_by_key(|(index, _)| *index);
    if let Some(printer) = printer {
        for client in clients.values() {
            if let Ok(client) = client.as_ref() {
                print_notices(printer, client);
            }
        }
    }
    done.into_iter().map(|(_, lookup)| lookup).collect()
}

/// The registry digest of each override (`None` where it cannot be known), with the
/// same source choice as `status`.
pub async fn registry_digests(
    overrides: &Overrides,
    items: &[ModulePullOverride],
) -> Vec<Option<String>> {
    let Ok(world) = World::load_all(&overrides.cluster).await else {
        return vec![None; items.len()];
    };
    lookup_all(&world, None, items, false, REGISTRY_TIMEOUT, false, None)
        .await
        .into_iter()
        .map(|lookup| lookup.result.and_then(|r| r.ok()).map(|d| d.digest))
        .collect()
}
