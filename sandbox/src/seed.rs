//! `mpo-sandbox seed`: CRDs, simulator settings, registry content and the Deckhouse
//! objects listed in sandbox/README.md.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::image::{Layer, Pusher, docker_cfg, module_files, push_app_image, release_files};
use crate::state::State;

const MANAGER: &str = "mpo-sandbox-seed";

/// Where each registry keeps its modules (the ModuleSource repo without the host).
pub fn repo_path(registry: &str) -> &'static str {
    if registry == "http" {
        "modules"
    } else {
        "deckhouse/modules"
    }
}

/// `mpo_version`: `v1alpha2` (both served, as on current clusters) or `v1alpha1` (an old
/// cluster that serves only v1alpha1, from `variants/mpo-v1alpha1-only.yaml`).
pub async fn apply_crds(
    client: &kube::Client,
    dir: &Path,
    mpo_version: &str,
) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let variant = dir.join("variants/mpo-v1alpha1-only.yaml");
    if mpo_version == "v1alpha1" {
        files.push(variant);
    }
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for document in text.split("\n---") {
            let body: String = document
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            if body.trim().is_empty() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_str(&body)
                .with_context(|| format!("parsing a CRD in {}", file.display()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            let is_variant = file.ends_with("variants/mpo-v1alpha1-only.yaml");
            if name == "modulepulloverrides.deckhouse.io"
                && mpo_version == "v1alpha1"
                && !is_variant
            {
                continue;
            }
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| format!("applying CRD {name}"))?;
            names.push(name);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = api.get(&name).await?;
            let established = crd
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "CRD {name} not established");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Discovery of the new group can lag a moment behind Established.
    for _ in 0..50 {
        if client
            .list_api_group_resources("deckhouse.io/v1alpha1")
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub fn deckhouse_api(
    client: &kube::Client,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("deckhouse.io", version, kind),
        plural,
    );
    Api::all_with(client.clone(), &resource)
}

async fn apply(api: &Api<DynamicObject>, object: Value) -> anyhow::Result<DynamicObject> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("applying {name}"))?;
    if let Some(status) = object.get("status") {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .with_context(|| format!("status of {name}"))?;
    }
    Ok(applied)
}

/// The module images of one module: app images by digest plus module image tags.
async fn push_module(
    pusher: &Pusher,
    registry: &str,
    module: &str,
    tags: &[(&str, &str)],
) -> anyhow::Result<()> {
    let repository = format!("{}/{module}", repo_path(registry));
    let backend = push_app_image(pusher, &repository, "backend", "r1").await?;
    let frontend = push_app_image(pusher, &repository, "frontend", "r1").await?;
    for (tag, note) in tags {
        let files = module_files(
            module,
            tag,
            &[("backend", &backend), ("frontend", &frontend)],
            note,
        );
        pusher
            .push_image(&repository, tag, &[Layer::with_files(files)], "amd64")
            .await?;
    }
    // The catalog: tags of the repo itself are module names.
    pusher
        .push_image(
            repo_path(registry),
            module,
            &[Layer::with_files([("module", module.as_bytes().to_vec())])],
            "amd64",
        )
        .await?;
    Ok(())
}

async fn push_releases(
    pusher: &Pusher,
    registry: &str,
    module: &str,
    channels: &[(&str, &str)],
) -> anyhow::Result<()> {
    let repository = format!("{}/{module}/release", repo_path(registry));
    let mut versions: Vec<&str> = channels.iter().map(|(_, version)| *version).collect();
    versions.sort();
    versions.dedup();
    for version in versions {
        let layer = Layer::with_files(release_files(module, version));
        let pushed = pusher
            .push_image(&repository, version, &[layer], "amd64")
            .await?;
        for (channel, _) in channels.iter().filter(|(_, v)| *v == version) {
            pusher.retag(&repository, &pushed.digest, channel).await?;
        }
    }
    Ok(())
}

