//! The simulator's registry access, written the way Deckhouse resolves module images
//! (docs/deckhouse-facts.md §4, docs/deckhouse-real.md §3.7-§3.10): credentials from the
//! ModuleSource's dockerCfg (base64 or raw JSON) matched by host:port, its CA (ignored
//! when it does not parse) and scheme (https, then http for private and loopback
//! hosts); digest = sha256 of the manifest body whatever the registry's
//! `Docker-Content-Digest` says, or the linux/amd64 child of an index.

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
    auth: RegistryAuth,
    repo: String,
    host: String,
    /// The ModuleSource's CA, when it parses (docs/deckhouse-real.md §3.10).
    ca: Option<String>,
    /// Schemes to try, in order (docs/deckhouse-real.md §3.8).
    schemes: Vec<&'static str>,
    /// The scheme that answered and the clients for it, after the first request.
    connected: tokio::sync::OnceCell<Connected>,
}

struct Connected {
    scheme: &'static str,
    client: Client,
    http: reqwest::Client,
}

/// ggcr `name.Registry.Scheme` (docs/deckhouse-real.md §3.8): `scheme: HTTP`, RFC1918,
/// loopback, `localhost` and `*.localhost` hosts are tried over https, then http.
fn may_fall_back_to_http(scheme: &str, host: &str) -> bool {
    if scheme.eq_ignore_ascii_case("http") {
        return true;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
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
        let schemes = if may_fall_back_to_http(text("scheme"), &host) {
            vec!["https", "http"]
        } else {
            vec!["https"]
        };
        // cr GetHTTPTransport: system roots plus the PEM; a PEM that does not parse is
        // ignored without a word (docs/deckhouse-real.md §3.10).
        let ca = Some(text("ca"))
            .filter(|ca| !ca.trim().is_empty())
            .filter(|ca| {
                crate::install_crypto();
                reqwest::Certificate::from_pem_bundle(ca.as_bytes())
                    .ok()
                    .filter(|certificates| !certificates.is_empty())
                    .and_then(|certificates| {
                        reqwest::Client::builder()
                            .tls_certs_merge(certificates)
                            .build()
                            .ok()
                    })
                    .is_some()
            })
            .map(str::to_string);
        Ok(ModuleRegistry {
            auth,
            repo,
            host,
            ca,
            schemes,
            connected: tokio::sync::OnceCell::new(),
        })
    }

    fn clients(&self, scheme: &'static str) -> Result<Connected, RegistryFailure> {
        crate::install_crypto();
        let extra_root_certificates = self
            .ca
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            })
            .collect();
        let client = Client::new(ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            read_timeout: Some(Duration::from_secs(20)),
            connect_timeout: Some(Duration::from_secs(5)),
            ..ClientConfig::default()
        });
        let mut http = reqwest::Client::builder()
            .read_timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5));
        if let Some(certificates) = self
            .ca
            .as_deref()
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(pem.as_bytes()).ok())
        {
            http = http.tls_certs_merge(certificates);
        }
        let http = http
            .build()
            .map_err(|error| failure(format!("build registry client: {}", chain(&error))))?;
        Ok(Connected {
            scheme,
            client,
            http,
        })
    }

    /// ggcr's ping (docs/deckhouse-real.md §3.8): the first scheme whose `/v2/` answers
    /// 200 or 401 is used; when none does, the first one (its requests report why).
    async fn connect(&self) -> Result<&Connected, RegistryFailure> {
        self.connected
            .get_or_try_init(|| async {
                for scheme in &self.schemes {
                    let connected = self.clients(scheme)?;
                    let url = format!("{scheme}://{}/v2/", self.host);
                    if let Ok(answer) = connected.http.get(&url).send().await
                        && matches!(answer.status().as_u16(), 200 | 401)
                    {
                        return Ok(connected);
                    }
                }
                self.clients(self.schemes[0])
            })
            .await
    }

    /// GET a manifest; its digest is the body's (ggcr hashes the body and does not
    /// look at `Docker-Content-Digest`, docs/deckhouse-real.md §3.9).
    async fn fetch_manifest(
        &self,
        reference: &Reference,
        accepted: &[&str],
    ) -> Result<Vec<u8>, String> {
        let connected = self.connect().await.map_err(|f| f.0)?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            connected.scheme,
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        let mut bearer: Option<String> = None;
        for attempt in 0..2 {
            let mut request = connected
                .http
                .get(&url)
                .header("Accept", accepted.join(", "));
            request = match (&bearer, &self.auth) {
                (Some(token), _) => request.bearer_auth(token),
                (None, RegistryAuth::Basic(user, password)) => {
                    request.basic_auth(user, Some(password))
                }
                (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
                (None, RegistryAuth::Anonymous) => request,
            };
            let answer = request.send().await.map_err(|error| chain(&error))?;
            let status = answer.status();
            if status.as_u16() == 401 && attempt == 0 {
                // Behind a token service: the client's own login (challenge, token).
                bearer = connected
                    .client
                    .auth(reference, &self.auth, oci_client::RegistryOperation::Pull)
                    .await
                    .map_err(|error| chain(&error))?;
                if bearer.is_some() {
                    continue;
                }
            }
            let body = answer.bytes().await.map_err(|error| chain(&error))?;
            if !status.is_success() {
                return Err(format!(
                    "GET {url}: unexpected status code {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body)
                        .lines()
                        .next()
                        .unwrap_or_default()
                ));
            }
            if let Some(digest) = reference.digest()
                && sha256_digest(&body) != digest
            {
                return Err(format!("GET {url}: the manifest does not match {digest}"));
            }
            return Ok(body.to_vec());
        }
        Err(format!("GET {url}: unauthorized"))
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
        let body = self
            .fetch_manifest(&reference, &accepted)
            .await
            .map_err(|error| failure(format!("fetch the image digest {reference}: {error}")))?;
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
        let reference = self.reference(module, digest)?;
        let body = self
            .fetch_manifest(&reference, &[OCI_MANIFEST, DOCKER_MANIFEST])
            .await
            .map_err(|error| failure(format!("download {reference}: {error}")))?;
        let client = &self.connect().await?.client;
        client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
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
            client
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
        if let Some(schema) = tree.get("openapi/config-values.yaml") {
            let text = String::from_utf8_lossy(schema);
            serde_saphyr::from_str::<Value>(&text)
                .map_err(|error| failure(format!("parse openapi/config-values.yaml: {error}")))?;
        }
        Ok(())
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
    // cr readAuthConfig: base64, else the JSON itself (docs/deckhouse-real.md §3.7).
    let decoded = match engine.decode(docker_cfg.trim()) {
        Ok(decoded) => decoded,
        Err(_) if docker_cfg.trim_start().starts_with('{') => docker_cfg.as_bytes().to_vec(),
        Err(error) => return Err(failure(format!("decode dockerCfg: {error}"))),
    };
    let config: Value = serde_json::from_slice(&decoded)
        .map_err(|error| failure(format!("parse dockerCfg: {error}")))?;
    // Keys are parsed as URLs and only host:port compared (§3.7).
    let key_host = |key: &str| {
        let bare = key.split_once("://").map_or(key, |(_, rest)| rest);
        bare.split('/').next().unwrap_or(bare).to_string()
    };
    let entry = config
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| {
            auths
                .iter()
                .find(|(key, _)| key_host(key) == host)
                .map(|(_, entry)| entry)
        })
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
