//! The simulator's registry access, written the way Deckhouse resolves module images
//! (docs/deckhouse-facts.md §4): credentials from the ModuleSource's dockerCfg matched by host,
//! its CA and scheme; digest = sha256 of the manifest body, or the linux/amd64 child of
//! an index.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use base64::Engine;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::image::{OCI_INDEX, OCI_MANIFEST, sha256_digest};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug)]
pub struct RegistryFailure(pub String);

impl std::fmt::Display for RegistryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn failure(text: impl Into<String>) -> RegistryFailure {
    RegistryFailure(text.into())
}

/// An error with its causes, as Go's wrapped errors read (`a: b: c`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

pub struct ModuleRegistry {
    client: Client,
    auth: RegistryAuth,
    repo: String,
}

impl ModuleRegistry {
    /// `spec` is the ModuleSource object (its `spec.registry` is read).
    pub fn from_source(source: &Value) -> Result<Self, RegistryFailure> {
        let registry = source
            .pointer("/spec/registry")
            .ok_or_else(|| failure("the ModuleSource has no spec.registry"))?;
        let text = |key: &str| {
            registry
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let repo = text("repo").trim_end_matches('/').to_string();
        let host = repo.split('/').next().unwrap_or_default().to_string();
        let auth = credentials(text("dockerCfg"), &repo, &host)?;
        let protocol = if text("scheme").eq_ignore_ascii_case("http") {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let ca = text("ca");
        let extra_root_certificates = if ca.is_empty() {
            Vec::new()
        } else {
            vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: ca.as_bytes().to_vec(),
            }]
        };
        crate::install_crypto();
        let client = Client::new(ClientConfig {
            protocol,
            extra_root_certificates,
            read_timeout: Some(Duration::from_secs(20)),
            connect_timeout: Some(Duration::from_secs(5)),
            ..ClientConfig::default()
        });
        Ok(ModuleRegistry { client, auth, repo })
    }

    fn reference(&self, module: &str, tag_or_digest: &str) -> Result<Reference, RegistryFailure> {
        let separator = if tag_or_digest.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        let text = format!("{}/{module}{separator}{tag_or_digest}", self.repo);
        text.parse()
            .map_err(|error| failure(format!("parse reference {text}: {error}")))
    }

    pub async fn module_digest(&self, module: &str, tag: &str) -> Result<String, RegistryFailure> {
        let reference = self.reference(module, tag)?;
        let accepted = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
        let (body, _) = self
            .client
            .pull_manifest_raw(&reference, &self.auth, &accepted)
            .await
            .map_err(|error| {
                failure(format!(
                    "fetch the image digest {reference}: {}",
                    chain(&error)
                ))
            })?;
        let manifest: Value = serde_json::from_slice(&body)
            .map_err(|error| failure(format!("parse the manifest of {reference}: {error}")))?;
        if let Some(children) = manifest.get("manifests").and_then(Value::as_array) {
            return children
                .iter()
                .find(|child| {
                    child.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                        && child
                            .pointer("/platform/architecture")
                            .and_then(Value::as_str)
                            == Some("amd64")
                })
                .and_then(|child| child.get("digest").and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| failure(format!("{reference}: no linux/amd64 image in the index")));
        }
        Ok(sha256_digest(&body))
    }

    /// Pulls the image, applies its layers in order and validates the result.
    pub async fn download_and_validate(
        &self,
        module: &str,
        digest: &str,
    ) -> Result<(), RegistryFailure> {
        let tree = self.download_files(module, digest).await?;
        if let Some(schema) = tree.get("openapi/config-values.yaml") {
            let text = String::from_utf8_lossy(schema);
            serde_saphyr::from_str::<Value>(&text)
                .map_err(|error| failure(format!("parse openapi/config-values.yaml: {error}")))?;
        }
        Ok(())
    }

    /// The image's files: its layers applied in order.
    pub async fn download_files(
        &self,
        module: &str,
        digest: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, RegistryFailure> {
        let reference = self.reference(module, digest)?;
        let (body, _) = self
            .client
            .pull_manifest_raw(&reference, &self.auth, &[OCI_MANIFEST, DOCKER_MANIFEST])
            .await
            .map_err(|error| failure(format!("download {reference}: {}", chain(&error))))?;
        let manifest: Value = serde_json::from_slice(&body)
            .map_err(|error| failure(format!("parse manifest: {error}")))?;
        let mut tree: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for layer in manifest
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let layer_digest = layer
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut blob = Vec::new();
            self.client
                .pull_blob(&reference, layer_digest, &mut blob)
                .await
                .map_err(|error| {
                    failure(format!("download layer {layer_digest}: {}", chain(&error)))
                })?;
            apply_layer(&mut tree, &blob)
                .map_err(|error| failure(format!("unpack layer {layer_digest}: {error}")))?;
        }
        if tree.is_empty() {
            return Err(failure("the image has no files"));
        }
        Ok(tree)
    }
}

fn apply_layer(tree: &mut BTreeMap<String, Vec<u8>>, gz: &[u8]) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name.to_string()),
            None => (String::new(), path.clone()),
        };
        if let Some(deleted) = name.strip_prefix(".wh.") {
            let target = format!("{dir}{deleted}");
            tree.retain(|existing, _| {
                existing != &target && !existing.starts_with(&format!("{target}/"))
            });
            continue;
        }
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            tree.insert(path, content);
        }
    }
    Ok(())
}

fn credentials(docker_cfg: &str, repo: &str, host: &str) -> Result<RegistryAuth, RegistryFailure> {
    if docker_cfg.trim().is_empty() {
        return Ok(RegistryAuth::Anonymous);
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = engine
        .decode(docker_cfg.trim())
        .map_err(|error| failure(format!("decode dockerCfg: {error}")))?;
    let config: Value = serde_json::from_slice(&decoded)
        .map_err(|error| failure(format!("parse dockerCfg: {error}")))?;
    let entry = config
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| auths.get(host))
        .ok_or_else(|| failure(format!("\"{repo}\" credentials not found in the dockerCfg")))?;
    let field = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if !field("auth").is_empty() {
        let pair = engine
            .decode(field("auth"))
            .map_err(|error| failure(format!("decode dockerCfg auth: {error}")))?;
        let pair = String::from_utf8_lossy(&pair).to_string();
        let (user, password) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
        return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    if !field("registrytoken").is_empty() {
        return Ok(RegistryAuth::Bearer(field("registrytoken")));
    }
    if !field("username").is_empty() {
        return Ok(RegistryAuth::Basic(field("username"), field("password")));
    }
    Ok(RegistryAuth::Anonymous)
}
