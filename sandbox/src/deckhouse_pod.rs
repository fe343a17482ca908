//! The deckhouse Pod and what happens after a deploy (docs/deckhouse-real.md §4).
//!
//! Deckhouse runs as the Pod `deckhouse-*` (label `app=deckhouse`) in `d8-system` and
//! logs JSON lines (`level`, `time`, `msg`, `module`, `hook`, `binding`, `queue`); the
//! documented way to read them is `kubectl -n d8-system logs -l app=deckhouse`. Here the
//! Pod is a real API object on a registered Node whose kubelet endpoint is the sandbox's
//! log server (`kubelet.rs`), so `pods/log` goes through the real kube-apiserver.
//!
//! §4: an override's `Ready` means installed, not running. After a deploy Deckhouse
//! restarts (here: the Pod is replaced, so it gets a new name), then runs the module:
//! phase `Installing` (`IsReady` False, `Installing`, `installing`), its hooks
//! (`onStartup hooks done`), then `Ready` with `IsReady` True. A failing hook makes
//! phase `Error`, `IsReady` False `HookError` with the error and `hooksState` its
//! summary; settings that fail the image's `openapi/config-values.yaml` make the
//! ModuleConfig `status.message` `Error: <validation error>` and the Module `Error`
//! (`ModuleError`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::registry::ModuleRegistry;
use crate::seed::deckhouse_api;
use crate::state::State;

pub const NAMESPACE: &str = "d8-system";
pub const NODE: &str = "sandbox-node";
pub const CONTAINER: &str = "deckhouse";
const MANAGER: &str = "mpo-sandbox-deckhouse";
/// Pause between the stages of a module run, so that a watcher sees each of them.
const STEP: Duration = Duration::from_millis(300);

struct Deckhouse {
    client: kube::Client,
    dir: PathBuf,
    pod: Mutex<String>,
    /// Restarts happen one at a time; deploys queued behind one share it, as one
    /// Deckhouse restart picks up every module installed before it.
    restarts: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Module runs at once (Deckhouse's parallel module queue; also bounds the load a
    /// benchmark's thousands of deploys put on the API server).
    runs: tokio::sync::Semaphore,
}

static DECKHOUSE: OnceLock<Arc<Deckhouse>> = OnceLock::new();

/// Registers the Node and starts the first deckhouse Pod. Without a kubelet entry in
/// `state.json` (an old sandbox) there is no Pod, and log lines go nowhere.
pub async fn start(state: &State, client: kube::Client) -> anyhow::Result<()> {
    let Some(kubelet) = state.kubelet.clone() else {
        return Ok(());
    };
    let apply = PatchParams::apply(MANAGER).force();
    Api::<Namespace>::all(client.clone())
        .patch(
            NAMESPACE,
            &apply,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
            ),
        )
        .await?;
    Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .patch(
            "deckhouse",
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "deckhouse", "namespace": NAMESPACE}})),
        )
        .await?;
    let nodes = Api::<Node>::all(client.clone());
    nodes
        .patch(
            NODE,
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "labels": {"node-role.kubernetes.io/control-plane": ""}}})),
        )
        .await?;
    // No kubelet posts the Node's status: the sandbox does, once.
    let now = now();
    nodes
        .patch_status(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "containerd://1.7.0", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                    "machineID": "", "systemUUID": "", "bootID": ""},
            }})),
        )
        .await?;
    let deckhouse = Arc::new(Deckhouse {
        client,
        dir: kubelet.dir,
        pod: Mutex::new(String::new()),
        restarts: tokio::sync::Mutex::new(None),
        runs: tokio::sync::Semaphore::new(4),
    });
    let _ = DECKHOUSE.set(deckhouse.clone());
    deckhouse.restart().await
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Appends one JSON log line to the running deckhouse Pod's log.
pub fn log(level: &str, msg: &str, fields: Value) {
    let mut entry = json!({"level": level, "logger": "deckhouse-controller", "msg": msg});
    if let (Some(entry), Some(fields)) = (entry.as_object_mut(), fields.as_object()) {
        entry.extend(fields.clone());
    }
    entry["time"] = json!(
        jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .map_or_else(|_| now(), |t| t.to_string())
    );
    raw(&entry.to_string());
}

