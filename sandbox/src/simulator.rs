//! The Deckhouse controller simulator: plays the part of the ModulePullOverride controller,
//! the ModuleSource controller and the module manager against the real API server and
//! registries, following docs/deckhouse-real.md and docs/deckhouse-facts.md §2–§4. It shares no code with the plugin.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::registry::{DigestRule, ModuleRegistry, RegistryFailure};
use crate::state::State;

pub const FINALIZER: &str = "modules.deckhouse.io/mpo-finalizer";
pub const RENEW_MODERN: &str = "modules.deckhouse.io/renew";
pub const RENEW_LEGACY: &str = "renew";
pub const DEPLOYED_ON: &str = "modules.deckhouse.io/deployed-on";
pub const SETTINGS_NAME: &str = "deckhouse-simulator";

/// The ModulePullOverride controller generation (docs/deckhouse-real.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// DKP < 1.67: MPO v1alpha1 only, `spec.source`, empty message on success.
    A,
    /// DKP 1.67–1.76: Module/ModuleConfig checks, no bundle fallback.
    B,
    /// DKP 1.77+: bundle/edition fallback, `imageDigest` cleared when disabled.
    C,
    /// PR #22716: `modules.deckhouse.io/renew: "true"` forces a redeploy and a restart.
    D,
}

impl Generation {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Generation::A),
            "B" => Some(Generation::B),
            "C" => Some(Generation::C),
            "D" => Some(Generation::D),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Generation::A => "A",
            Generation::B => "B",
            Generation::C => "C",
            Generation::D => "D",
        }
    }

    /// The Deckhouse version the sandbox reports for this generation (§1; gen D's DKP
    /// release is unconfirmed, the sandbox says 1.80).
    pub fn dkp_version(self) -> &'static str {
        match self {
            Generation::A => "v1.66.4",
            Generation::B => "v1.76.2",
            Generation::C => "v1.78.1",
            Generation::D => "v1.80.0",
        }
    }
}

/// Sandbox-only annotation on a ModulePullOverride: the renew behaviour (`legacy`:
/// only the bare key re-checks; `modern`: `modules.deckhouse.io/renew: "true"` forces a
/// redeploy, §3.2) the simulator plays for that override, whatever the generation.
pub const RENEW_STYLE: &str = "sandbox.kubectl-mpo.test/renew-style";

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub generation: Generation,
    pub renew_modern: bool,
    pub dkp_minor: u32,
    pub recheck: Duration,
    pub source_rescan: Duration,
    /// §3.1: which digest of a multi-arch tag is recorded.
    pub digest_rule: DigestRule,
    /// §3.2: how long the Deckhouse restart after a deploy holds the controller.
    pub restart_pause: Duration,
    /// §3.6: the cluster edition (`ce`, `ee`, ...).
    pub edition: String,
}

impl Settings {
    fn from_data(data: &BTreeMap<String, String>) -> Self {
        let number = |key: &str, default: u64| {
            data.get(key)
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let generation = data
            .get("generation")
            .and_then(|text| Generation::parse(text))
            .unwrap_or(Generation::C);
        let minor = |version: &str| {
            version
                .trim()
                .trim_start_matches('v')
                .split('.')
                .nth(1)?
                .parse()
                .ok()
        };
        let dkp_minor = data
            .get("dkpVersion")
            .and_then(|version| minor(version))
            .or_else(|| minor(generation.dkp_version()))
            .unwrap_or(78);
        Settings {
            generation,
            renew_modern: match data.get("renewStyle").map(|style| style.trim()) {
                Some("legacy") => false,
                Some("modern") => true,
                _ => generation == Generation::D,
            },
            dkp_minor,
            recheck: Duration::from_secs(number("recheckSeconds", 60)),
            source_rescan: Duration::from_secs(number("sourceRescanSeconds", 180)),
            digest_rule: match data.get("digestRule").map(|rule| rule.trim()) {
                Some("index") => DigestRule::Index,
                _ => DigestRule::Child,
            },
            restart_pause: Duration::from_millis(number(
                "restartPauseMillis",
                if generation == Generation::D { 1000 } else { 0 },
            )),
            edition: data
                .get("edition")
                .map(|edition| edition.trim().to_string())
                .filter(|edition| !edition.is_empty())
                .unwrap_or_else(|| "ce".to_string()),
        }
    }

    /// The settings for one override: the annotation [`RENEW_STYLE`] (`legacy` or
    /// `modern`) on it overrides `renewStyle`, so that a test can play either renew
    /// behaviour on its own object while other tests run.
    fn for_object(mut self, mpo: &DynamicObject) -> Self {
        let style = mpo
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(RENEW_STYLE))
            .map(|style| style.trim());
        match style {
            Some("legacy") => self.renew_modern = false,
            Some("modern") => self.renew_modern = true,
            _ => {}
        }
        self
    }