/// echo's special tags: a second build, a multi-arch index, a whiteout and a broken image.
async fn push_echo_extras(pusher: &Pusher) -> anyhow::Result<()> {
    let repository = format!("{}/echo", repo_path("tls"));
    let backend = push_app_image(pusher, &repository, "backend", "r2").await?;
    let frontend = push_app_image(pusher, &repository, "frontend", "r1").await?;
    let apps = [
        ("backend", backend.as_str()),
        ("frontend", frontend.as_str()),
    ];
    let pr = module_files("echo", "pr333", &apps, "pull request 333");
    pusher
        .push_image(&repository, "pr333", &[Layer::with_files(pr)], "amd64")
        .await?;

    let amd64 = module_files("echo", "multiarch", &apps, "linux/amd64 build");
    let arm64 = module_files("echo", "multiarch", &apps, "linux/arm64 build");
    let amd64 = pusher
        .push_image(
            &repository,
            "multiarch-amd64",
            &[Layer::with_files(amd64)],
            "amd64",
        )
        .await?;
    let arm64 = pusher
        .push_image(
            &repository,
            "multiarch-arm64",
            &[Layer::with_files(arm64)],
            "arm64",
        )
        .await?;
    pusher
        .push_index(
            &repository,
            "multiarch",
            &[(amd64, "amd64"), (arm64, "arm64")],
        )
        .await?;

    let base = Layer::with_files(module_files("echo", "whiteout", &apps, "before whiteout"));
    let upper = Layer {
        files: vec![(
            "templates/service.yaml".into(),
            b"apiVersion: v1\nkind: Service\n".to_vec(),
        )],
        whiteouts: vec!["docs/README.md".into()],
    };
    pusher
        .push_image(&repository, "whiteout", &[base, upper], "amd64")
        .await?;

    let mut broken = module_files("echo", "broken", &apps, "broken schema");
    broken.retain(|(path, _)| path != "openapi/config-values.yaml");
    broken.push((
        "openapi/config-values.yaml".into(),
        b"type: [object\n  properties: {".to_vec(),
    ));
    pusher
        .push_image(&repository, "broken", &[Layer::with_files(broken)], "amd64")
        .await?;
    Ok(())
}

pub async fn run(
    state: &State,
    crds: &Path,
    mpo_version: &str,
    generation: crate::simulator::Generation,
    digest_rule: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(mpo_version, "v1alpha1" | "v1alpha2"),
        "--mpo-version must be v1alpha1 or v1alpha2"
    );
    let client = crate::client(state).await?;
    apply_crds(&client, crds, mpo_version).await?;

    let settings: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": crate::simulator::SETTINGS_NAME, "namespace": "default"},
        "data": settings_data(generation, digest_rule),
    });
    settings
        .patch(
            crate::simulator::SETTINGS_NAME,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&map),
        )
        .await?;

    deckhouse_deployment(&client, generation).await?;
    push_images(state).await?;
    create_objects(state, &client, mpo_version).await?;
    // Module health (docs/deckhouse-real.md §4): no overrides seeded, users create them.
    crate::fixtures::module_with_failing_hook(state, "failing-hook", "v1.0.0").await?;
    crate::fixtures::module_with_bad_settings(state, "bad-settings", "v1.0.0").await?;
    seed_image_workflow(state, &client, mpo_version).await
}

/// The simulator's settings a sandbox of `generation` starts with.
fn settings_data(generation: crate::simulator::Generation, digest_rule: &str) -> serde_json::Value {
    json!({
        "generation": generation.name(), "digestRule": digest_rule, "edition": "ce",
        "recheckSeconds": "60", "sourceRescanSeconds": "180",
    })
}

/// Switches a running sandbox to `generation` in place: the simulator settings (only
/// the generation and the digest rule; the others go back to their defaults), the
/// deckhouse Deployment's version, and `state.json`, which the tests read.
pub async fn set_generation(
    state: &State,
    generation: crate::simulator::Generation,
    digest_rule: &str,
) -> anyhow::Result<()> {
    let client = crate::client(state).await?;
    let settings: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    // A replace, not a merge: settings a test left behind do not carry over.
    let mut current = settings.get(crate::simulator::SETTINGS_NAME).await?;
    current.data = serde_json::from_value(settings_data(generation, digest_rule))?;
    settings
        .replace(
            crate::simulator::SETTINGS_NAME,
            &kube::api::PostParams::default(),
            &current,
        )
        .await?;
    deckhouse_deployment(&client, generation).await?;
    // Edited as JSON: every field up.sh wrote stays as it was.
    let path = state.dir.join("state.json");
    let mut written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    written["generation"] = json!(generation.name());
    written["digest_rule"] = json!(digest_rule);
    let temporary = state.dir.join("state.json.new");
    std::fs::write(&temporary, serde_json::to_string_pretty(&written)?)?;
    std::fs::rename(&temporary, &path)?;
    Ok(())
}

