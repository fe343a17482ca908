//! `kubectl mpo status`: every override with the cluster's and the registry's digest.
//! Registry lookups run concurrently, each bounded; one failing registry only marks its
//! own rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use kube::runtime::watcher;
use serde::Serialize;

use super::shared::{self, Overrides, RESOURCE};
use super::{Ctx, Outcome, inspect};
use crate::cli::{OutputFormat, StatusArgs};
use crate::cluster::decode;
use crate::deckhouse::diagnosis::{self, ClusterFacts, StepState, SyncState};
use crate::deckhouse::resources::{Module, ModuleConfig, ModulePullOverride, ModuleSource};
use crate::error::{Error, Result};
use crate::output::{Tone, age_of, short_digest};
use crate::registry::{RegistryError, ResolvedDigest, SourceRegistry};
use crate::validate;

/// How many registry lookups run at once.
const CONCURRENCY: usize = 32;

/// One row of `status -o json|yaml` (`items[]`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    tag: String,
    message: String,
    ready: bool,
    cluster_digest: Option<String>,
    registry_digest: Option<String>,
    /// Set when the tag is a multi-arch index: the index digest (`crane digest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    sync: SyncState,
    updated_at: Option<String>,
    source: Option<String>,
    /// Why the override is not Ready, or why the registry digest is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: &'a [Row],
}

/// Cluster objects shared by all rows.
struct World {
    modules: HashMap<String, Module>,
    configs: HashMap<String, ModuleConfig>,
    sources: Option<Vec<ModuleSource>>,
    /// The registry given with `--registry-repo`, used for every row instead.
    fallback: Option<ModuleSource>,
}

pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result<Outcome> {
    for module in &args.modules {
        validate::module_name(module)?;
    }
    let timeout = validate::duration_flag("registry-timeout", &args.registry_timeout, false)?;
    if args.watch && matches!(args.output, Some(OutputFormat::Json | OutputFormat::Yaml)) {
        return Err(Error::usage(
            "--watch prints table rows; use it without -o json|yaml",
        ));
    }
    let fallback = inspect::fallback_source(&args.fallback)?;
    let overrides = Overrides::connect(ctx).await?;
    let mut items = list_overrides(&overrides, &args.modules).await?;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut world = load_world(&overrides).await?;
    if let Some(fallback) = fallback.filter(|_| !args.offline) {
        fallback.announce(ctx);
        world.fallback = Some(fallback.source);
    } else if world.sources.is_none() && !args.offline {
        ctx.printer.note(
            "note: you may not read ModuleSources, so registry digests are unknown; \
             pass --registry-repo HOST/PATH (credentials from your docker config.json)",
        );
    }
    let world = Arc::new(world);
    let spinner = (!args.offline && !items.is_empty()).then(|| {
        ctx.printer.spinner(format!(
            "asking the registry about {} overrides",
            items.len()
        ))
    });
    let rows = build_rows(&items, &world, args.offline, timeout).await;
    drop(spinner);

    match args.output {
        Some(OutputFormat::Json) => ctx.printer.json(&document(&rows))?,
        Some(OutputFormat::Yaml) => ctx.printer.yaml(&document(&rows))?,
        Some(OutputFormat::Name) => rows
            .iter()
            .for_each(|r| ctx.printer.line(format!("{RESOURCE}/{}", r.name))),
        wide => {
            if rows.is_empty() && !args.watch {
                ctx.printer.note(format!(
                    "No ModulePullOverrides on context {:?}.",
                    overrides.cluster.context
                ));
            } else {
                print_table(ctx, &rows, wide == Some(OutputFormat::Wide), true);
                print_causes(ctx, &rows);
            }
        }
    }
    if args.watch {
        watch(ctx, &overrides, &args, world, timeout).await?;
    }
    Ok(Outcome::Success)
}

fn document(rows: &[Row]) -> Document<'_> {
    Document {
        api_version: "kubectl-mpo/v1",
        kind: "StatusList",
        items: rows,
    }
}

async fn list_overrides(
    overrides: &Overrides,
    names: &[String],
) -> Result<Vec<ModulePullOverride>> {
    if names.is_empty() {
        return decode::list(&overrides.api, &Default::default())
            .await
            .map(|list| list.items)
            .map_err(|err| overrides.cluster.api_error(err, "list", RESOURCE));
    }
    let mut found = Vec::new();
    for name in names {
        found.push(overrides.require(name).await?);
    }
    Ok(found)
}