    /// Reconciles at once: one on gen D (§3.2); 8 elsewhere, so that the default
    /// generation's suite is not held up by the stalled-registry tests (§3.0 says one
    /// for B–D as well: set `workers: "1"` to see it).
    fn workers(data: &BTreeMap<String, String>, generation: Generation) -> usize {
        data.get("workers")
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(if generation == Generation::D { 1 } else { 8 })
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
    /// The API server serves MPO v1alpha1 only: the gen-A controller (§1, §3.3).
    gen_a: bool,
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
            gen_a: mpo_version == "v1alpha1",
            client,
        })
    }

    async fn settings_data(&self) -> BTreeMap<String, String> {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), "default");
        match maps.get_opt(SETTINGS_NAME).await {
            Ok(Some(map)) => map.data.unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    async fn settings(&self) -> Settings {
        Settings::from_data(&self.settings_data().await)
    }

    /// The cluster bundle: ModuleConfig `deckhouse` `spec.settings.bundle`, default
    /// `Default` (§3.6).
    async fn bundle(&self) -> String {
        match self.config.get_opt("deckhouse").await {
            Ok(Some(config)) => Some(str_at(&config.data, "/spec/settings/bundle").to_string())
                .filter(|bundle| !bundle.is_empty())
                .unwrap_or_else(|| "Default".to_string()),
            _ => "Default".to_string(),
        }
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
    let memory = tokio::sync::Mutex::new(SourceMemory::default());
    if let Err(error) = rescan_sources(&apis, &memory, None).await {
        eprintln!("source controller: {error:#}");
    }
    tokio::spawn(module_manager(apis.clone()));
    tokio::spawn(source_controller(apis.clone(), memory.into_inner()));
    override_controller(apis).await
}

// ---------------------------------------------------------------------------------------
// ModulePullOverride controller (docs/deckhouse-facts.md §2, §3)

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
    let data = apis.settings_data().await;
    let generation = Settings::from_data(&data).generation;
    let workers = std::sync::Arc::new(tokio::sync::Semaphore::new(Settings::workers(
        &data, generation,
    )));
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

/// Every object of a kind, by name.
async fn by_name(api: &Api<DynamicObject>) -> anyhow::Result<HashMap<String, DynamicObject>> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|object| Some((object.metadata.name.clone()?, object)))
        .collect())
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

/// `spec.scanInterval` as Go's `time.ParseDuration` reads the CRD's pattern. `0s` and
/// `""` (both admitted by the pattern) give `None`: never re-scanned (§3.13).
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
/// Every status write sets `updatedAt` (§3.12).
async fn block(
    apis: &Apis,
    mpo: &DynamicObject,
    message: &str,
    extra: Value,
) -> anyhow::Result<()> {
    let current = str_at(&mpo.data, "/status/message");
    let has_message = mpo.data.pointer("/status/message").is_some();
    let mut status = json!({ "message": message, "updatedAt": now_rfc3339() });
    if let (Some(status), Some(extra)) = (status.as_object_mut(), extra.as_object()) {
        status.extend(extra.clone());
    }
    let extra_changes = extra.as_object().is_some_and(|map| {
        map.iter().any(|(key, value)| {
            mpo.data
                .pointer(&format!("/status/{key}"))
                .unwrap_or(&Value::Null)
                != value
        })
    });
    if current != message || !has_message || extra_changes {
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
    set_module_conditions(apis, module, &[(kind, Some((status, reason, message)))]).await
}

/// A condition's status, reason and message.
type ConditionValue<'a> = (&'a str, &'a str, &'a str);

/// One condition to set (`Some`) or remove (`None`), by type.
type ConditionChange<'a> = (&'a str, Option<ConditionValue<'a>>);