/// The `deckhouse` Deployment in `d8-system`, as a cluster of this generation runs it:
/// the image tag and the `core.deckhouse.io/version` and `core.deckhouse.io/edition`
/// annotations carry the Deckhouse version and edition (no controller runs its pods).
async fn deckhouse_deployment(
    client: &kube::Client,
    generation: crate::simulator::Generation,
) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            "d8-system",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d8-system"}}),
            ),
        )
        .await?;
    let version = generation.dkp_version();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "deckhouse", "namespace": "d8-system",
            "labels": {"app": "deckhouse", "heritage": "deckhouse"},
            "annotations": {"core.deckhouse.io/version": version, "core.deckhouse.io/edition": "ce"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "deckhouse"}},
            "template": {
                "metadata": {"labels": {"app": "deckhouse"}},
                "spec": {"containers": [{
                    "name": "deckhouse",
                    "image": format!("registry.deckhouse.io/deckhouse/ce:{version}"),
                }]},
            },
        },
    });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "d8-system");
    deployments
        .patch(
            "deckhouse",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(deployment),
        )
        .await?;
    Ok(())
}

/// Module `preflight-demo` for the image-aware workflow: builds with OCI provenance and
/// distinct creation times, one whose schema rejects the ModuleConfig's settings, one
/// with unmet requirements, an experimental one, application-image tags, and an
/// override whose tag CI deleted after it was created.
async fn seed_image_workflow(
    state: &State,
    client: &kube::Client,
    mpo_version: &str,
) -> anyhow::Result<()> {
    use crate::fixtures::{delete_manifest, push_module_image};
    let module = "preflight-demo";
    let provenance = |revision: &str, created: &str| {
        json!({
            "org.opencontainers.image.source": "https://git.example.com/team/preflight-demo",
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.version": "main",
        })
    };
    push_module_image(
        state,
        module,
        "main-1",
        &[],
        "2026-01-01T10:00:00Z",
        provenance(
            "1111111111111111111111111111111111111111",
            "2026-01-01T10:00:00Z",
        ),
    )
    .await?;
    push_module_image(
        state,
        module,
        "main-2",
        &[],
        "2026-02-01T10:00:00Z",
        provenance(
            "2222222222222222222222222222222222222222",
            "2026-02-01T10:00:00Z",
        ),
    )
    .await?;
    push_module_image(
        state,
        module,
        "strict-schema",
        &[(
            "openapi/config-values.yaml",
            "type: object\nproperties:\n  replicas:\n    type: string\n",
        )],
        "2026-01-15T10:00:00Z",
        json!({}),
    )
    .await?;
    push_module_image(state, module, "needs-newer-cluster", &[(
        "module.yaml",
        "name: preflight-demo\nstage: General Availability\nrequirements:\n  kubernetes: '>= 99.0'\n  modules:\n    no-such-module: '>= 0.0.0'\n",
    )], "2026-01-16T10:00:00Z", json!({})).await?;
    push_module_image(
        state,
        module,
        "experimental",
        &[("module.yaml", "name: preflight-demo\nstage: Experimental\n")],
        "2026-01-17T10:00:00Z",
        json!({}),
    )
    .await?;
    let cleaned = push_module_image(
        state,
        module,
        "cleaned",
        &[],
        "2026-01-18T10:00:00Z",
        json!({}),
    )
    .await?;
    let catalog = Pusher::new(state, "tls")?;
    catalog
        .push_image(
            repo_path("tls"),
            module,
            &[Layer::with_files([("module", module.as_bytes().to_vec())])],
            "amd64",
        )
        .await?;
    apply(
        &deckhouse_api(client, "v1alpha1", "Module", "modules"),
        module_object(module, &["test"], json!({})),
    )
    .await?;
    apply(
        &deckhouse_api(client, "v1alpha1", "ModuleConfig", "moduleconfigs"),
        json!({
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
            "metadata": {"name": module},
            "spec": {"enabled": true, "version": 1, "settings": {"replicas": 2}},
        }),
    )
    .await?;
    let mut spec = json!({"imageTag": "cleaned", "scanInterval": "15s", "rollback": false});
    if mpo_version == "v1alpha1" {
        spec["source"] = json!("test");
    }
    apply(
        &deckhouse_api(
            client,
            mpo_version,
            "ModulePullOverride",
            "modulepulloverrides",
        ),
        json!({
            "apiVersion": format!("deckhouse.io/{mpo_version}"), "kind": "ModulePullOverride",
            "metadata": {"name": module},
            "spec": spec,
        }),
    )
    .await?;
    delete_manifest(state, module, &cleaned).await
}