async fn load_world(overrides: &Overrides) -> Result<World> {
    let cluster = &overrides.cluster;
    let modules_api = cluster.modules();
    let configs_api = cluster.module_configs();
    let params = kube::api::ListParams::default();
    let (modules, configs, sources) = tokio::join!(
        decode::list(&modules_api, &params),
        decode::list(&configs_api, &params),
        inspect::list_sources(cluster)
    );
    let modules = modules.map_err(|err| cluster.api_error(err, "list", "modules.deckhouse.io"))?;
    // ModuleConfigs only refine the causes; a user who may not read them still gets a
    // table. Any other failure (an answer that does not decode) is reported.
    let configs = match configs {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => Vec::new(),
        Err(err) => return Err(cluster.api_error(err, "list", "moduleconfigs.deckhouse.io")),
    };
    let by_name = |name: &Option<String>| name.clone().unwrap_or_default();
    Ok(World {
        modules: modules
            .items
            .into_iter()
            .map(|m| (by_name(&m.metadata.name), m))
            .collect(),
        configs: configs
            .into_iter()
            .map(|c| (by_name(&c.metadata.name), c))
            .collect(),
        sources: sources?,
        fallback: None,
    })
}

/// The registry digest (deckhouse-facts §4) of each override's tag, with the same source
/// choice and shared clients as the table; `None` where it cannot be known (no access to
/// ModuleSources, registry down).
pub async fn registry_digests(
    overrides: &Overrides,
    items: &[ModulePullOverride],
) -> Vec<Option<String>> {
    let Ok(world) = load_world(overrides).await else {
        return vec![None; items.len()];
    };
    build_rows(items, &world, false, inspect::REGISTRY_TIMEOUT)
        .await
        .into_iter()
        .map(|row| row.registry_digest)
        .collect()
}

/// The cluster-side cause of a blocked override, from the same checks `explain` runs.
/// The source is borrowed: a ModuleSource lists every module in its status, so a copy
/// per row would grow with the square of the number of modules.
fn cluster_cause<'w>(world: &'w World, name: &str) -> (Option<String>, Option<&'w ModuleSource>) {
    let verdict = diagnosis::cluster_checks(&ClusterFacts {
        name,
        module: world.modules.get(name),
        config: world.configs.get(name),
        sources: world.sources.as_deref(),
        module_names: &[],
    });
    let cause = verdict
        .steps
        .iter()
        .find(|s| matches!(s.state, StepState::Failed | StepState::Unknown))
        .map(|s| s.cause.clone().unwrap_or_else(|| s.summary.clone()));
    let chosen = verdict.source.and_then(|s| s.metadata.name.clone());
    let source = chosen.and_then(|wanted| {
        world
            .sources
            .as_deref()?
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(wanted.as_str()))
    });
    (cause, source)
}

