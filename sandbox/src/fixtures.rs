//! Helpers tests use to prepare their own modules, images and simulator settings, so
//! tests that change things never share objects.

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::image::{Layer, Pusher, module_files, push_app_image};
use crate::seed::{deckhouse_api, repo_path};
use crate::state::State;

/// Pushes a module image (standard files; `note` makes builds differ) to the `tls`
/// registry under `<repo>/<module>:<tag>`; returns its digest.
pub async fn push_module(
    state: &State,
    module: &str,
    tag: &str,
    note: &str,
) -> anyhow::Result<String> {
    push_module_to(state, "tls", module, tag, note).await
}

/// Like `push_module`, to the sandbox registry `registry` (`tls`, `token`, `http`).
pub async fn push_module_to(
    state: &State,
    registry: &str,
    module: &str,
    tag: &str,
    note: &str,
) -> anyhow::Result<String> {
    push_module_at(state, registry, repo_path(registry), module, tag, note).await
}

/// Like `push_module_to`, under the repo path `path` (`<path>/<module>:<tag>`): a
/// ModuleSource of its own, whose catalog does not list the shared repos' modules
/// (two sources on one repo would make all its modules a Conflict, §3.14-§3.15).
pub async fn push_module_at(
    state: &State,
    registry: &str,
    path: &str,
    module: &str,
    tag: &str,
    note: &str,
) -> anyhow::Result<String> {
    let pusher = Pusher::new(state, registry)?;
    let repository = format!("{path}/{module}");
    let revision: String = note.chars().filter(char::is_ascii_alphanumeric).collect();
    let backend = push_app_image(&pusher, &repository, "backend", &revision).await?;
    let frontend = push_app_image(&pusher, &repository, "frontend", "r1").await?;
    let files = module_files(
        module,
        tag,
        &[("backend", &backend), ("frontend", &frontend)],
        note,
    );
    let pushed = pusher
        .push_image(&repository, tag, &[Layer::with_files(files)], "amd64")
        .await?;
    Ok(pushed.digest)
}

/// A module of ModuleSource `test` with a ModuleConfig (`enabled`), and one image per
/// tag; returns the digests in tag order.
pub async fn module_with_images(
    state: &State,
    module: &str,
    enabled: bool,
    tags: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut digests = Vec::new();
    for tag in tags {
        digests.push(push_module(state, module, tag, &format!("{tag} build")).await?);
    }
    module_objects(state, module, enabled, json!({})).await?;
    wait_settled(state, module, enabled).await?;
    Ok(digests)
}

/// Tags `<path>:<module>` on the `tls` registry: a module in the catalog of a source
/// whose repo is `<host>/<path>` (docs/deckhouse-real.md §3.14). The image holds the
/// module's name, so each catalog tag has a digest of its own; returns it.
pub async fn push_catalog_tag(state: &State, path: &str, module: &str) -> anyhow::Result<String> {
    let pusher = Pusher::new(state, "tls")?;
    let pushed = pusher
        .push_image(
            path,
            module,
            &[Layer::with_files([("module", module.as_bytes().to_vec())])],
            "amd64",
        )
        .await?;
    Ok(pushed.digest)
}

/// A ModuleSource `name` of its own on the `tls` registry (repo
/// `<host>/catalog-tests/<name>`, the sandbox's credentials and CA) whose catalog lists
/// `modules`, with one image `<module>:v1` each (but for names no repository may
/// have); returns the repo path and the catalog
/// tags' digests, in order.
pub async fn catalog_source(
    state: &State,
    name: &str,
    modules: &[&str],
) -> anyhow::Result<(String, Vec<String>)> {
    let path = format!("catalog-tests/{name}");
    let pusher = Pusher::new(state, "tls")?;
    let mut digests = Vec::new();
    for module in modules {
        digests.push(push_catalog_tag(state, &path, module).await?);
        // Names no repository may have (upper case) get no image.
        if module.bytes().all(|b| !b.is_ascii_uppercase()) {
            pusher
                .push_image(
                    &format!("{path}/{module}"),
                    "v1",
                    &[Layer::with_files(module_files(module, "v1", &[], "v1"))],
                    "amd64",
                )
                .await?;
        }
    }
    let registry = state.registry("tls")?;
    let cfg = crate::image::docker_cfg(
        &[(
            &registry.host,
            registry.username.as_deref().unwrap_or_default(),
            registry.password.as_deref().unwrap_or_default(),
        )],
        true,
    );
    let client = crate::client(state).await?;
    deckhouse_api(&client, "v1alpha1", "ModuleSource", "modulesources")
        .patch(
            name,
            &PatchParams::apply("mpo-sandbox-fixtures").force(),
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
                "metadata": {"name": name},
                "spec": {"registry": {
                    "repo": format!("{}/{path}", registry.host),
                    "dockerCfg": cfg,
                    "ca": std::fs::read_to_string(&state.ca_file)?,
                }},
            })),
        )
        .await?;
    Ok((path, digests))
}

