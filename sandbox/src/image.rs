//! Building and pushing OCI images with real gzip'd tar layers, for seeding and tests.

use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::state::{Registry, State};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// One image layer: files to add and paths to delete (OCI whiteouts).
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub files: Vec<(String, Vec<u8>)>,
    pub whiteouts: Vec<String>,
}

impl Layer {
    pub fn with_files<I, P, C>(files: I) -> Self
    where
        I: IntoIterator<Item = (P, C)>,
        P: Into<String>,
        C: Into<Vec<u8>>,
    {
        Layer {
            files: files
                .into_iter()
                .map(|(path, content)| (path.into(), content.into()))
                .collect(),
            whiteouts: Vec::new(),
        }
    }

    /// The uncompressed tar and its gzip'd form.
    fn archive(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut entries: Vec<(String, &[u8])> = self
            .files
            .iter()
            .map(|(path, content)| (path.clone(), content.as_slice()))
            .collect();
        for path in &self.whiteouts {
            let (dir, name) = match path.rsplit_once('/') {
                Some((dir, name)) => (format!("{dir}/"), name),
                None => (String::new(), path.as_str()),
            };
            entries.push((format!("{dir}.wh.{name}"), b"".as_slice()));
        }
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append_data(&mut header, &path, content)?;
        }
        let tar = builder.into_inner()?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        std::io::Write::write_all(&mut gz, &tar)?;
        Ok((tar.clone(), gz.finish()?))
    }
}

/// A pushed manifest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

/// Pushes to one sandbox registry with its credentials and the sandbox CA.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    pub host: String,
}

impl Pusher {
    pub fn new(state: &State, registry_name: &str) -> anyhow::Result<Self> {
        let registry = state.registry(registry_name)?;
        let ca = std::fs::read(&state.ca_file)
            .with_context(|| format!("reading {}", state.ca_file.display()))?;
        Ok(Self::for_registry(registry, ca))
    }

    pub fn for_registry(registry: &Registry, ca_pem: Vec<u8>) -> Self {
        let protocol = if registry.scheme.eq_ignore_ascii_case("http") {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        crate::install_crypto();
        let client = Client::new(ClientConfig {
            protocol,
            extra_root_certificates: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: ca_pem,
            }],
            // Generous: the registry answers a large blob's upload only after hashing
            // it, which on a loaded 2-core machine can take well over 30 s.
            read_timeout: Some(Duration::from_secs(300)),
            connect_timeout: Some(Duration::from_secs(5)),
            ..ClientConfig::default()
        });
        let auth = match (&registry.username, &registry.password) {
            (Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            _ => RegistryAuth::Anonymous,
        };
        Pusher {
            client,
            auth,
            host: registry.host.clone(),
        }
    }

    pub fn reference(&self, repository: &str, tag: &str) -> anyhow::Result<Reference> {
        let text = format!("{}/{repository}:{tag}", self.host);
        text.parse()
            .with_context(|| format!("bad reference {text}"))
    }

    pub async fn push_blob(&self, reference: &Reference, data: Vec<u8>) -> anyhow::Result<String> {
        let digest = sha256_digest(&data);
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        self.client
            .push_blob(reference, data, &digest)
            .await
            .with_context(|| format!("pushing blob {digest} to {reference}"))?;
        Ok(digest)
    }