/// Appends one line as it is, for the lines Deckhouse prints outside its JSON logger.
pub fn raw(text: &str) {
    let Some(deckhouse) = DECKHOUSE.get() else {
        return;
    };
    let pod = deckhouse
        .pod
        .lock()
        .map(|pod| pod.clone())
        .unwrap_or_default();
    if pod.is_empty() {
        return;
    }
    let file = deckhouse
        .dir
        .join(NAMESPACE)
        .join(&pod)
        .join(format!("{CONTAINER}.log"));
    if let Ok(mut out) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = out.write_all(format!("{} {text}\n", now()).as_bytes());
    }
}

fn pod_name() -> String {
    use sha2::Digest;
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let hash = sha2::Sha256::digest(seed.as_bytes());
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = hash
        .iter()
        .take(5)
        .map(|byte| alphabet[usize::from(*byte) % alphabet.len()] as char)
        .collect();
    format!("deckhouse-{suffix}")
}

impl Deckhouse {
    /// Replaces the deckhouse Pod: the old container's log ends, a new Pod starts.
    async fn restart(&self) -> anyhow::Result<()> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), NAMESPACE);
        let old = pods
            .list(&ListParams::default().labels("app=deckhouse"))
            .await?
            .items;
        let name = pod_name();
        let pod_dir = self.dir.join(NAMESPACE).join(&name);
        std::fs::create_dir_all(&pod_dir)?;
        std::fs::write(pod_dir.join(format!("{CONTAINER}.log")), "")?;
        pods.create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "deckhouse"}},
                "spec": {"nodeName": NODE, "serviceAccountName": "deckhouse", "automountServiceAccountToken": false,
                    "containers": [{"name": CONTAINER, "image": "registry.deckhouse.io/deckhouse/ce:v1.78.0"}]}}))?,
        )
        .await?;
        let started = now();
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": started,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": started}],
                "containerStatuses": [{"name": CONTAINER, "ready": true, "started": true, "restartCount": 0,
                    "image": "registry.deckhouse.io/deckhouse/ce:v1.78.0", "imageID": "",
                    "state": {"running": {"startedAt": started}}}],
            }})),
        )
        .await?;
        if let Ok(mut pod) = self.pod.lock() {
            *pod = name.clone();
        }
        for pod in old {
            let Some(old_name) = pod.metadata.name else {
                continue;
            };
            let marker = self
                .dir
                .join(NAMESPACE)
                .join(&old_name)
                .join(format!("{CONTAINER}.terminated"));
            let _ = std::fs::write(marker, "");
            let _ = pods
                .delete(&old_name, &DeleteParams::default().grace_period(0))
                .await;
        }
        // What Deckhouse prints before its JSON logger starts, then its first lines.
        raw(&format!(
            "I{} 1 leaderelection.go:257] successfully acquired lease d8-system/deckhouse-leader-election",
            jiff::Zoned::now().strftime("%m%d %H:%M:%S%.6f")
        ));
        log("info", "Start deckhouse-controller", json!({"pod": name}));
        println!("deckhouse pod {name}");
        Ok(())
    }
}

/// Called by the override controller after a deploy (or a forced renew): restarts
/// Deckhouse and runs the module, in the background.
pub fn deployed(module: &str, tag: &str, digest: &str, source: &DynamicObject) {
    let Some(deckhouse) = DECKHOUSE.get().cloned() else {
        return;
    };
    let (module, tag, digest, source) = (
        module.to_string(),
        tag.to_string(),
        digest.to_string(),
        source.data.clone(),
    );
    let requested = std::time::Instant::now();
    tokio::spawn(async move {
        {
            let mut last_restart = deckhouse.restarts.lock().await;
            if last_restart.is_none_or(|began| began < requested) {
                let began = std::time::Instant::now();
                if let Err(error) = deckhouse.restart().await {
                    eprintln!("restart deckhouse: {error:#}");
                }
                *last_restart = Some(began);
            }
        }
        let _run = deckhouse.runs.acquire().await;
        if let Err(error) = run_module(&deckhouse, &module, &tag, &digest, &source).await {
            eprintln!("run module {module}: {error:#}");
            log(
                "error",
                "Module run failed",
                json!({"module": module, "error": format!("{error:#}")}),
            );
        }
    });
}