/// Deletes `<path>@digest` from the `tls` registry (a catalog tag dropped).
pub async fn delete_catalog_tag(state: &State, path: &str, digest: &str) -> anyhow::Result<()> {
    delete_from(state, path, digest).await
}

/// A hook that succeeds and one that fails, as shell hooks in the image's `hooks/`.
pub fn failing_hooks() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "hooks/010-ensure-crds.sh".into(),
            b"#!/bin/bash\necho \"crds ensured\"\n".to_vec(),
        ),
        (
            "hooks/020-check-backend.sh".into(),
            b"#!/bin/bash\necho \"cannot reach the backend at backend.svc:8080: connection refused\" >&2\nexit 1\n".to_vec(),
        ),
    ]
}

/// Pushes `<module>:<tag>` with the standard files plus `extra`; returns its digest.
pub async fn push_module_with_files(
    state: &State,
    module: &str,
    tag: &str,
    extra: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<String> {
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", repo_path("tls"));
    let backend = push_app_image(&pusher, &repository, "backend", "r1").await?;
    let mut files = module_files(
        module,
        tag,
        &[("backend", &backend)],
        &format!("{tag} build"),
    );
    files.extend(extra);
    let pushed = pusher
        .push_image(&repository, tag, &[Layer::with_files(files)], "amd64")
        .await?;
    Ok(pushed.digest)
}

/// A module (source `test`, enabled) whose image at `tag` carries a failing hook.
pub async fn module_with_failing_hook(
    state: &State,
    module: &str,
    tag: &str,
) -> anyhow::Result<String> {
    let digest = push_module_with_files(state, module, tag, failing_hooks()).await?;
    module_objects(state, module, true, json!({})).await?;
    Ok(digest)
}

/// A module (source `test`, enabled) whose ModuleConfig settings fail its image's
/// `openapi/config-values.yaml` (`replicas` must be an integer).
pub async fn module_with_bad_settings(
    state: &State,
    module: &str,
    tag: &str,
) -> anyhow::Result<String> {
    let digest = push_module_with_files(state, module, tag, Vec::new()).await?;
    module_objects(state, module, true, json!({"replicas": "three"})).await?;
    Ok(digest)
}

/// Waits until the simulator has reflected the ModuleConfig of `module`.
pub async fn wait_settled(state: &State, module: &str, enabled: bool) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    // The module manager reflects the ModuleConfig within a second; wait for it so the
    // test starts from a settled module.
    let modules = deckhouse_api(&client, "v1alpha1", "Module", "modules");
    let want = if enabled { "True" } else { "False" };
    // 30 s: a machine busy with a parallel test suite slows the module manager.
    for _ in 0..300 {
        let object = modules.get(module).await?;
        let source = object
            .data
            .pointer("/properties/source")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let condition = object
            .data
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .and_then(|list| list.iter().find(|c| c["type"] == "EnabledByModuleConfig"))
            .and_then(|c| c["status"].as_str().map(str::to_string));
        // A source is chosen only for an enabled module (docs/deckhouse-real.md §3.15).
        if (source == "test" || !enabled) && condition.as_deref() == Some(want) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the simulator did not settle Module {module}")
}

/// The Module (source `test`) and its ModuleConfig with `settings`.
async fn module_objects(
    state: &State,
    module: &str,
    enabled: bool,
    settings: serde_json::Value,
) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    let apply = PatchParams::apply("mpo-sandbox-fixtures").force();
    deckhouse_api(&client, "v1alpha1", "Module", "modules")
        .patch(
            module,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
                "metadata": {"name": module},
                "properties": {"availableSources": ["test"], "weight": 900, "version": ""},
            })),
        )
        .await?;
    deckhouse_api(&client, "v1alpha1", "ModuleConfig", "moduleconfigs")
        .patch(
            module,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                "metadata": {"name": module},
                "spec": {"enabled": enabled, "version": 1, "settings": settings},
            })),
        )
        .await?;
    Ok(())
}

/// Changes one simulator setting (ConfigMap default/deckhouse-simulator).
pub async fn set_simulator(state: &State, key: &str, value: &str) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
    maps.patch(
        crate::simulator::SETTINGS_NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { key: value } })),
    )
    .await?;
    Ok(())
}

/// Pushes a module image to the `tls` registry with the standard files, `files`
/// replacing or adding some (`module.yaml`, `openapi/config-values.yaml`...), a config
/// `created` time, and OCI provenance annotations (`annotations`, on the manifest);
/// returns its digest.
pub async fn push_module_image(
    state: &State,
    module: &str,
    tag: &str,
    files: &[(&str, &str)],
    created: &str,
    annotations: serde_json::Value,
) -> anyhow::Result<String> {
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", repo_path("tls"));
    let backend = push_app_image(&pusher, &repository, "backend", tag).await?;
    let mut all = module_files(module, tag, &[("backend", &backend)], tag);
    // An empty content removes the file.
    for (path, content) in files {
        all.retain(|(existing, _)| existing != path);
        if !content.is_empty() {
            all.push(((*path).to_string(), content.as_bytes().to_vec()));
        }
    }
    let pushed = pusher
        .push_annotated_image(
            &repository,
            tag,
            &Layer::with_files(all),
            created,
            &json!({}),
            &annotations,
        )
        .await?;
    Ok(pushed.digest)
}