/// Applies condition changes in one status write; no write when nothing changes.
/// `module` must be current.
async fn set_module_conditions(
    apis: &Apis,
    module: &DynamicObject,
    changes: &[ConditionChange<'_>],
) -> anyhow::Result<bool> {
    let now = now_rfc3339();
    let mut conditions: Vec<Value> = module
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    for (kind, wanted) in changes {
        let existing = condition(module, kind);
        let same = match (existing, wanted) {
            (None, None) => true,
            (Some(existing), Some((status, reason, message))) => {
                str_at(existing, "/status") == *status
                    && str_at(existing, "/reason") == *reason
                    && str_at(existing, "/message") == *message
            }
            _ => false,
        };
        if same {
            continue;
        }
        changed = true;
        conditions.retain(|condition| condition.get("type").and_then(Value::as_str) != Some(kind));
        if let Some((status, reason, message)) = wanted {
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
        }
    }
    if !changed {
        return Ok(false);
    }
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

/// §3.0 step 3: is the module enabled? Only `EnabledByModuleConfig=True` on gen B; gen
/// C and D fall back to the bundle when the condition is absent or Unknown (§3.6).
fn module_enabled(module: &DynamicObject, settings: &Settings, bundle: &str) -> bool {
    match condition(module, "EnabledByModuleConfig").map(|c| str_at(c, "/status")) {
        Some("True") => true,
        Some("False") => false,
        _ => settings.dkp_minor >= 77 && enabled_by_bundle(module, &settings.edition, bundle),
    }
}

/// `Module.IsEnabledByBundle` (§3.6): the cluster edition's entry, else `_default`'s,
/// lists the cluster bundle; no `accessibility` means no.
fn enabled_by_bundle(module: &DynamicObject, edition: &str, bundle: &str) -> bool {
    let Some(editions) = module
        .data
        .pointer("/properties/accessibility/editions")
        .and_then(Value::as_object)
    else {
        return false;
    };
    let entry = editions.get(edition).or_else(|| editions.get("_default"));
    entry
        .and_then(|entry| entry.get("enabledInBundles"))
        .and_then(Value::as_array)
        .is_some_and(|bundles| bundles.iter().any(|b| b.as_str() == Some(bundle)))
}

async fn reconcile(apis: &Apis, name: &str) -> anyhow::Result<Option<Duration>> {
    let Some(mpo) = apis.mpo.get_opt(name).await? else {
        return Ok(None);
    };
    let settings = apis.settings().await.for_object(&mpo);
    if apis.gen_a {
        return reconcile_gen_a(apis, &mpo, &settings).await;
    }
    if mpo.metadata.deletion_timestamp.is_some() {
        finalize(apis, &mpo).await?;
        return Ok(None);
    }
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
    // 3. It is enabled (gen C clears imageDigest here).
    if !module_enabled(&module, &settings, &apis.bundle().await) {
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
        return Ok(Some(Duration::from_millis(500)));
    }
    // 6. The ModuleSource exists.
    let Some(source) = apis.source.get_opt(&source_name).await? else {
        block(apis, &mpo, "The source not found", json!({})).await?;
        return Ok(recheck);
    };
    // §3.13: `0s` (or "") never re-scans; only annotation and spec changes wake it.
    let scan_interval = parse_interval(str_at(&mpo.data, "/spec/scanInterval"));
    let tag = str_at(&mpo.data, "/spec/imageTag").to_string();

    // 7. Resolve the digest (§3.1 rule); failures keep the old digest (§3.7 texts).
    let registry = match ModuleRegistry::from_source_for(&source.data, name) {
        Ok(registry) => registry,
        Err(failure) => return download_failed(apis, &mpo, &failure, scan_interval).await,
    };
    let resolved = match registry
        .module_digest_by(name, &tag, settings.digest_rule)
        .await
    {
        Ok(digest) => digest,
        Err(failure) => return download_failed(apis, &mpo, &failure, scan_interval).await,
    };
    // 8. Unchanged digest: nothing to deploy, unless a modern renew forces it (§3.2).
    let annotations = mpo.metadata.annotations.clone().unwrap_or_default();
    let forced =
        settings.renew_modern && annotations.get(RENEW_MODERN).map(String::as_str) == Some("true");
    if resolved == str_at(&mpo.data, "/status/imageDigest") && !forced {
        block(apis, &mpo, "Ready", json!({})).await?;
        return Ok(scan_interval);
    }
    // 9. Download by tag, validate, install. A failed download writes no status and
    // backs off: the override stays Ready on its old digest (§3.11).
    let tree = match registry.download(name, &tag).await {
        Ok(tree) => tree,
        Err(failure) => {
            eprintln!("download {name}:{tag}: {failure}");
            return Ok(Some(scan_interval.unwrap_or(Duration::from_secs(15))));
        }
    };
    // Values: the running values, else the ModuleConfig's settings (§3.11).
    let values = apis
        .config
        .get_opt(name)
        .await?
        .and_then(|config| config.data.pointer("/spec/settings").cloned());
    if let Err(error) = crate::registry::validate(&tree, values.as_ref()) {
        let status =
            json!({ "message": format!("Validation error: {error}"), "updatedAt": now_rfc3339() });
        set_mpo_status(apis, name, status).await?;
        return Ok(scan_interval);
    }
    // Module `properties.version` is written by Deckhouse's start-up after the restart
    // (deckhouse-real §4): deckhouse_pod.rs.
    set_mpo_status(
        apis,
        name,
        json!({ "message": "Ready", "imageDigest": resolved, "updatedAt": now_rfc3339() }),
    )
    .await?;
    // The renew annotation is consumed by a successful redeploy: gen D removes only the
    // modern key, gen A–C only the bare one (§3.2).
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
    announce_deploy(name, &tag, &resolved, &source);
    // Deckhouse restarts after a deploy (SIGUSR2); the single worker waits for it (§3.2).
    if !settings.restart_pause.is_zero() {
        println!("restarting deckhouse after {name}");
        tokio::time::sleep(settings.restart_pause).await;
    }
    Ok(scan_interval)
}

async fn download_failed(
    apis: &Apis,
    mpo: &DynamicObject,
    failure: &RegistryFailure,
    scan_interval: Option<Duration>,
) -> anyhow::Result<Option<Duration>> {
    // The old digest is kept; updatedAt refreshes on every failed scan (§3.12).
    let name = mpo.metadata.name.clone().unwrap_or_default();
    let status =
        json!({ "message": format!("Download error: {failure}"), "updatedAt": now_rfc3339() });
    set_mpo_status(apis, &name, status).await?;
    Ok(scan_interval)
}

/// Gen A (ovr-A, docs/deckhouse-real.md §1, §3.3): reads MPO v1alpha1 `spec.source` and
/// `imageTag`, that ModuleSource only (no Module or ModuleConfig checks), labels the
/// override `module=<name>`, `source=<spec.source>`, writes `message: ""` with the
/// digest and weight on success, the raw registry error or `validation failed: <err>`
/// otherwise; a bare `renew` is removed after a redeploy.
async fn reconcile_gen_a(
    apis: &Apis,
    mpo: &DynamicObject,
    settings: &Settings,
) -> anyhow::Result<Option<Duration>> {
    if mpo.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let name = mpo.metadata.name.clone().unwrap_or_default();
    let source_name = str_at(&mpo.data, "/spec/source").to_string();
    let tag = str_at(&mpo.data, "/spec/imageTag").to_string();
    let scan_interval = parse_interval(str_at(&mpo.data, "/spec/scanInterval"));
    let labels = mpo.metadata.labels.clone().unwrap_or_default();
    if labels.get("module") != Some(&name) || labels.get("source") != Some(&source_name) {
        apis.mpo
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({ "metadata": { "labels": { "module": name, "source": source_name } } }),
                ),
            )
            .await?;
    }
    let Some(source) = apis.source.get_opt(&source_name).await? else {
        let message = format!("ModuleSource \"{source_name}\" not found");
        block(apis, mpo, &message, json!({})).await?;
        return Ok(Some(settings.recheck));
    };
    let raw_failure = |failure: RegistryFailure| async move {
        block(apis, mpo, &failure.to_string(), json!({})).await?;
        anyhow::Ok(scan_interval)
    };
    let registry = match ModuleRegistry::from_source(&source.data) {
        Ok(registry) => registry,
        Err(failure) => return raw_failure(failure).await,
    };
    let resolved = match registry
        .module_digest_by(&name, &tag, settings.digest_rule)
        .await
    {
        Ok(digest) => digest,
        Err(failure) => return raw_failure(failure).await,
    };
    if resolved == str_at(&mpo.data, "/status/imageDigest") {
        block(apis, mpo, "", json!({})).await?;
        return Ok(scan_interval);
    }
    let tree = match registry.download(&name, &tag).await {
        Ok(tree) => tree,
        Err(failure) => return raw_failure(failure).await,
    };
    if let Err(error) = crate::registry::validate(&tree, None) {
        block(apis, mpo, &format!("validation failed: {error}"), json!({})).await?;
        return Ok(scan_interval);
    }
    let module = apis.module.get_opt(&name).await?;
    let weight = module
        .as_ref()
        .and_then(|module| module.data.pointer("/properties/weight"))
        .and_then(Value::as_i64)
        .unwrap_or(900);
    if module.is_some() {
        apis.module
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "properties": { "version": tag } })),
            )
            .await?;
    }
    set_mpo_status(
        apis,
        &name,
        json!({ "message": "", "imageDigest": resolved, "weight": weight, "updatedAt": now_rfc3339() }),
    )
    .await?;
    let annotations = mpo.metadata.annotations.clone().unwrap_or_default();
    let mut metadata = json!({ "annotations": { DEPLOYED_ON: "sandbox-node" } });
    if annotations.contains_key(RENEW_LEGACY) {
        metadata["annotations"][RENEW_LEGACY] = Value::Null;
    }
    apis.mpo
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await?;
    println!("deployed {name}:{tag} {resolved}");
    // As on the newer generations: Deckhouse restarts and runs the module (§4).
    announce_deploy(&name, &tag, &resolved, &source);
    Ok(scan_interval)
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
    let settings = apis.settings().await;
    let bundle = apis.bundle().await;
    let configs = by_name(&apis.config).await?;
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
        // cfg (§3.4, §3.5): True when `spec.enabled: true`; False, with empty reason and
        // message, for any other ModuleConfig (`enabled` unset included); Unknown once
        // the ModuleConfig is deleted; absent when there never was one.
        let enabled_by_config = config.map(|config| {
            config
                .data
                .pointer("/spec/enabled")
                .and_then(Value::as_bool)
                == Some(true)
        });
        let changed = match enabled_by_config {
            Some(true) => {
                set_module_condition(apis, &module, "EnabledByModuleConfig", "True", "", "").await?
            }
            Some(false) => {
                set_module_condition(apis, &module, "EnabledByModuleConfig", "False", "", "")
                    .await?
            }
            None if condition(&module, "EnabledByModuleConfig").is_some() => {
                set_module_condition(apis, &module, "EnabledByModuleConfig", "Unknown", "", "")
                    .await?
            }
            None => false,
        };
        let available: Vec<&str> = properties
            .get("availableSources")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let chosen = config
            .map(|config| str_at(&config.data, "/spec/source"))
            .filter(|source| !source.is_empty());
        // §3.15: the source is chosen for an enabled ModuleConfig (newer src: also for a
        // bundle-enabled module, gen C/D); a source named `deckhouse` wins.
        let enabled = enabled_by_config == Some(true)
            || (enabled_by_config.is_none()
                && settings.dkp_minor >= 77
                && enabled_by_bundle(&module, &settings.edition, &bundle));
        let current = str_at(properties, "/source");
        let phase_now = str_at(&module.data, "/status/phase");
        let (source, phase) = if !enabled {
            // §4: a disabled module is Downloaded; Available and Unavailable are kept.
            let phase = if available.is_empty() || phase_now == "Available" {
                "Available"
            } else if phase_now == "Unavailable" {
                "Unavailable"
            } else {
                "Downloaded"
            };
            (current.to_string(), phase)
        } else {
            match (chosen, available.as_slice()) {
                (Some(chosen), _) => (chosen.to_string(), "Ready"),
                (None, [single]) => ((*single).to_string(), "Ready"),
                // The chosen source is not cleared when it goes away: that is how an
                // enabled module comes to name a deleted source (§3.0 "The source not
                // found", §3.14).
                (None, []) if !current.is_empty() => (current.to_string(), "Ready"),
                (None, []) => (String::new(), "Available"),
                (None, several) if several.contains(&"deckhouse") => {
                    ("deckhouse".to_string(), "Ready")
                }
                (None, _) => (String::new(), "Conflict"),
            }
        };
        // The listed object is current unless this pass changed it: one GET per module
        // per pass made a pass over a hundred modules take seconds.
        let module = if current != source {
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
        // Several sources and no choice: IsReady=False, reason Conflict (§3.15). A
        // ModuleConfig that turns the module off: EnabledByModuleManager and IsReady
        // False, reason ModuleConfig, hooksState cleared (§4 "Disabled"); both go
        // when it is turned on again.
        const OFF: ConditionValue = ("False", "ModuleConfig", "turned off by module config");
        let ready_reason = condition(&module, "IsReady").map(|c| str_at(c, "/reason"));
        let manager_off = condition(&module, "EnabledByModuleManager")
            .is_some_and(|c| str_at(c, "/reason") == "ModuleConfig");
        let mut changes: Vec<ConditionChange> = Vec::new();
        if phase == "Conflict" {
            changes.push((
                "IsReady",
                Some(("False", "Conflict", "several available sources")),
            ));
        } else if enabled_by_config == Some(false) {
            changes.push(("EnabledByModuleManager", Some(OFF)));
            changes.push(("IsReady", Some(OFF)));
        } else if matches!(ready_reason, Some("Conflict" | "ModuleConfig"))
            || (enabled && ready_reason == Some("NotInstalled"))
        {
            changes.push(("IsReady", None));
        }
        if manager_off && enabled_by_config != Some(false) {
            changes.push(("EnabledByModuleManager", None));
        }
        let module = if set_module_conditions(apis, &module, &changes).await? {
            apis.module.get(&name).await?
        } else {
            module
        };
        if enabled_by_config == Some(false)
            && !str_at(&module.data, "/status/hooksState").is_empty()
        {
            apis.module
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": { "hooksState": "" } })),
                )
                .await?;
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

// ---------------------------------------------------------------------------------------
// ModuleSource controller (§3.14, §3.16): Module objects from each source's registry
// catalog, and `status.modules`, on its own rescan interval.

/// What the source controller remembers between scans.
#[derive(Default)]
struct SourceMemory {
    /// Source names and generations of the last scan: a new or changed source is
    /// scanned at once, and one gone since was deleted.
    generations: HashMap<String, i64>,
    /// Sources whose client could not be built (a dockerCfg that does not parse), by
    /// the generation tried: not retried until the spec changes (§3.14).
    bad_spec: HashMap<String, i64>,
}

impl SourceMemory {
    /// Whether a watch event asks for a scan now: a source appeared, its spec changed,
    /// or it is gone. Status writes (the scans' own) do not.
    fn wants_scan(&self, event: &watcher::Event<DynamicObject>) -> Option<String> {
        match event {
            watcher::Event::Apply(source) | watcher::Event::Delete(source) => {
                let name = source.metadata.name.clone().unwrap_or_default();
                let deleted = matches!(event, watcher::Event::Delete(_));
                let changed = self.generations.get(&name)
                    != Some(&source.metadata.generation.unwrap_or_default());
                (deleted || changed).then_some(name)
            }
            _ => None,
        }
    }
}

/// Runs after the first `rescan_sources` in `run`: every source each rescan interval,
/// and a source at once when it appears, its spec changes or it is deleted.
async fn source_controller(apis: Apis, memory: SourceMemory) {
    let memory = std::sync::Arc::new(tokio::sync::Mutex::new(memory));
    let mut events = watcher(apis.source.clone(), watcher::Config::default()).boxed();
    let mut last = tokio::time::Instant::now();
    loop {
        let due = last + apis.settings().await.source_rescan;
        let only = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => match memory.lock().await.wants_scan(&event) {
                    Some(name) => Some(HashSet::from([name])),
                    None => continue,
                },
                Some(Err(error)) => {
                    eprintln!("source watch error: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                None => return,
            },
            _ = tokio::time::sleep_until(due) => None,
        };
        if only.is_none() {
            last = tokio::time::Instant::now();
        }
        // Scans run side by side, as reconciles of different sources do.
        let (apis, memory) = (apis.clone(), memory.clone());
        tokio::spawn(async move {
            if let Err(error) = rescan_sources(&apis, &memory, only.as_ref()).await {
                eprintln!("source controller: {error:#}");
            }
        });
    }
}

/// The release channel a module follows, as Deckhouse tags it (`EarlyAccess` →
/// `early-access`); `stable` when the Module names none.
fn release_channel(module: Option<&DynamicObject>) -> String {
    let named = module
        .map(|module| str_at(&module.data, "/properties/releaseChannel"))
        .unwrap_or_default();
    if named.is_empty() {
        return "stable".into();
    }
    let mut channel = String::new();
    for (index, c) in named.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            channel.push('-');
        }
        channel.push(c.to_ascii_lowercase());
    }
    channel
}