/// One Module status write: phase, hooksState and the two conditions §4 names.
async fn set_health(
    modules: &Api<DynamicObject>,
    module: &str,
    phase: &str,
    ready: (&str, &str, &str),
    hooks_state: &str,
) -> anyhow::Result<()> {
    for _ in 0..10 {
        let object = modules.get(module).await?;
        let now = now();
        let mut conditions: Vec<Value> = object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut put = |kind: &str, status: &str, reason: &str, message: &str| {
            let same = conditions.iter().any(|c| {
                c["type"] == kind
                    && c["status"] == status
                    && c.get("reason").and_then(Value::as_str).unwrap_or("") == reason
                    && c.get("message").and_then(Value::as_str).unwrap_or("") == message
            });
            if same {
                return;
            }
            conditions.retain(|c| c["type"] != kind);
            let mut entry = json!({"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now});
            if !reason.is_empty() {
                entry["reason"] = json!(reason);
            }
            if !message.is_empty() {
                entry["message"] = json!(message);
            }
            conditions.push(entry);
        };
        put("EnabledByModuleManager", "True", "", "");
        put("IsReady", ready.0, ready.1, ready.2);
        let patch = json!({
            "metadata": {"resourceVersion": object.metadata.resource_version},
            "status": {"phase": phase, "hooksState": hooks_state, "conditions": conditions},
        });
        match modules
            .patch_status(module, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 => continue,
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("Module {module}: the status kept changing")
}

async fn run_module(
    deckhouse: &Deckhouse,
    module: &str,
    tag: &str,
    digest: &str,
    source: &Value,
) -> anyhow::Result<()> {
    let modules = deckhouse_api(&deckhouse.client, "v1alpha1", "Module", "modules");
    let configs = deckhouse_api(
        &deckhouse.client,
        "v1alpha1",
        "ModuleConfig",
        "moduleconfigs",
    );
    // A module its ModuleConfig turns off is not run (§4 "Disabled"; gen A deploys it
    // anyway): the module manager keeps it at IsReady False, reason ModuleConfig.
    let turned_off = modules
        .get(module)
        .await?
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "EnabledByModuleConfig" && c["status"] == "False")
        });
    if turned_off {
        log(
            "info",
            "Module is disabled, not run",
            json!({"module": module, "queue": "main", "version": tag}),
        );
        return Ok(());
    }
    // Start-up writes the running build's version (§4).
    modules
        .patch(
            module,
            &PatchParams::default(),
            &Patch::Merge(json!({"properties": {"version": tag}})),
        )
        .await?;
    log(
        "info",
        "Module run",
        json!({"module": module, "queue": "main", "binding": "ModuleRun", "version": tag}),
    );
    set_health(
        &modules,
        module,
        "Installing",
        ("False", "Installing", "installing"),
        "",
    )
    .await?;
    tokio::time::sleep(STEP).await;

    let files = ModuleRegistry::from_source(source)
        .map_err(|error| anyhow::anyhow!("{error}"))?
        .download(module, digest)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    for (path, content) in files.iter().filter(|(path, _)| path.starts_with("hooks/")) {
        let hook = format!("{module}/{path}");
        let fields =
            json!({"module": module, "hook": hook, "binding": "OnStartup", "queue": "main"});
        log("info", "Module hook start", fields.clone());
        if let Some(error) = hook_failure(&String::from_utf8_lossy(content)) {
            let message = format!("{hook}: {error}");
            // Hooks log without the module field; the hook name carries it.
            log(
                "error",
                &format!("Hook failed: {error}"),
                json!({"hook": hook, "binding": "OnStartup", "queue": "main", "output": "stderr"}),
            );
            log(
                "error",
                "ModuleRun failed in phase 'OnStartup' hooks",
                json!({"module": module, "queue": "main", "error": message}),
            );
            set_health(
                &modules,
                module,
                "Error",
                ("False", "HookError", &message),
                &message,
            )
            .await?;
            // Deckhouse retries the failed task with a back-off (capped), in whichever
            // Pod runs now; each try logs again, until another run replaces this one.
            let (module, hook, modules) = (module.to_string(), hook.clone(), modules.clone());
            tokio::spawn(async move {
                for attempt in 1u64.. {
                    tokio::time::sleep(Duration::from_millis((500 * attempt).min(2000))).await;
                    let still_failing = match modules.get_opt(&module).await {
                        Ok(Some(object)) => {
                            object
                                .data
                                .pointer("/status/hooksState")
                                .and_then(Value::as_str)
                                == Some(message.as_str())
                        }
                        _ => false,
                    };
                    if !still_failing {
                        return;
                    }
                    log(
                        "error",
                        &format!("Hook failed: {error}"),
                        json!({"hook": hook, "binding": "OnStartup", "queue": "main", "output": "stderr"}),
                    );
                    log(
                        "error",
                        "ModuleRun failed in phase 'OnStartup' hooks",
                        json!({"module": module, "queue": "main", "error": message, "count": attempt}),
                    );
                }
            });
            return Ok(());
        }
        log("info", "Module hook success", fields);
    }

    let settings = configs
        .get_opt(module)
        .await?
        .and_then(|config| config.data.pointer("/spec/settings").cloned())
        .unwrap_or_else(|| json!({}));
    let schema = files
        .get("openapi/config-values.yaml")
        .and_then(|text| serde_saphyr::from_str::<Value>(&String::from_utf8_lossy(text)).ok());
    if let Some(error) = schema.and_then(|schema| settings_error(module, &schema, &settings)) {
        configs
            .patch_status(
                module,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"message": format!("Error: {error}")}})),
            )
            .await?;
        log(
            "error",
            &format!("ModuleConfig validation: {error}"),
            json!({"module": module, "queue": "main"}),
        );
        set_health(
            &modules,
            module,
            "Error",
            ("False", "ModuleError", &error),
            "",
        )
        .await?;
        return Ok(());
    }
    if let Some(config) = configs.get_opt(module).await?
        && config
            .data
            .pointer("/status/message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("Error:"))
    {
        configs
            .patch_status(
                module,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"message": ""}})),
            )
            .await?;
    }
    set_health(
        &modules,
        module,
        "Installing",
        ("False", "Installing", "onStartup hooks done"),
        "",
    )
    .await?;
    log(
        "info",
        "Helm release upgraded",
        json!({"module": module, "queue": "main", "binding": "ModuleRun", "release": module}),
    );
    tokio::time::sleep(STEP).await;
    set_health(&modules, module, "Ready", ("True", "", ""), "").await?;
    log(
        "info",
        "Module run succeeded",
        json!({"module": module, "queue": "main", "binding": "ModuleRun"}),
    );
    Ok(())
}