async fn push_images(state: &State) -> anyhow::Result<()> {
    let tls = Pusher::new(state, "tls")?;
    let token = Pusher::new(state, "token")?;
    let http = Pusher::new(state, "http")?;
    let ready_tags: &[(&str, &str)] = &[("main", "main branch"), ("v1.0.0", "release v1.0.0")];
    let echo_tags: &[(&str, &str)] = &[
        ("main-patch-03354", "walkthrough build"),
        ("v1.0.0", "release v1.0.0"),
        ("main", "main branch"),
    ];
    let tls_modules = [
        "hello-world",
        "two-sources",
        "missing-tag",
        "bad-creds-module",
        "no-ca-module",
        "wrong-host-module",
        "disabled-module",
        "bundle-module",
    ];
    let mut jobs: Vec<futures::future::BoxFuture<'_, anyhow::Result<()>>> = vec![
        Box::pin(push_module(&tls, "tls", "echo", echo_tags)),
        Box::pin(push_echo_extras(&tls)),
        Box::pin(push_releases(
            &tls,
            "tls",
            "echo",
            &[
                ("v1.0.0", "v1.0.0"),
                ("v1.1.0", "v1.1.0"),
                ("alpha", "v1.1.0"),
                ("beta", "v1.1.0"),
                ("early-access", "v1.0.0"),
                ("stable", "v1.0.0"),
                ("rock-solid", "v1.0.0"),
            ],
        )),
        Box::pin(push_releases(
            &tls,
            "tls",
            "hello-world",
            &[
                ("v0.1.0", "v0.1.0"),
                ("alpha", "v0.1.0"),
                ("stable", "v0.1.0"),
            ],
        )),
        Box::pin(push_module(&token, "token", "token-module", ready_tags)),
        Box::pin(push_module(&token, "token", "two-sources", ready_tags)),
        Box::pin(push_module(&http, "http", "plain-module", ready_tags)),
    ];
    for module in tls_modules {
        let tags: &[(&str, &str)] = if module == "hello-world" {
            &[("main", "main branch"), ("v0.1.0", "release v0.1.0")]
        } else {
            ready_tags
        };
        jobs.push(Box::pin(push_module(&tls, "tls", module, tags)));
    }
    // Sequential per registry would be slow; the registries handle parallel pushes well.
    for result in futures::future::join_all(jobs).await {
        result?;
    }
    Ok(())
}

fn module_object(name: &str, sources: &[&str], extra: Value) -> Value {
    let mut properties = json!({
        "availableSources": sources,
        "weight": 900,
        "stage": "General Availability",
        "releaseChannel": "Alpha",
        "version": "",
    });
    if let (Some(properties), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
        properties.extend(extra.clone());
    }
    json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
        "metadata": {"name": name},
        "properties": properties,
    })
}