/// The catalog names Deckhouse makes Modules of (§3.14): not `modules`, at most 64
/// characters, DNS-1123 labels (newer source), at most 1500.
fn catalog_modules(tags: Vec<String>) -> Vec<String> {
    let dns_label = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    };
    tags.into_iter()
        .filter(|tag| tag != "modules" && tag.len() <= 64 && dns_label(tag))
        .take(1500)
        .collect()
}

fn available_sources(module: &DynamicObject) -> Vec<String> {
    module
        .data
        .pointer("/properties/availableSources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A Module as the source controller creates it from a catalog tag (§3.14).
async fn create_catalog_module(apis: &Apis, name: &str, source: &str) -> anyhow::Result<()> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
        "metadata": {"name": name},
        "properties": {"availableSources": [source], "weight": 900, "version": ""},
    }))?;
    let created = match apis
        .module
        .create(&kube::api::PostParams::default(), &object)
        .await
    {
        Ok(created) => created,
        // Made meanwhile (by a seeder or a test playing an earlier scan): the next
        // scan adds the source to it.
        Err(kube::Error::Api(response)) if response.code == 409 => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let now = now_rfc3339();
    let status = json!({ "status": {
        "phase": "Available",
        "conditions": [
            {"type": "EnabledByModuleManager", "status": "False", "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "IsReady", "status": "False", "reason": "NotInstalled", "lastProbeTime": now, "lastTransitionTime": now},
        ],
    }});
    apis.module
        .patch_status(
            created.metadata.name.as_deref().unwrap_or(name),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await?;
    println!("module {name} created from the catalog of ModuleSource {source}");
    Ok(())
}

/// Takes `source` off a Module's `availableSources` (its catalog tag is gone, or the
/// source was deleted); a Module left with none is deleted unless it is enabled (§3.14).
/// The Module as it is after, `None` once deleted.
async fn drop_source(
    apis: &Apis,
    module: &DynamicObject,
    source: &str,
    configs: &HashMap<String, DynamicObject>,
) -> anyhow::Result<Option<DynamicObject>> {
    let name = module.metadata.name.clone().unwrap_or_default();
    let mut available = available_sources(module);
    available.retain(|s| s != source);
    let enabled = configs
        .get(&name)
        .and_then(|config| config.data.pointer("/spec/enabled"))
        .and_then(Value::as_bool)
        == Some(true);
    if available.is_empty() && !enabled {
        apis.module.delete(&name, &Default::default()).await?;
        println!("module {name} deleted: its last source {source} no longer offers it");
        return Ok(None);
    }
    let patched = apis
        .module
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "properties": { "availableSources": available } })),
        )
        .await?;
    Ok(Some(patched))
}

