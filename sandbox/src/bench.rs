//! Benchmark fixtures (`make bench`): many small modules with Ready overrides, and one
//! big module image in two builds for the streaming figures (`diff --content`,
//! `registry files|cat`).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::image::{Layer, Pusher, module_files};
use crate::seed::{deckhouse_api, repo_path};
use crate::state::State;

const MANAGER: &str = "mpo-sandbox-bench";

struct Apis {
    modules: Api<DynamicObject>,
    configs: Api<DynamicObject>,
    overrides: Api<DynamicObject>,
}

impl Apis {
    async fn new(state: &State) -> anyhow::Result<Self> {
        let client = crate::client(state).await?;
        Ok(Apis {
            modules: deckhouse_api(&client, "v1alpha1", "Module", "modules"),
            configs: deckhouse_api(&client, "v1alpha1", "ModuleConfig", "moduleconfigs"),
            overrides: deckhouse_api(
                &client,
                "v1alpha2",
                "ModulePullOverride",
                "modulepulloverrides",
            ),
        })
    }

    /// A Module of source `test` with an enabled ModuleConfig.
    async fn module(&self, name: &str) -> anyhow::Result<()> {
        let apply = PatchParams::apply(MANAGER).force();
        self.modules
            .patch(name, &apply, &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module", "metadata": {"name": name},
                "properties": {"availableSources": ["test"], "weight": 900, "version": ""},
            })))
            .await?;
        self.configs
            .patch(name, &apply, &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name},
                "spec": {"enabled": true, "version": 1},
            })))
            .await?;
        Ok(())
    }

    async fn create_override(&self, name: &str, scan_interval: &str) -> anyhow::Result<()> {
        let apply = PatchParams::apply(MANAGER).force();
        self.overrides
            .patch(name, &apply, &Patch::Apply(json!({
                "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride", "metadata": {"name": name},
                "spec": {"imageTag": "dev", "scanInterval": scan_interval, "rollback": false},
            })))
            .await?;
        Ok(())
    }

    /// Waits until the module manager has picked source `test` for each module and
    /// reflected its enabled ModuleConfig, so overrides (and `create`'s checks) meet a
    /// settled module.
    async fn settled(&self, names: &[&String]) -> anyhow::Result<()> {
        let wanted: HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(300 + names.len() as u64 / 5);
        loop {
            let list = self.modules.list(&ListParams::default()).await?;
            let settled = list
                .items
                .iter()
                .filter(|m| {
                    m.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| wanted.contains(n))
                })
                .filter(|m| {
                    let source = m
                        .data
                        .pointer("/properties/source")
                        .and_then(|v| v.as_str());
                    let enabled = m
                        .data
                        .pointer("/status/conditions")
                        .and_then(|c| c.as_array())
                        .and_then(|c| c.iter().find(|c| c["type"] == "EnabledByModuleConfig"))
                        .and_then(|c| c["status"].as_str());
                    source == Some("test") && enabled == Some("True")
                })
                .count();
            if settled >= wanted.len() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the module manager settled {settled} of {} modules",
                    wanted.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn names(api: &Api<DynamicObject>, prefix: &str) -> anyhow::Result<HashSet<String>> {
        Ok(api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|object| object.metadata.name)
            .filter(|name| name.starts_with(prefix))
            .collect())
    }
}