async fn create_objects(
    state: &State,
    client: &kube::Client,
    mpo_version: &str,
) -> anyhow::Result<()> {
    let ca = std::fs::read_to_string(&state.ca_file)?;
    let tls = state.registry("tls")?;
    let token = state.registry("token")?;
    let http = state.registry("http")?;
    let user = tls.username.clone().unwrap_or_default();
    let password = tls.password.clone().unwrap_or_default();
    let tls_repo = format!("{}/{}", tls.host, repo_path("tls"));
    let localhost_alias = tls.host.replace("127.0.0.1", "localhost");
    let sources = [
        (
            "test",
            tls_repo.clone(),
            docker_cfg(&[(&tls.host, &user, &password)], true),
            ca.clone(),
            "HTTPS",
        ),
        (
            "token",
            format!("{}/{}", token.host, repo_path("token")),
            docker_cfg(
                &[(
                    &token.host,
                    token.username.as_deref().unwrap_or_default(),
                    token.password.as_deref().unwrap_or_default(),
                )],
                false,
            ),
            ca.clone(),
            "HTTPS",
        ),
        (
            "plain",
            format!("{}/{}", http.host, repo_path("http")),
            String::new(),
            String::new(),
            "HTTP",
        ),
        (
            "bad-creds",
            tls_repo.clone(),
            docker_cfg(&[(&tls.host, &user, "not-the-password")], true),
            ca.clone(),
            "HTTPS",
        ),
        (
            "no-ca",
            tls_repo.clone(),
            docker_cfg(&[(&tls.host, &user, &password)], true),
            String::new(),
            "HTTPS",
        ),
        (
            "wrong-host",
            tls_repo.clone(),
            docker_cfg(&[(&localhost_alias, &user, &password)], true),
            ca.clone(),
            "HTTPS",
        ),
    ];
    let source_api = deckhouse_api(client, "v1alpha1", "ModuleSource", "modulesources");
    for (name, repo, cfg, ca, scheme) in sources {
        let mut registry = json!({"repo": repo, "scheme": scheme});
        if !cfg.is_empty() {
            registry["dockerCfg"] = json!(cfg);
        }
        if !ca.is_empty() {
            registry["ca"] = json!(ca);
        }
        apply(
            &source_api,
            json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
                "metadata": {"name": name},
                "spec": {"registry": registry, "releaseChannel": "Alpha"},
            }),
        )
        .await?;
    }

    let policy_api = deckhouse_api(
        client,
        "v1alpha2",
        "ModuleUpdatePolicy",
        "moduleupdatepolicies",
    );
    apply(
        &policy_api,
        json!({
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy",
            "metadata": {"name": "test-alpha"},
            "spec": {"releaseChannel": "Alpha", "update": {"mode": "Auto"}},
        }),
    )
    .await?;

    let module_api = deckhouse_api(client, "v1alpha1", "Module", "modules");
    let bundle =
        json!({"accessibility": {"editions": {"_default": {"enabledInBundles": ["Default"]}}}});
    let modules = [
        module_object("echo", &["test"], json!({"version": "v1.0.0"})),
        module_object("hello-world", &["test"], json!({"version": "v0.1.0"})),
        module_object(
            "ingress-nginx",
            &[],
            json!({"source": "Embedded", "critical": true}),
        ),
        module_object("disabled-module", &["test"], json!({})),
        module_object("bundle-module", &["test"], bundle),
        module_object("orphan-module", &[], json!({})),
        module_object("two-sources", &["test", "token"], json!({})),
        module_object("lost-source", &["removed-source"], json!({})),
        module_object("missing-tag", &["test"], json!({})),
        module_object("bad-creds-module", &["bad-creds"], json!({})),
        module_object("no-ca-module", &["no-ca"], json!({})),
        module_object("wrong-host-module", &["wrong-host"], json!({})),
        module_object("token-module", &["token"], json!({})),
        module_object("plain-module", &["plain"], json!({})),
    ];
    for module in modules {
        apply(&module_api, module).await?;
    }

    let config_api = deckhouse_api(client, "v1alpha1", "ModuleConfig", "moduleconfigs");
    let configs = [
        ("echo", true),
        ("hello-world", true),
        ("disabled-module", false),
        ("orphan-module", true),
        ("two-sources", true),
        ("lost-source", true),
        ("missing-tag", true),
        ("bad-creds-module", true),
        ("no-ca-module", true),
        ("wrong-host-module", true),
        ("token-module", true),
        ("plain-module", true),
    ];
    // The sources with broken access share the `test` repository, whose catalog lists
    // their modules too (§3.14): their ModuleConfigs choose them (§3.15).
    let chosen = [
        ("bad-creds-module", "bad-creds"),
        ("no-ca-module", "no-ca"),
        ("wrong-host-module", "wrong-host"),
    ];
    for (name, enabled) in configs {
        let mut spec = json!({"enabled": enabled, "version": 1});
        if let Some((_, source)) = chosen.iter().find(|(module, _)| *module == name) {
            spec["source"] = json!(source);
        }
        apply(
            &config_api,
            json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                "metadata": {"name": name},
                "spec": spec,
            }),
        )
        .await?;
    }

    let release_api = deckhouse_api(client, "v1alpha1", "ModuleRelease", "modulereleases");
    for (module, version) in [("echo", "v1.0.0"), ("hello-world", "v0.1.0")] {
        apply(
            &release_api,
            json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleRelease",
                "metadata": {"name": format!("{module}-{version}"), "labels": {"module": module, "source": "test"}},
                "spec": {"moduleName": module, "version": version, "weight": 900},
                "status": {"phase": "Deployed", "message": ""},
            }),
        )
        .await?;
    }

    let mpo_api = deckhouse_api(
        client,
        mpo_version,
        "ModulePullOverride",
        "modulepulloverrides",
    );
    let overrides = [
        ("ghost", "main"),
        ("ingress-nginx", "main"),
        ("disabled-module", "main"),
        ("bundle-module", "main"),
        ("orphan-module", "main"),
        ("two-sources", "main"),
        ("lost-source", "main"),
        ("missing-tag", "no-such-tag"),
        ("bad-creds-module", "main"),
        ("no-ca-module", "main"),
        ("wrong-host-module", "main"),
        ("token-module", "main"),
        ("plain-module", "main"),
    ];
    for (name, tag) in overrides {
        let mut spec = json!({"imageTag": tag, "scanInterval": "15s", "rollback": false});
        if mpo_version == "v1alpha1" {
            // Required on v1alpha1; the controller still resolves the Module's source.
            spec["source"] = json!("test");
        }
        apply(
            &mpo_api,
            json!({
                "apiVersion": format!("deckhouse.io/{mpo_version}"), "kind": "ModulePullOverride",
                "metadata": {"name": name},
                "spec": spec,
            }),
        )
        .await?;
    }
    Ok(())
}
