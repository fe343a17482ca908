//! The Deckhouse controller simulator: plays the part of the ModulePullOverride controller,
//! the ModuleSource controller and the module manager against the real API server and
//! registries, following docs/deckhouse-real.md and docs/deckhouse-facts.md §2–§4. It shares no code with the plugin.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::registry::{ModuleRegistry, RegistryFailure};
use crate::state::State;

pub const FINALIZER: &str = "modules.deckhouse.io/mpo-finalizer";
pub const RENEW_MODERN: &str = "modules.deckhouse.io/renew";
pub const RENEW_LEGACY: &str = "renew";
pub const DEPLOYED_ON: &str = "modules.deckhouse.io/deployed-on";
pub const SETTINGS_NAME: &str = "deckhouse-simulator";

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub renew_modern: bool,
    pub dkp_minor: u32,
    pub recheck: Duration,
    pub source_rescan: Duration,
}

impl Settings {
    fn from_data(data: &BTreeMap<String, String>) -> Self {
        let number = |key: &str, default: u64| {
            data.get(key)
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let dkp_minor = data
            .get("dkpVersion")
            .and_then(|version| {
                version
                    .trim()
                    .trim_start_matches('v')
                    .split('.')
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(78);
        Settings {
            renew_modern: data
                .get("renewStyle")
                .is_none_or(|style| style.trim() != "legacy"),
            dkp_minor,
            recheck: Duration::from_secs(number("recheckSeconds", 60)),
            source_rescan: Duration::from_secs(number("sourceRescanSeconds", 180)),
        }
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

#[derive(Clone)]
struct Apis {
    client: kube::Client,
    mpo: Api<DynamicObject>,
    module: Api<DynamicObject>,
    source: Api<DynamicObject>,
    config: Api<DynamicObject>,
    release: Api<DynamicObject>,
}

impl Apis {
    async fn new(client: kube::Client) -> anyhow::Result<Self> {
        let mpo_version = served_mpo_version(&client).await?;
        let api = |version: &str, kind: &str, plural: &str| {
            Api::all_with(
                client.clone(),
                &resource("deckhouse.io", version, kind, plural),
            )
        };
        Ok(Apis {
            mpo: api(&mpo_version, "ModulePullOverride", "modulepulloverrides"),
            module: api("v1alpha1", "Module", "modules"),
            source: api("v1alpha1", "ModuleSource", "modulesources"),
            config: api("v1alpha1", "ModuleConfig", "moduleconfigs"),
            release: api("v1alpha1", "ModuleRelease", "modulereleases"),
            client,
        })
    }

    async fn settings(&self) -> Settings {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), "default");
        let data = match maps.get_opt(SETTINGS_NAME).await {
            Ok(Some(map)) => map.data.unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        Settings::from_data(&data)
    }
}

/// Controllers on new clusters use v1alpha2; an old cluster only serves v1alpha1.
async fn served_mpo_version(client: &kube::Client) -> anyhow::Result<String> {
    for version in ["v1alpha2", "v1alpha1"] {
        if let Ok(list) = client
            .list_api_group_resources(&format!("deckhouse.io/{version}"))
            .await
            && list
                .resources
                .iter()
                .any(|r| r.name == "modulepulloverrides")
        {
            return Ok(version.to_string());
        }
    }
    anyhow::bail!("the API server serves no ModulePullOverride version")
}

pub async fn run(state: &State) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    crate::deckhouse_pod::start(state, client.clone())
        .await
        .context("deckhouse Pod")?;
    let apis = Apis::new(client).await?;
    // Deckhouse's module manager has settled modules (enabled, active source) before
    // overrides are reconciled; start from that state, not from a race with it.
    if let Err(error) = sync_modules(&apis).await {
        eprintln!("module manager: {error:#}");
    }
    if let Err(error) = rescan_sources(&apis).await {
        eprintln!("source controller: {error:#}");
    }
    tokio::spawn(module_manager(apis.clone()));
    tokio::spawn(source_controller(apis.clone()));
    override_controller(apis).await
}

// ---------------------------------------------------------------------------------------
// ModulePullOverride controller (docs/deckhouse-facts.md §2, §3)

/// Reconciles of different overrides run at once (controller-runtime has several
/// workers), so one override whose registry stalls does not hold up the others.
const WORKERS: usize = 8;

struct Tracked {
    generation: i64,
    annotations: BTreeMap<String, String>,
    due: Option<Instant>,
    /// A reconcile of this override is in flight; it is never run twice at once.
    running: bool,
}

async fn override_controller(apis: Apis) -> anyhow::Result<()> {
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut events = watcher(apis.mpo.clone(), watcher::Config::default()).boxed();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::unbounded_channel::<(String, Option<Duration>)>();
    let workers = std::sync::Arc::new(tokio::sync::Semaphore::new(WORKERS));
    let mut announced = false;
    loop {
        tokio::select! {
            event = events.next() => {
                match event {
                    Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => {
                        observe(&mut tracked, &object);
                    }
                    Some(Ok(watcher::Event::Delete(object))) => {
                        tracked.remove(&object.metadata.name.unwrap_or_default());
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        if !announced {
                            announced = true;
                            println!("simulator ready");
                        }
                    }
                    Some(Ok(watcher::Event::Init)) => {}
                    Some(Err(error)) => {
                        eprintln!("watch error: {error}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    None => anyhow::bail!("MPO watch ended"),
                }
            }
            Some((name, requeue)) = done_rx.recv() => {
                if let Some(entry) = tracked.get_mut(&name) {
                    entry.running = false;
                    // A change seen while the reconcile ran keeps its earlier due time.
                    let next = requeue.map(|delay| Instant::now() + delay);
                    entry.due = match (entry.due, next) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for (name, entry) in tracked.iter_mut() {
                    if entry.running || entry.due.is_none_or(|at| at > now) {
                        continue;
                    }
                    entry.running = true;
                    entry.due = None;
                    let (apis, name, done, workers) =
                        (apis.clone(), name.clone(), done_tx.clone(), workers.clone());
                    tokio::spawn(async move {
                        let _permit = workers.acquire_owned().await;
                        let requeue = match reconcile(&apis, &name).await {
                            Ok(requeue) => requeue,
                            Err(error) => {
                                eprintln!("reconcile {name}: {error:#}");
                                Some(Duration::from_secs(2))
                            }
                        };
                        let _ = done.send((name, requeue));
                    });
                }
            }
        }
    }
}

/// Reconciles on a generation change or any annotation change (and on deletion); other
/// updates (status, finalizers) do not wake the controller.
fn observe(tracked: &mut HashMap<String, Tracked>, object: &DynamicObject) {
    let Some(name) = object.metadata.name.clone() else {
        return;
    };
    let generation = object.metadata.generation.unwrap_or_default();
    let annotations = object.metadata.annotations.clone().unwrap_or_default();
    let deleting = object.metadata.deletion_timestamp.is_some();
    match tracked.get_mut(&name) {
        Some(entry) => {
            if entry.generation != generation || entry.annotations != annotations || deleting {
                entry.generation = generation;
                entry.annotations = annotations;
                entry.due = Some(Instant::now());
            }
        }
        None => {
            tracked.insert(
                name,
                Tracked {
                    generation,
                    annotations,
                    due: Some(Instant::now()),
                    running: false,
                },
            );
        }
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn parse_interval(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        total += match ch {
            'h' => value * 3600,
            'm' => value * 60,
            's' => value,
            _ => return None,
        };
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

async fn set_mpo_status(apis: &Apis, name: &str, status: Value) -> anyhow::Result<()> {
    apis.mpo
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Writes the message when it changed; blocked overrides are re-checked periodically.
async fn block(
    apis: &Apis,
    mpo: &DynamicObject,
    message: &str,
    extra: Value,
) -> anyhow::Result<()> {
    let current = str_at(&mpo.data, "/status/message");
    let mut status = json!({ "message": message });
    if let (Some(status), Some(extra)) = (status.as_object_mut(), extra.as_object()) {
        status.extend(extra.clone());
    }
    if current != message || !extra.as_object().is_none_or(|map| map.is_empty()) {
        let name = mpo.metadata.name.clone().unwrap_or_default();
        set_mpo_status(apis, &name, status).await?;
    }
    Ok(())
}

fn condition<'a>(module: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    module
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|condition| condition.get("type").and_then(Value::as_str) == Some(kind))
}

async fn set_module_condition(
    apis: &Apis,
    module: &DynamicObject,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> anyhow::Result<bool> {
    if let Some(existing) = condition(module, kind)
        && str_at(existing, "/status") == status
        && str_at(existing, "/reason") == reason
        && str_at(existing, "/message") == message
    {
        return Ok(false);
    }
    let now = now_rfc3339();
    let mut conditions: Vec<Value> = module
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|condition| condition.get("type").and_then(Value::as_str) != Some(kind));
    let mut entry = json!({
        "type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
    });
    if !reason.is_empty() {
        entry["reason"] = json!(reason);
    }
    if !message.is_empty() {
        entry["message"] = json!(message);
    }
    conditions.push(entry);
    let name = module.metadata.name.clone().unwrap_or_default();
    apis.module
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": conditions } })),
        )
        .await?;
    Ok(true)
}

/// §2 step 3: is the module enabled?
fn module_enabled(module: &DynamicObject, settings: &Settings) -> bool {
    match condition(module, "EnabledByModuleConfig").map(|c| str_at(c, "/status")) {
        Some("True") => true,
        Some("False") => false,
        // No ModuleConfig: before 1.77 the module stays disabled; since 1.77 the bundle
        // default decides.
        _ => settings.dkp_minor >= 77 && enabled_in_default_bundle(module),
    }
}

fn enabled_in_default_bundle(module: &DynamicObject) -> bool {
    let Some(editions) = module
        .data
        .pointer("/properties/accessibility/editions")
        .and_then(Value::as_object)
    else {
        return false;
    };
    let edition = editions.get("ce").or_else(|| editions.get("_default"));
    edition
        .and_then(|edition| edition.get("enabledInBundles"))
        .and_then(Value::as_array)
        .is_some_and(|bundles| {
            bundles
                .iter()
                .any(|bundle| bundle.as_str() == Some("Default"))
        })
}

async fn reconcile(apis: &Apis, name: &str) -> anyhow::Result<Option<Duration>> {
    let Some(mpo) = apis.mpo.get_opt(name).await? else {
        return Ok(None);
    };
    if mpo.metadata.deletion_timestamp.is_some() {
        finalize(apis, &mpo).await?;
        return Ok(None);
    }
    let settings = apis.settings().await;
    let recheck = Some(settings.recheck);
    crate::deckhouse_pod::log(
        "debug",
        "Reconcile module pull override",
        json!({"module": name, "logger": "controller.module-pull-override"}),
    );

    // 1. The module exists.
    let Some(module) = apis.module.get_opt(name).await? else {
        block(apis, &mpo, "The module not found", json!({})).await?;
        return Ok(recheck);
    };
    // 2. It is not embedded.
    let source_name = str_at(&module.data, "/properties/source").to_string();
    if source_name == "Embedded" {
        block(apis, &mpo, "The module is embedded", json!({})).await?;
        return Ok(recheck);
    }
    // 3. It is enabled.
    if !module_enabled(&module, &settings) {
        let extra = if settings.dkp_minor >= 77 {
            json!({ "imageDigest": null })
        } else {
            json!({})
        };
        block(apis, &mpo, "The module disabled", extra).await?;
        return Ok(recheck);
    }
    // 4. It has an active source.
    if source_name.is_empty() {
        block(
            apis,
            &mpo,
            "The module does not have an active source",
            json!({}),
        )
        .await?;
        return Ok(recheck);
    }
    // 5. Mark the module overridden, then make sure the finalizer is there.
    set_module_condition(apis, &module, "IsOverridden", "True", "", "").await?;
    let finalizers = mpo.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut with_ours = finalizers;
        with_ours.push(FINALIZER.to_string());
        apis.mpo
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": {
                    "finalizers": with_ours,
                    "resourceVersion": mpo.metadata.resource_version,
                } })),
            )
            .await?;
        return Ok(Some(Duration::ZERO));
    }
    // 6. The ModuleSource exists.
    let Some(source) = apis.source.get_opt(&source_name).await? else {
        block(apis, &mpo, "The source not found", json!({})).await?;
        return Ok(recheck);
    };
    let scan_interval =
        parse_interval(str_at(&mpo.data, "/spec/scanInterval")).unwrap_or(Duration::from_secs(15));
    let tag = str_at(&mpo.data, "/spec/imageTag").to_string();

    // 7. Resolve the digest.
    let registry = match ModuleRegistry::from_source(&source.data) {
        Ok(registry) => registry,
        Err(failure) => return download_failed(apis, name, &failure, scan_interval).await,
    };
    let resolved = match registry.module_digest(name, &tag).await {
        Ok(digest) => digest,
        Err(failure) => return download_failed(apis, name, &failure, scan_interval).await,
    };
    // 8. Unchanged digest: nothing to deploy, unless a modern renew forces it.
    let annotations = mpo.metadata.annotations.clone().unwrap_or_default();
    let forced =
        settings.renew_modern && annotations.get(RENEW_MODERN).map(String::as_str) == Some("true");
    if resolved == str_at(&mpo.data, "/status/imageDigest") && !forced {
        block(apis, &mpo, "Ready", json!({})).await?;
        return Ok(Some(scan_interval));
    }
    // 9. Download, validate, install.
    if let Err(failure) = registry.download_and_validate(name, &resolved).await {
        let status = json!({ "message": format!("Validation error: {failure}"), "updatedAt": now_rfc3339() });
        set_mpo_status(apis, name, status).await?;
        return Ok(Some(scan_interval));
    }
    // Module `properties.version` is written by Deckhouse's start-up after the restart
    // (deckhouse-real §4): deckhouse_pod.rs.
    set_mpo_status(
        apis,
        name,
        json!({ "message": "Ready", "imageDigest": resolved, "updatedAt": now_rfc3339() }),
    )
    .await?;
    // The renew annotation is consumed by a successful redeploy.
    let consumed = if settings.renew_modern {
        RENEW_MODERN
    } else {
        RENEW_LEGACY
    };
    let mut metadata = json!({ "annotations": { DEPLOYED_ON: "sandbox-node" } });
    if annotations.contains_key(consumed) {
        metadata["annotations"][consumed] = Value::Null;
    }
    apis.mpo
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await?;
    println!("deployed {name}:{tag} {resolved}");
    crate::deckhouse_pod::log(
        "info",
        "Module downloaded and installed, restarting Deckhouse",
        json!({"module": name, "logger": "controller.module-pull-override", "version": tag, "digest": resolved}),
    );
    crate::deckhouse_pod::deployed(name, &tag, &resolved, &source);
    Ok(Some(scan_interval))
}

async fn download_failed(
    apis: &Apis,
    name: &str,
    failure: &RegistryFailure,
    scan_interval: Duration,
) -> anyhow::Result<Option<Duration>> {
    // The old digest is kept; updatedAt refreshes on every failed scan.
    let status =
        json!({ "message": format!("Download error: {failure}"), "updatedAt": now_rfc3339() });
    set_mpo_status(apis, name, status).await?;
    Ok(Some(scan_interval))
}

async fn finalize(apis: &Apis, mpo: &DynamicObject) -> anyhow::Result<()> {
    let name = mpo.metadata.name.clone().unwrap_or_default();
    let finalizers = mpo.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    if let Some(module) = apis.module.get_opt(&name).await? {
        set_module_condition(apis, &module, "IsOverridden", "False", "", "").await?;
        if mpo.data.pointer("/spec/rollback").and_then(Value::as_bool) == Some(true) {
            let releases = apis
                .release
                .list(&ListParams::default().labels(&format!("module={name}")))
                .await?;
            let deployed = releases
                .items
                .iter()
                .find(|release| str_at(&release.data, "/status/phase") == "Deployed")
                .map(|release| str_at(&release.data, "/spec/version").to_string());
            if let Some(version) = deployed {
                apis.module
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "properties": { "version": version } })),
                    )
                    .await?;
                println!("rolled {name} back to {version}");
            }
        }
    }
    let remaining: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
    apis.mpo
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": remaining } })),
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Module manager: ModuleConfig -> Module conditions, source and phase.