/// `count` modules `<prefix>-NNN` of source `test`, each with an image (tag `dev`) in the
/// `tls` and the `token` registry (the first `pushed` through the API, see `lay_out`); with `with_overrides`, a Ready override each (returns
/// once the simulator reports them all Ready). What an earlier, smaller run made is kept,
/// so growing from 200 to 5000 only adds the difference.
pub async fn modules(
    state: &State,
    prefix: &str,
    count: usize,
    pushed: usize,
    with_overrides: bool,
) -> anyhow::Result<()> {
    let apis = Apis::new(state).await?;
    let prefix_dash = format!("{prefix}-");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:03}")).collect();
    let existing = Apis::names(&apis.modules, &prefix_dash).await?;
    let new_modules: Vec<&String> = names.iter().filter(|n| !existing.contains(*n)).collect();

    // The first `pushed` modules get images of their own through the registry API; the
    // rest share one image, laid out in the registry's storage directly (pushing
    // thousands of images takes longer than the benchmark on a small machine). A
    // manifest GET costs the registry the same either way.
    let first: HashSet<&String> = names.iter().take(pushed).collect();
    let (pushed, laid_out): (Vec<&String>, Vec<&String>) =
        new_modules.iter().partition(|name| first.contains(**name));
    let shared: HashSet<&String> = names.iter().skip(first.len()).collect();
    let mut shared_digest = None;
    if !shared.is_empty() {
        for registry in ["tls", "token"] {
            shared_digest = Some(lay_out(state, registry, &laid_out).await?);
        }
    }
    let pushes = pushed
        .iter()
        .flat_map(|name| ["tls", "token"].map(|registry| ((*name).clone(), registry)));
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(pushes)
        .map(|(name, registry)| async move {
            let pusher = Pusher::new(state, registry)?;
            let repository = format!("{}/{name}", repo_path(registry));
            let files = module_files(&name, "dev", &[], "bench build");
            pusher
                .push_image(&repository, "dev", &[Layer::with_files(files)], "amd64")
                .await?;
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let apis = &apis;
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(&new_modules)
        .map(|name| apis.module(name))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    if !with_overrides {
        if !new_modules.is_empty() {
            apis.settled(&new_modules).await?;
        }
        println!("{count} {prefix} modules without overrides");
        return Ok(());
    }

    let existing = Apis::names(&apis.overrides, &prefix_dash).await?;
    let new_overrides: Vec<&String> = names.iter().filter(|n| !existing.contains(*n)).collect();
    if !new_overrides.is_empty() {
        apis.settled(&new_overrides).await?;
    }
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(&new_overrides)
        .map(|name| apis.create_override(name, "10m"))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    // The overrides of laid-out modules get the verdict the controller would write
    // (Ready on the shared image) at once; the simulator confirms them in its own time,
    // which for thousands of overrides on a small machine takes longer than the
    // benchmark itself.
    if let Some(digest) = &shared_digest {
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)?
            .to_string();
        let status =
            json!({"status": {"message": "Ready", "imageDigest": digest, "updatedAt": now}});
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(&new_overrides)
            .filter(|name| std::future::ready(shared.contains(*name)))
            .map(|name| {
                let status = &status;
                async move {
                    apis.overrides
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                        .await?;
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    }

    let wanted: HashSet<&String> = names.iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300.max(count as u64 / 8));
    for round in 1u64.. {
        let list = apis.overrides.list(&ListParams::default()).await?;
        let message = |o: &DynamicObject| {
            o.data
                .pointer("/status/message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let ours: Vec<&DynamicObject> = list
            .items
            .iter()
            .filter(|o| o.metadata.name.as_ref().is_some_and(|n| wanted.contains(n)))
            .collect();
        let ready = ours.iter().filter(|o| message(o) == "Ready").count();
        if ready >= count {
            println!("{count} {prefix} overrides Ready");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{prefix} overrides did not all become Ready ({ready} of {count})");
        }
        // A registry that failed under the seeding load would be retried only after the
        // scan interval: an annotation change makes the controller retry now.
        if round % 10 == 0 {
            for object in ours
                .iter()
                .filter(|o| !matches!(message(o).as_str(), "" | "Ready"))
            {
                let name = object.metadata.name.clone().unwrap_or_default();
                let nudge = json!({"metadata": {"annotations": {"mpo-sandbox/bench-retry": round.to_string()}}});
                apis.overrides
                    .patch(&name, &PatchParams::default(), &Patch::Merge(nudge))
                    .await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    unreachable!("the loop returns or fails")
}

/// Repositories `<repo>/<name>` whose tag `dev` is one shared module image, written into
/// the registry's filesystem storage the way distribution lays out a push (layer and
/// manifest links per repository, blobs shared). The image itself is pushed once through
/// the API, to `<repo>/bench-shared`.
async fn lay_out(state: &State, registry: &str, names: &[&String]) -> anyhow::Result<String> {
    let pusher = Pusher::new(state, registry)?;
    let repo = repo_path(registry);
    let files = module_files("bench-shared", "dev", &[], "bench build");
    let manifest_digest = pusher
        .push_image(
            &format!("{repo}/bench-shared"),
            "dev",
            &[Layer::with_files(files)],
            "amd64",
        )
        .await?
        .digest;
    let root = state
        .dir
        .join("data")
        .join(format!("registry-{registry}"))
        .join("docker/registry/v2");
    let hex = |digest: &str| digest.trim_start_matches("sha256:").to_string();
    let manifest_hex = hex(&manifest_digest);
    let manifest_path = root
        .join("blobs/sha256")
        .join(&manifest_hex[..2])
        .join(&manifest_hex)
        .join("data");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    let mut blobs: Vec<String> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|layer| layer["digest"].as_str().map(str::to_string))
        .collect();
    blobs.extend(manifest["config"]["digest"].as_str().map(str::to_string));
    let link = |path: std::path::PathBuf, digest: &str| -> anyhow::Result<()> {
        std::fs::create_dir_all(&path)?;
        std::fs::write(path.join("link"), digest)?;
        Ok(())
    };
    for name in names {
        let dir = root.join("repositories").join(repo).join(name.as_str());
        for blob in &blobs {
            link(dir.join("_layers/sha256").join(hex(blob)), blob)?;
        }
        let manifests = dir.join("_manifests");
        link(
            manifests.join("revisions/sha256").join(&manifest_hex),
            &manifest_digest,
        )?;
        link(
            manifests.join("tags/dev/index/sha256").join(&manifest_hex),
            &manifest_digest,
        )?;
        link(manifests.join("tags/dev/current"), &manifest_digest)?;
    }
    Ok(manifest_digest)
}

/// xorshift64*: fast reproducible filler, incompressible for gzip.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Self {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut noise = Noise::new(seed);
        let mut out = vec![0u8; len];
        for chunk in out.chunks_mut(8) {
            let word = noise.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    /// YAML-ish text of about `len` bytes; lines whose number is `variant` modulo 97
    /// differ between variants (a few changed lines per file).
    fn text(seed: u64, len: usize, variant: u64) -> Vec<u8> {
        let mut noise = Noise::new(seed);
        let mut out = String::with_capacity(len + 64);
        let mut line = 0u64;
        while out.len() < len {
            let value = noise.next();
            let value = if variant != 0 && line % 97 == variant % 97 {
                value ^ variant
            } else {
                value
            };
            out.push_str(&format!("key-{line:06}: {value:016x}\n"));
            line += 1;
        }
        out.into_bytes()
    }
}

/// Writes a layer's tar straight into gzip, hashing the tar on the way (its diff_id).
struct LayerWriter {
    builder: tar::Builder<HashingWriter<GzEncoder<Vec<u8>>>>,
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl LayerWriter {
    /// `compress`: false writes gzip's stored blocks, which is what deflate makes of
    /// random bytes anyway, without the work.
    fn new(compress: bool) -> Self {
        let level = if compress {
            Compression::fast()
        } else {
            Compression::none()
        };
        LayerWriter {
            builder: tar::Builder::new(HashingWriter {
                inner: GzEncoder::new(Vec::new(), level),
                hash: Sha256::new(),
            }),
        }
    }

    fn add(&mut self, path: &str, content: &[u8]) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.builder.append_data(&mut header, path, content)?;
        Ok(())
    }

    /// The gzip'd layer and the sha256 of its tar.
    fn finish(self) -> anyhow::Result<(Vec<u8>, String)> {
        let hashing = self.builder.into_inner()?;
        let diff_id = format!("sha256:{:x}", hashing.hash.finalize());
        Ok((hashing.inner.finish()?, diff_id))
    }
}

/// The layers of one build of the big module image, about `size_mib` MiB: six large
/// binaries (the same in every build), 1200 mid-size binary files and 600 generated
/// text files (every tenth differs between builds), and the module's own files.
fn big_layers(module: &str, size_mib: usize, build: u64) -> anyhow::Result<Vec<(Vec<u8>, String)>> {
    let total = size_mib << 20;
    let (binaries, assets) = (total * 40 / 100, total * 45 / 100);
    let text = total - binaries - assets;
    let changed = |i: u64| if i.is_multiple_of(10) { build } else { 0 };

    let mut layer = LayerWriter::new(false);
    for i in 0..6u64 {
        layer.add(&format!("bin/tool-{i}"), &Noise::bytes(i + 1, binaries / 6))?;
    }
    let mut layers = vec![layer.finish()?];

    let mut layer = LayerWriter::new(false);
    for i in 0..1200u64 {
        let seed = (1000 + i) ^ (changed(i) << 32);
        layer.add(
            &format!("assets/{i:04}.bin"),
            &Noise::bytes(seed, assets / 1200),
        )?;
    }
    layers.push(layer.finish()?);

    let mut layer = LayerWriter::new(true);
    let note = format!("bench build {build}");
    for (path, content) in module_files(module, "dev", &[], &note) {
        layer.add(&path, &content)?;
    }
    for i in 0..600u64 {
        let content = Noise::text(5000 + i, text / 600, changed(i));
        layer.add(&format!("templates/generated/t-{i:03}.yaml"), &content)?;
    }
    layers.push(layer.finish()?);
    Ok(layers)
}

/// The big module `module`: build 1 pushed as `v1` and `dev`, a Ready override on it
/// (scan interval 24h, so the controller keeps build 1), then build 2 pushed as `v2`
/// and `dev`. Prints `{"repository", "deployed", "current"}` as JSON.
pub async fn big_image(state: &State, module: &str, size_mib: usize) -> anyhow::Result<()> {
    let apis = Apis::new(state).await?;
    let pusher = Pusher::new(state, "tls")?;
    let repository = format!("{}/{module}", repo_path("tls"));

    let first = big_layers(module, size_mib, 1)?;
    let deployed = pusher
        .push_built_image(&repository, "v1", first, "amd64")
        .await?
        .digest;
    pusher.retag(&repository, &deployed, "dev").await?;
    apis.module(module).await?;
    apis.settled(&[&module.to_string()]).await?;
    // An override from an earlier run points at an older build: start afresh.
    if apis.overrides.get_opt(module).await?.is_some() {
        apis.overrides.delete(module, &Default::default()).await?;
        let mut gone = false;
        for _ in 0..600 {
            if apis.overrides.get_opt(module).await?.is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::ensure!(gone, "the old override {module} was not removed");
    }
    apis.create_override(module, "24h").await?;
    let mut ready = false;
    for _ in 0..600 {
        let object = apis.overrides.get(module).await?;
        let status = |key: &str| {
            object
                .data
                .pointer(&format!("/status/{key}"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if status("message").as_deref() == Some("Ready")
            && status("imageDigest").as_deref() == Some(deployed.as_str())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::ensure!(
        ready,
        "the override {module} did not become Ready on {deployed}"
    );

    let second = big_layers(module, size_mib, 2)?;
    let current = pusher
        .push_built_image(&repository, "v2", second, "amd64")
        .await?
        .digest;
    pusher.retag(&repository, &current, "dev").await?;
    println!(
        "{}",
        json!({
            "repository": format!("{}/{repository}", pusher.host),
            "deployed": deployed,
            "current": current,
        })
    );
    Ok(())
}