/// A hook "fails" when its script ends in `exit 1`; its error is what it echoes to
/// stderr (`echo "..." >&2`). The simulator reads hooks, it does not run them.
fn hook_failure(script: &str) -> Option<String> {
    if !script.lines().any(|line| line.trim() == "exit 1") {
        return None;
    }
    let echoed = script.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("echo ")?.strip_suffix(">&2")?.trim();
        Some(rest.trim_matches('"').to_string())
    });
    Some(echoed.unwrap_or_else(|| "exit status 1".to_string()))
}

/// The values check Deckhouse makes against `openapi/config-values.yaml`: the type of
/// each top-level setting (the sandbox's images declare only top-level properties).
fn settings_error(module: &str, schema: &Value, settings: &Value) -> Option<String> {
    let properties = schema.get("properties")?.as_object()?;
    let settings = settings.as_object()?;
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in settings {
        let Some(expected) = properties
            .get(key)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        else {
            if schema.get("additionalProperties") == Some(&json!(false)) {
                errors.insert(
                    key.clone(),
                    format!("{module}.{key} is a forbidden property"),
                );
            }
            continue;
        };
        let ok = match expected {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => true,
        };
        if !ok {
            let actual = match value {
                Value::String(_) => "string",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
            };
            errors.insert(
                key.clone(),
                format!("{module}.{key} must be of type {expected}: \"{actual}\""),
            );
        }
    }
    if errors.is_empty() {
        return None;
    }
    let list: Vec<String> = errors.into_values().map(|e| format!("* {e}")).collect();
    Some(format!(
        "{} error occurred: {}",
        list.len(),
        list.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_that_fail() {
        assert_eq!(hook_failure("#!/bin/bash\necho ok\n"), None);
        assert_eq!(
            hook_failure("#!/bin/bash\necho \"cannot reach the backend\" >&2\nexit 1\n").as_deref(),
            Some("cannot reach the backend")
        );
    }

    #[test]
    fn settings_against_the_schema() {
        let schema = json!({"type": "object", "properties": {"replicas": {"type": "integer"}}});
        assert_eq!(
            settings_error("echo", &schema, &json!({"replicas": 2})),
            None
        );
        assert_eq!(
            settings_error("echo", &schema, &json!({"replicas": "three"})).as_deref(),
            Some("1 error occurred: * echo.replicas must be of type integer: \"string\"")
        );
    }
}