/// `drop_source`, keeping the scan's view of the Modules current.
async fn drop_source_in(
    apis: &Apis,
    modules: &mut HashMap<String, DynamicObject>,
    name: &str,
    source: &str,
    configs: &HashMap<String, DynamicObject>,
) -> anyhow::Result<()> {
    let Some(module) = modules.get(name) else {
        return Ok(());
    };
    if !available_sources(module).iter().any(|s| s == source) {
        return Ok(());
    }
    match drop_source(apis, module, source, configs).await? {
        Some(module) => modules.insert(name.to_string(), module),
        None => modules.remove(name),
    };
    Ok(())
}

/// One scan of every source. §3.14: each readable catalog tag is a Module (created
/// when missing, the source added to its `availableSources`); a tag gone from the
/// catalog, or a deleted source, takes the source off the Module. §3.16: the catalog
/// is listed in `status.modules` with `overridden` (an override exists) recomputed,
/// old `version`/`checksum` kept for overridden entries (not pulled), `policy` the
/// ModuleConfig's `updatePolicy`; the others' release on their channel gives the
/// `checksum`, or the entry's `error` and the message `Some errors occurred. Inspect
/// status for details`. A client that cannot be built (bad dockerCfg) writes the error to
/// `status.message` and is not retried until the spec changes; a catalog that cannot
/// be read changes no Module. `only`: scan just these sources (those a watch event
/// named); deleted sources are always handled.
async fn rescan_sources(
    apis: &Apis,
    memory: &tokio::sync::Mutex<SourceMemory>,
    only: Option<&HashSet<String>>,
) -> anyhow::Result<()> {
    let overrides: Vec<String> = apis
        .mpo
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|mpo| mpo.metadata.name)
        .collect();
    let configs = by_name(&apis.config).await?;
    let mut modules = by_name(&apis.module).await?;
    let sources = apis.source.list(&ListParams::default()).await?.items;
    let current: HashMap<String, i64> = sources
        .iter()
        .filter_map(|s| {
            Some((
                s.metadata.name.clone()?,
                s.metadata.generation.unwrap_or_default(),
            ))
        })
        .collect();
    // Deleted sources: every Module they offered loses them. The memory is held only
    // while it is read or written, never across a registry request.
    let (gone, bad_spec) = {
        let mut memory = memory.lock().await;
        let gone: Vec<String> = memory
            .generations
            .keys()
            .filter(|name| !current.contains_key(*name))
            .cloned()
            .collect();
        memory
            .generations
            .retain(|name, _| current.contains_key(name));
        memory.bad_spec.retain(|name, _| current.contains_key(name));
        (gone, memory.bad_spec.clone())
    };
    for gone in gone {
        let names: Vec<String> = modules.keys().cloned().collect();
        for name in names {
            if let Err(error) = drop_source_in(apis, &mut modules, &name, &gone, &configs).await {
                eprintln!("source controller: Module {name}: {error:#}");
            }
        }
    }
    // Each source is its own reconcile: the catalogs are read concurrently, so that a
    // registry that stalls holds up only its own source.
    let scanned: Vec<DynamicObject> = sources
        .into_iter()
        .filter(|source| {
            let name = source.metadata.name.as_deref().unwrap_or_default();
            let generation = source.metadata.generation.unwrap_or_default();
            only.is_none_or(|only| only.contains(name)) && bad_spec.get(name) != Some(&generation)
        })
        .collect();
    let catalogs = futures::future::join_all(scanned.iter().map(|source| async move {
        match ModuleRegistry::from_source(&source.data) {
            Ok(registry) => match registry.catalog().await {
                Ok(tags) => Ok((registry, catalog_modules(tags))),
                Err(failure) => Err((false, failure.to_string())),
            },
            Err(failure) => Err((true, failure.to_string())),
        }
    }))
    .await;
    for (source, catalog) in scanned.into_iter().zip(catalogs) {
        let Some(source_name) = source.metadata.name.clone() else {
            continue;
        };
        let generation = source.metadata.generation.unwrap_or_default();
        let mut remembered = memory.lock().await;
        remembered
            .generations
            .insert(source_name.clone(), generation);
        let previous: HashMap<String, Value> = source
            .data
            .pointer("/status/modules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| Some((entry.get("name")?.as_str()?.to_string(), entry.clone())))
            .collect();
        let (registry, catalog) = match catalog {
            Ok(read) => {
                remembered.bad_spec.remove(&source_name);
                drop(remembered);
                read
            }
            Err((bad_spec, message)) => {
                if bad_spec {
                    remembered.bad_spec.insert(source_name.clone(), generation);
                }
                drop(remembered);
                write_source_status(apis, &source_name, json!({ "message": message })).await?;
                continue;
            }
        };
        // One Module's failure is logged and the scan goes on, as a controller's
        // reconcile of one object does not stop the others.
        for name in &catalog {
            let done = match modules.get(name) {
                None => create_catalog_module(apis, name, &source_name).await,
                Some(module) if !available_sources(module).contains(&source_name) => {
                    let mut available = available_sources(module);
                    available.push(source_name.clone());
                    apis.module
                        .patch(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(
                                json!({ "properties": { "availableSources": available } }),
                            ),
                        )
                        .await
                        .map(|patched| {
                            modules.insert(name.clone(), patched);
                        })
                        .map_err(Into::into)
                }
                Some(_) => Ok(()),
            };
            if let Err(error) = done {
                eprintln!("source controller: Module {name}: {error:#}");
            }
        }
        // "Tag forgotten": a module the catalog listed at the last scan and no longer does.
        for forgotten in previous.keys().filter(|name| !catalog.contains(name)) {
            if let Err(error) =
                drop_source_in(apis, &mut modules, forgotten, &source_name, &configs).await
            {
                eprintln!("source controller: Module {forgotten}: {error:#}");
            }
        }
        let mut listed: Vec<Value> = Vec::with_capacity(catalog.len());
        for module_name in &catalog {
            let overridden = overrides.iter().any(|name| name == module_name);
            let policy = configs
                .get(module_name)
                .map(|config| str_at(&config.data, "/spec/updatePolicy"))
                .unwrap_or_default();
            let module = modules.get(module_name);
            let version = module
                .map(|module| str_at(&module.data, "/properties/version"))
                .unwrap_or_default();
            let mut entry = json!({
                "name": module_name,
                "version": version,
                "policy": policy,
                "overridden": overridden,
            });
            if overridden {
                // Not pulled: the old version and checksum stay.
                if let Some(old) = previous.get(module_name) {
                    entry["version"] = json!(str_at(old, "/version"));
                    if let Some(checksum) = old.get("checksum") {
                        entry["checksum"] = checksum.clone();
                    }
                }
            } else {
                // The module's release on its channel: its digest is the checksum, a
                // failure the entry's `error`.
                let channel = release_channel(module);
                match registry
                    .module_digest(&format!("{module_name}/release"), &channel)
                    .await
                {
                    Ok(digest) => entry["checksum"] = json!(digest),
                    Err(failure) => {
                        entry["error"] = json!(format!(
                            "fetch the {channel} release of {module_name}: {failure}"
                        ))
                    }
                }
            }
            listed.push(entry);
        }
        let message = if listed.iter().any(|entry| entry.get("error").is_some()) {
            "Some errors occurred. Inspect status for details"
        } else {
            ""
        };
        write_source_status(
            apis,
            &source_name,
            json!({
                "modules": listed,
                "modulesCount": listed.len(),
                "phase": "Active",
                "message": message,
            }),
        )
        .await?;
    }
    Ok(())
}