async fn build_rows(
    items: &[ModulePullOverride],
    world: &World,
    offline: bool,
    timeout: Duration,
) -> Vec<Row> {
    // One client per ModuleSource, shared by its rows.
    let mut clients: HashMap<String, Arc<std::result::Result<SourceRegistry, RegistryError>>> =
        HashMap::new();
    let mut jobs = Vec::new();
    for (index, mpo) in items.iter().enumerate() {
        let name = mpo.metadata.name.clone().unwrap_or_default();
        let (cause, source) = cluster_cause(world, &name);
        let source = world.fallback.as_ref().or(source);
        let client = match (&source, offline) {
            (Some(source), false) => {
                let key = source.metadata.name.clone().unwrap_or_default();
                let client = clients
                    .entry(key)
                    .or_insert_with(|| {
                        Arc::new(SourceRegistry::from_source(
                            source,
                            &inspect::registry_options(timeout),
                        ))
                    })
                    .clone();
                // Behind a token service, the first lookup fetches tokens for all of them.
                if let Ok(registry) = client.as_ref() {
                    registry.plan_lookup(&name);
                }
                Some(client)
            }
            _ => None,
        };
        jobs.push((
            index,
            name,
            mpo.spec.image_tag.clone(),
            cause,
            source,
            client,
        ));
    }
    let mut rows: Vec<(usize, Row)> = futures::stream::iter(jobs)
        .map(|(index, name, tag, cause, source, client)| async move {
            let lookup: Option<std::result::Result<ResolvedDigest, RegistryError>> =
                match client.as_deref() {
                    Some(Ok(client)) => Some(client.module_digest(&name, &tag).await),
                    Some(Err(err)) => Some(Err(err.clone())),
                    None => None,
                };
            (
                index,
                make_row(&items[index], cause, source, lookup, offline),
            )
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    rows.sort_by_key(|(index, _)| *index);
    rows.into_iter().map(|(_, row)| row).collect()
}

fn make_row(
    mpo: &ModulePullOverride,
    cluster_cause: Option<String>,
    source: Option<&ModuleSource>,
    lookup: Option<std::result::Result<ResolvedDigest, RegistryError>>,
    offline: bool,
) -> Row {
    let ready = shared::is_ready(mpo);
    let cluster_digest = mpo.image_digest().map(str::to_string);
    let (registry_digest, index_digest, registry_error) = match lookup {
        Some(Ok(resolved)) => (Some(resolved.digest), resolved.index_digest, None),
        Some(Err(err)) => (None, None, Some(err.message)),
        None => (None, None, None),
    };
    let message = mpo.message().unwrap_or_default().to_string();
    let cause = if ready {
        registry_error.map(|e| format!("registry: {e}"))
    } else {
        cluster_cause
            .or(registry_error.map(|e| format!("registry: {e}")))
            .or_else(|| (!message.is_empty()).then(|| message.clone()))
            .or_else(|| Some("no status yet: the controller has not processed it".into()))
    };
    let _ = offline;
    Row {
        name: mpo.metadata.name.clone().unwrap_or_default(),
        tag: mpo.spec.image_tag.clone(),
        sync: SyncState::of(cluster_digest.as_deref(), registry_digest.as_deref()),
        message,
        ready,
        cluster_digest,
        registry_digest,
        index_digest,
        updated_at: mpo.updated_at().map(str::to_string),
        source: source.and_then(|s| s.metadata.name.clone()),
        cause,
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn table_row(row: &Row, wide: bool) -> Vec<(String, Tone)> {
    let message_tone = if row.ready { Tone::Good } else { Tone::Bad };
    let sync_tone = match row.sync {
        SyncState::InSync => Tone::Good,
        SyncState::Behind => Tone::Warn,
        SyncState::Unknown => Tone::Dim,
    };
    let digest = |d: &Option<String>| d.as_deref().map(short_digest).unwrap_or_else(|| "-".into());
    let message = if row.message.is_empty() {
        "<none>".to_string()
    } else {
        row.message.clone()
    };
    let mut cells = vec![
        (row.name.clone(), Tone::Bold),
        (row.tag.clone(), Tone::Plain),
        (
            if wide {
                message
            } else {
                truncate(&message, 48)
            },
            message_tone,
        ),
        (digest(&row.cluster_digest), Tone::Plain),
        (digest(&row.registry_digest), Tone::Plain),
        (row.sync.label().to_string(), sync_tone),
        (
            if row.updated_at.is_some() {
                age_of(row.updated_at.as_deref())
            } else {
                "-".into()
            },
            Tone::Dim,
        ),
    ];
    if wide {
        cells.push((
            row.source.clone().unwrap_or_else(|| "-".into()),
            Tone::Plain,
        ));
    }
    cells
}

fn print_table(ctx: &Ctx, rows: &[Row], wide: bool, header: bool) {
    let mut headers = vec![
        "NAME", "TAG", "MESSAGE", "CLUSTER", "REGISTRY", "SYNC", "UPDATED",
    ];
    if wide {
        headers.push("SOURCE");
    }
    let cells: Vec<Vec<(String, Tone)>> = rows.iter().map(|r| table_row(r, wide)).collect();
    if header {
        ctx.printer.table(&headers, &cells);
    } else {
        ctx.printer.table_rows(&headers, &cells);
    }
}

fn print_causes(ctx: &Ctx, rows: &[Row]) {
    let with_causes: Vec<&Row> = rows
        .iter()
        .filter(|r| r.cause.is_some() && (!r.ready || r.registry_digest.is_none()))
        .collect();
    if with_causes.is_empty() {
        return;
    }
    ctx.printer.line("");
    for row in with_causes {
        let cause = row.cause.as_deref().unwrap_or_default();
        ctx.printer.line(format!(
            "{}: {}",
            ctx.printer.paint(&row.name, Tone::Bold),
            cause
        ));
    }
    ctx.printer.line(ctx.printer.paint(
        "(kubectl mpo explain NAME shows the checks and the fix)",
        Tone::Dim,
    ));
}

/// Prints a row each time an override changes, like `kubectl get -w`.
async fn watch(
    ctx: &Ctx,
    overrides: &Overrides,
    args: &StatusArgs,
    world: Arc<World>,
    timeout: Duration,
) -> Result<()> {
    let names = args.modules.clone();
    let stream = watcher(
        overrides.api.clone(),
        shared::watch_config(&overrides.cluster),
    );
    let mut stream = std::pin::pin!(stream);
    let mut seen_initial = false;
    loop {
        let event = tokio::select! {
            event = stream.try_next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event = event.map_err(|err| {
            shared::final_watch_error(&overrides.cluster, &err)
                .unwrap_or_else(|| Error::runtime(format!("watching overrides: {err}")))
        })?;
        let changed = match event {
            Some(watcher::Event::InitDone) => {
                seen_initial = true;
                continue;
            }
            Some(watcher::Event::Apply(object)) if seen_initial => object,
            Some(watcher::Event::Delete(object)) if seen_initial => {
                let name = object.metadata.name.unwrap_or_default();
                if names.is_empty() || names.contains(&name) {
                    ctx.printer.line(format!("{name}   (deleted)"));
                }
                continue;
            }
            Some(_) => continue,
            None => return Ok(()),
        };
        let name = changed.metadata.name.clone().unwrap_or_default();
        if !names.is_empty() && !names.contains(&name) {
            continue;
        }
        let rows = build_rows(
            std::slice::from_ref(&changed),
            &world,
            args.offline,
            timeout,
        )
        .await;
        print_table(ctx, &rows, args.output == Some(OutputFormat::Wide), false);
    }
}