/// Runs after the first `sync_modules` in `run`.
async fn module_manager(apis: Apis) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(error) = sync_modules(&apis).await {
            eprintln!("module manager: {error:#}");
        }
    }
}

async fn sync_modules(apis: &Apis) -> anyhow::Result<()> {
    let configs: HashMap<String, DynamicObject> = apis
        .config
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|config| Some((config.metadata.name.clone()?, config)))
        .collect();
    for module in apis.module.list(&ListParams::default()).await?.items {
        let Some(name) = module.metadata.name.clone() else {
            continue;
        };
        let Some(properties) = module.data.get("properties") else {
            continue;
        };
        if str_at(properties, "/source") == "Embedded" {
            continue;
        }
        let config = configs.get(&name);
        // Whether this pass changed the object since it was listed.
        let changed = match config
            .and_then(|config| config.data.pointer("/spec/enabled"))
            .and_then(Value::as_bool)
        {
            Some(true) => {
                set_module_condition(apis, &module, "EnabledByModuleConfig", "True", "", "").await?
            }
            Some(false) => {
                set_module_condition(
                    apis,
                    &module,
                    "EnabledByModuleConfig",
                    "False",
                    "TurnedOffByModuleConfig",
                    "turned off by module config",
                )
                .await?
            }
            None => remove_module_condition(apis, &module, "EnabledByModuleConfig").await?,
        };
        let available: Vec<&str> = properties
            .get("availableSources")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let chosen = config
            .map(|config| str_at(&config.data, "/spec/source"))
            .filter(|source| !source.is_empty());
        let (source, phase) = match (chosen, available.as_slice()) {
            (Some(chosen), _) => (chosen.to_string(), "Ready"),
            (None, [single]) => ((*single).to_string(), "Ready"),
            (None, []) => (String::new(), "Available"),
            (None, _) => (String::new(), "Conflict"),
        };
        // The listed object is current unless this pass changed it: one GET per module
        // per pass made a pass over a hundred modules take seconds.
        let module = if str_at(properties, "/source") != source {
            apis.module
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "properties": { "source": source } })),
                )
                .await?
        } else if changed {
            apis.module.get(&name).await?
        } else {
            module
        };
        if phase == "Conflict" {
            set_module_condition(
                apis,
                &module,
                "EnabledByModuleManager",
                "False",
                "Conflict",
                "several available sources",
            )
            .await?;
        } else if condition(&module, "EnabledByModuleManager")
            .is_some_and(|existing| str_at(existing, "/reason") == "Conflict")
        {
            remove_module_condition(apis, &module, "EnabledByModuleManager").await?;
        }
        // After a deploy the module's run owns its phase (deckhouse_pod.rs, §4).
        let run_owns_phase = phase == "Ready" && condition(&module, "IsReady").is_some();
        if str_at(&module.data, "/status/phase") != phase && !run_owns_phase {
            apis.module
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": { "phase": phase } })),
                )
                .await?;
        }
    }
    Ok(())
}