/// A ModuleSource status write, with `syncTime` (every status write stamps it).
async fn write_source_status(apis: &Apis, name: &str, mut status: Value) -> anyhow::Result<()> {
    status["syncTime"] = json!(now_rfc3339());
    apis.source
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .with_context(|| format!("ModuleSource {name}"))?;
    Ok(())
}

/// A deploy done: the controller logs it, and Deckhouse restarts and runs the module
/// (docs/deckhouse-real.md §4).
fn announce_deploy(name: &str, tag: &str, resolved: &str, source: &DynamicObject) {
    crate::deckhouse_pod::log(
        "info",
        "Module downloaded and installed, restarting Deckhouse",
        json!({"module": name, "logger": "controller.module-pull-override", "version": tag, "digest": resolved}),
    );
    crate::deckhouse_pod::deployed(name, tag, resolved, source);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_channels_are_tagged_in_kebab_case() {
        let module = |channel: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
                "metadata": {"name": "m"}, "properties": {"releaseChannel": channel},
            }))
            .expect("module")
        };
        assert_eq!(
            release_channel(Some(&module("EarlyAccess"))),
            "early-access"
        );
        assert_eq!(release_channel(Some(&module("Alpha"))), "alpha");
        assert_eq!(release_channel(Some(&module(""))), "stable");
        assert_eq!(release_channel(None), "stable");
    }

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
        assert_eq!(defaults.generation, Generation::C);
        assert!(!defaults.renew_modern);
        assert_eq!(defaults.dkp_minor, 78);
        assert_eq!(defaults.digest_rule, DigestRule::Child);
        let d = Settings::from_data(&[("generation".to_string(), "d".to_string())].into());
        assert!(d.renew_modern);
        assert_eq!(d.dkp_minor, 80);
        assert!(!d.restart_pause.is_zero());
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