    /// Pushes an image manifest with the given layers under `repository:tag`.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        layers: &[Layer],
        architecture: &str,
    ) -> anyhow::Result<Pushed> {
        let mut built = Vec::with_capacity(layers.len());
        for layer in layers {
            let (tar, gz) = layer.archive()?;
            built.push((gz, sha256_digest(&tar)));
        }
        self.push_built_image(repository, tag, built, architecture)
            .await
    }

    /// Pushes an image whose layers are already built: `(gzip'd tar, sha256 of the tar)`
    /// each, for layers too large to build twice (the benchmark's big image).
    pub async fn push_built_image(
        &self,
        repository: &str,
        tag: &str,
        layers: Vec<(Vec<u8>, String)>,
        architecture: &str,
    ) -> anyhow::Result<Pushed> {
        let reference = self.reference(repository, tag)?;
        let layer_descriptors: Vec<_> = layers
            .iter()
            .map(|(gz, _)| {
                json!({"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(gz), "size": gz.len()})
            })
            .collect();
        let diff_ids: Vec<&str> = layers.iter().map(|(_, diff_id)| diff_id.as_str()).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
            "layers": layer_descriptors,
        }))?;
        let mut blobs: Vec<&[u8]> = layers.iter().map(|(gz, _)| gz.as_slice()).collect();
        blobs.push(&config);
        self.push_blobs_then_manifest(&reference, &blobs, manifest)
            .await
    }

    /// Pushes a one-layer image whose config carries `created` and `labels`, and whose
    /// manifest carries `annotations` (OCI provenance: source, revision, created, version).
    pub async fn push_annotated_image(
        &self,
        repository: &str,
        tag: &str,
        layer: &Layer,
        created: &str,
        labels: &serde_json::Value,
        annotations: &serde_json::Value,
    ) -> anyhow::Result<Pushed> {
        let reference = self.reference(repository, tag)?;
        let (tar, gz) = layer.archive()?;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
        }))?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(&gz), "size": gz.len()}],
            "annotations": annotations,
        }))?;
        self.push_blobs_then_manifest(&reference, &[&gz, &config], manifest)
            .await
    }

    /// Pushes an image's blobs (layers and config), then the manifest that names them.
    /// Two pushes of one blob into one repository at the same moment (the seeder pushes
    /// images side by side) can leave the registry briefly without the blob's link, and
    /// the manifest is refused with `MANIFEST_BLOB_UNKNOWN`: then all is pushed again.
    async fn push_blobs_then_manifest(
        &self,
        reference: &Reference,
        blobs: &[&[u8]],
        manifest: Vec<u8>,
    ) -> anyhow::Result<Pushed> {
        again_if_blob_unknown(|| async {
            for blob in blobs {
                self.push_blob(reference, blob.to_vec()).await?;
            }
            self.push_manifest(reference, manifest.clone(), OCI_MANIFEST)
                .await
        })
        .await
    }

    /// Pushes an OCI index over already pushed per-platform manifests.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        children: &[(Pushed, &str)],
    ) -> anyhow::Result<Pushed> {
        let reference = self.reference(repository, tag)?;
        let manifests: Vec<_> = children
            .iter()
            .map(|(child, arch)| {
                json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": child.digest,
                    "size": child.size,
                    "platform": {"architecture": arch, "os": "linux"},
                })
            })
            .collect();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))?;
        self.push_manifest(&reference, index, OCI_INDEX).await
    }

    pub async fn push_manifest(
        &self,
        reference: &Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> anyhow::Result<Pushed> {
        let digest = sha256_digest(&body);
        let size = body.len();
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        self.client
            .push_manifest_raw(reference, body, media_type.parse()?)
            .await
            .with_context(|| format!("pushing manifest {reference}"))?;
        Ok(Pushed { digest, size })
    }

    /// Tags an existing manifest (by digest) with another tag.
    pub async fn retag(&self, repository: &str, digest: &str, tag: &str) -> anyhow::Result<()> {
        let target = self.reference(repository, tag)?;
        self.retag_reference(repository, digest, &target).await
    }

    /// Pushes an existing manifest (by digest) to `target` (a reference built from
    /// parts, so that tests can try tags the reference grammar refuses).
    pub async fn retag_reference(
        &self,
        repository: &str,
        digest: &str,
        target: &Reference,
    ) -> anyhow::Result<()> {
        let source: Reference = format!("{}/{repository}@{digest}", self.host).parse()?;
        let (body, _) = self
            .client
            .pull_manifest_raw(&source, &self.auth, &[OCI_MANIFEST, OCI_INDEX])
            .await
            .with_context(|| format!("pulling {source}"))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&body)?
            .get("mediaType")
            .and_then(|value| value.as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        self.push_manifest(target, body.to_vec(), &media_type)
            .await
            .map(|_| ())
    }
}

/// Base64 of a docker config.json with one `auths` entry per (host, user, password).
pub fn docker_cfg(entries: &[(&str, &str, &str)], use_auth_field: bool) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut auths = serde_json::Map::new();
    for (host, user, password) in entries {
        let entry = if use_auth_field {
            json!({"auth": engine.encode(format!("{user}:{password}"))})
        } else {
            json!({"username": user, "password": password})
        };
        auths.insert((*host).to_string(), entry);
    }
    engine.encode(serde_json::to_vec(&json!({ "auths": auths })).unwrap_or_default())
}