/// Deletes `<repo>/<module>@digest` (and so every tag on it) from the `tls` registry,
/// as a CI cleanup job does, through the registry API (`storage.delete.enabled`).
pub async fn delete_manifest(state: &State, module: &str, digest: &str) -> anyhow::Result<()> {
    delete_from(state, &format!("{}/{module}", repo_path("tls")), digest).await
}

/// Deletes `<repository>@digest` from the `tls` registry through its API.
async fn delete_from(state: &State, repository: &str, digest: &str) -> anyhow::Result<()> {
    let registry = state.registry("tls")?;
    let url = format!(
        "https://{}/v2/{repository}/manifests/{digest}",
        registry.host
    );
    let user = format!(
        "{}:{}",
        registry.username.clone().unwrap_or_default(),
        registry.password.clone().unwrap_or_default()
    );
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg("--cacert")
        .arg(&state.ca_file)
        .args(["-u", &user, &url])
        .output()
        .await?;
    let code = String::from_utf8_lossy(&output.stdout).to_string();
    anyhow::ensure!(code == "202", "DELETE {url} answered {code}");
    Ok(())
}

/// Sets `spec.settings` of a module's ModuleConfig.
pub async fn set_module_settings(
    state: &State,
    module: &str,
    settings: serde_json::Value,
) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    deckhouse_api(&client, "v1alpha1", "ModuleConfig", "moduleconfigs")
        .patch(
            module,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "settings": settings } })),
        )
        .await?;
    Ok(())
}

/// A ModuleSource `name` with `registry` as its `spec.registry` (repo, scheme, ca,
/// dockerCfg as given), and a module of it with a ModuleConfig enabled; waits until the
/// module manager made it the Module's source and reflected the ModuleConfig.
pub async fn module_of_source(
    state: &State,
    module: &str,
    source: &str,
    registry: serde_json::Value,
) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    let apply = PatchParams::apply("mpo-sandbox-fixtures").force();
    deckhouse_api(&client, "v1alpha1", "ModuleSource", "modulesources")
        .patch(
            source,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
                "metadata": {"name": source},
                "spec": {"registry": registry, "releaseChannel": "Alpha"},
            })),
        )
        .await?;
    let modules = deckhouse_api(&client, "v1alpha1", "Module", "modules");
    modules
        .patch(
            module,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
                "metadata": {"name": module},
                "properties": {"availableSources": [source], "weight": 900, "version": ""},
            })),
        )
        .await?;
    deckhouse_api(&client, "v1alpha1", "ModuleConfig", "moduleconfigs")
        .patch(
            module,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                "metadata": {"name": module},
                "spec": {"enabled": true, "version": 1},
            })),
        )
        .await?;
    for _ in 0..100 {
        let object = modules.get(module).await?;
        let enabled = object
            .data
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .and_then(|list| list.iter().find(|c| c["type"] == "EnabledByModuleConfig"))
            .is_some_and(|c| c["status"] == "True");
        let source_set = object
            .data
            .pointer("/properties/source")
            .and_then(|v| v.as_str())
            == Some(source);
        if enabled && source_set {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the simulator did not make {source} the source of Module {module}")
}

/// Pushes `<tls repo>/<module>:<tag>` as an OCI index of a linux/amd64 and a
/// linux/arm64 image; returns (index digest, amd64 digest).
pub async fn push_multiarch(
    state: &State,
    module: &str,
    tag: &str,
) -> anyhow::Result<(String, String)> {
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", repo_path("tls"));
    let backend = push_app_image(&pusher, &repository, "backend", "multi").await?;
    let apps = [("backend", backend.as_str())];
    let amd64 = module_files(module, tag, &apps, "linux/amd64 build");
    let arm64 = module_files(module, tag, &apps, "linux/arm64 build");
    let amd64 = pusher
        .push_image(
            &repository,
            &format!("{tag}-amd64"),
            &[Layer::with_files(amd64)],
            "amd64",
        )
        .await?;
    let arm64 = pusher
        .push_image(
            &repository,
            &format!("{tag}-arm64"),
            &[Layer::with_files(arm64)],
            "arm64",
        )
        .await?;
    let index = pusher
        .push_index(
            &repository,
            tag,
            &[(amd64.clone(), "amd64"), (arm64, "arm64")],
        )
        .await?;
    Ok((index.digest, amd64.digest))
}