async fn remove_module_condition(
    apis: &Apis,
    module: &DynamicObject,
    kind: &str,
) -> anyhow::Result<bool> {
    if condition(module, kind).is_none() {
        return Ok(false);
    }
    let mut conditions: Vec<Value> = module
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|condition| condition.get("type").and_then(Value::as_str) != Some(kind));
    let name = module.metadata.name.clone().unwrap_or_default();
    apis.module
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": conditions } })),
        )
        .await?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// ModuleSource controller: status.modules with `overridden`, on its own rescan interval.

/// Runs after the first `rescan_sources` in `run`.
async fn source_controller(apis: Apis) {
    loop {
        let settings = apis.settings().await;
        tokio::time::sleep(settings.source_rescan).await;
        if let Err(error) = rescan_sources(&apis).await {
            eprintln!("source controller: {error:#}");
        }
    }
}

async fn rescan_sources(apis: &Apis) -> anyhow::Result<()> {
    let overrides: Vec<String> = apis
        .mpo
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|mpo| mpo.metadata.name)
        .collect();
    let modules = apis.module.list(&ListParams::default()).await?.items;
    for source in apis.source.list(&ListParams::default()).await?.items {
        let Some(source_name) = source.metadata.name.clone() else {
            continue;
        };
        let mut listed = Vec::new();
        for module in &modules {
            let Some(module_name) = module.metadata.name.as_deref() else {
                continue;
            };
            let offered = module
                .data
                .pointer("/properties/availableSources")
                .and_then(Value::as_array)
                .is_some_and(|list| {
                    list.iter()
                        .any(|entry| entry.as_str() == Some(&source_name))
                });
            if offered {
                listed.push(json!({
                    "name": module_name,
                    "version": str_at(&module.data, "/properties/version"),
                    "policy": if source_name == "test" { "test-alpha" } else { "" },
                    "overridden": overrides.iter().any(|name| name == module_name),
                }));
            }
        }
        let status = json!({ "status": {
            "modules": listed,
            "modulesCount": listed.len(),
            "phase": "Active",
            "syncTime": now_rfc3339(),
        }});
        apis.source
            .patch_status(&source_name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .with_context(|| format!("ModuleSource {source_name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_interval("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval(""), None);
        assert_eq!(parse_interval("5"), None);
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let defaults = Settings::from_data(&BTreeMap::new());
        assert!(defaults.renew_modern);
        assert_eq!(defaults.dkp_minor, 78);
        let data: BTreeMap<String, String> = [
            ("renewStyle", "legacy"),
            ("dkpVersion", "1.76"),
            ("recheckSeconds", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let custom = Settings::from_data(&data);
        assert!(!custom.renew_modern);
        assert_eq!(custom.dkp_minor, 76);
        assert_eq!(custom.recheck, Duration::from_secs(5));
    }
}