/// Files of a module image as Deckhouse lays it out (docs/deckhouse-facts.md §4).
pub fn module_files(
    module: &str,
    version: &str,
    app_images: &[(&str, &str)],
    note: &str,
) -> Vec<(String, Vec<u8>)> {
    let digests: serde_json::Map<String, serde_json::Value> = app_images
        .iter()
        .map(|(name, digest)| ((*name).to_string(), json!(digest)))
        .collect();
    let files = [
        (
            "module.yaml".to_string(),
            format!(
                "name: {module}\nweight: 900\nstage: General Availability\ndescriptions:\n  en: {module} module for the kubectl-mpo sandbox\n"
            ),
        ),
        (
            "Chart.yaml".to_string(),
            format!("apiVersion: v2\nname: {module}\nversion: 0.1.0\n"),
        ),
        (
            "values.yaml".to_string(),
            format!("{module}:\n  replicas: 1\n  note: \"{note}\"\n"),
        ),
        (
            "version.json".to_string(),
            format!("{{\"version\":\"{version}\"}}\n"),
        ),
        (
            "images_digests.json".to_string(),
            format!("{}\n", serde_json::Value::Object(digests)),
        ),
        (
            "openapi/config-values.yaml".to_string(),
            "type: object\nproperties:\n  replicas:\n    type: integer\n    default: 1\n"
                .to_string(),
        ),
        (
            "templates/deployment.yaml".to_string(),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {module}\n  annotations:\n    build-note: \"{note}\"\nspec:\n  replicas: {{{{ .Values.{module}.replicas }}}}\n"
            ),
        ),
        (
            "docs/README.md".to_string(),
            format!("# {module}\n\nBuild {version}: {note}\n"),
        ),
    ];
    files
        .into_iter()
        .map(|(path, content)| (path, content.into_bytes()))
        .collect()
}

pub fn release_files(module: &str, version: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "version.json".to_string(),
            format!("{{\"version\":\"{version}\"}}\n").into_bytes(),
        ),
        (
            "changelog.yaml".to_string(),
            format!("features:\n  - {module} {version}\n").into_bytes(),
        ),
        (
            "module.yaml".to_string(),
            format!("name: {module}\nweight: 900\n").into_bytes(),
        ),
        (
            "openapi/config-values.yaml".to_string(),
            b"type: object\n".to_vec(),
        ),
    ]
}

/// Pushes a small application image (one layer) by digest only; returns its digest.
pub async fn push_app_image(
    pusher: &Pusher,
    repository: &str,
    name: &str,
    revision: &str,
) -> anyhow::Result<String> {
    let layer = Layer::with_files([(
        format!("app/{name}"),
        format!("{name} binary, revision {revision}\n").into_bytes(),
    )]);
    // Distribution needs a tag or digest to push to; push by a temporary tag and keep it:
    // Deckhouse's own registries carry such long hash tags for app images as well.
    let tag = format!("{:x}", Sha256::digest(format!("{name}-{revision}")));
    let pushed = pusher
        .push_image(repository, &tag, &[layer], "amd64")
        .await?;
    if pushed.digest.len() < 10 {
        bail!("unexpected digest {}", pushed.digest);
    }
    Ok(pushed.digest)
}

/// Runs `push` again (up to four times in all, a little later each time) while the
/// registry refuses its manifest with `MANIFEST_BLOB_UNKNOWN`: see
/// `Pusher::push_blobs_then_manifest`.
async fn again_if_blob_unknown<F, Fut>(mut push: F) -> anyhow::Result<Pushed>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Pushed>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match push().await {
            Err(error) if attempt < 4 && format!("{error:#}").contains("BLOB_UNKNOWN") => {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manifest_refused_for_an_unknown_blob_is_pushed_again() {
        let calls = std::cell::Cell::new(0);
        let pushed = again_if_blob_unknown(|| {
            calls.set(calls.get() + 1);
            let call = calls.get();
            async move {
                if call < 3 {
                    anyhow::bail!(
                        "pushing manifest: MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
                    )
                }
                Ok(Pushed {
                    digest: "sha256:a".into(),
                    size: 1,
                })
            }
        })
        .await
        .expect("pushed on the third try");
        assert_eq!((pushed.digest.as_str(), calls.get()), ("sha256:a", 3));

        calls.set(0);
        let refused = again_if_blob_unknown(|| {
            calls.set(calls.get() + 1);
            async { anyhow::bail!("pushing manifest: DENIED") }
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(calls.get(), 1, "other errors are not retried");
    }
}
