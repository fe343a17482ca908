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
        Self::build(source, None)
    }

    /// As the controller builds its client for one module: credential errors name
    /// `<repo>/<module>` and read as cr's (docs/deckhouse-real.md §3.7).
    pub fn from_source_for(source: &Value, module: &str) -> Result<Self, RegistryFailure> {
        Self::build(source, Some(module)).map_err(|error| {
            failure(format!(
                "build registry client: get registry client: read auth config: {error}"
            ))
        })
    }

    fn build(source: &Value, module: Option<&str>) -> Result<Self, RegistryFailure> {
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
        let label = match module {
            Some(module) => format!("{repo}/{module}"),
            None => repo.clone(),
        };
        let auth = credentials(text("dockerCfg"), &label, &host)?;
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

    /// The module catalog: the tags of the repository itself (docs/deckhouse-real.md
    /// §3.14), read with the source's credentials.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryFailure> {
        let connected = self.connect().await?;
        let text = format!("{}:latest", self.repo);
        let reference: Reference = text
            .parse()
            .map_err(|error| failure(format!("parse reference {text}: {error}")))?;
        let tags = connected
            .client
            .list_tags(&reference, &self.auth, None, None)
            .await
            .map_err(|error| failure(format!("list tags of {}: {}", self.repo, chain(&error))))?;
        Ok(tags.tags)
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

    /// The digest the controller compares with `status.imageDigest`: the linux/amd64
    /// child of an index (svc-A), as before.
    pub async fn module_digest(&self, module: &str, tag: &str) -> Result<String, RegistryFailure> {
        self.module_digest_by(module, tag, DigestRule::Child).await
    }

    /// The tag's digest by `rule` (docs/deckhouse-real.md §3.1: svc-A takes the
    /// linux/amd64 child of an index, svc-B with the `remote.Get` cr the index digest).
    /// Errors read as the ggcr-backed service's (`get manifest: …`, §3.7).
    pub async fn module_digest_by(
        &self,
        module: &str,
        tag: &str,
        rule: DigestRule,
    ) -> Result<String, RegistryFailure> {
        let reference = self.reference(module, tag)?;
        let accepted = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
        let body = self
            .fetch_manifest(&reference, &accepted)
            .await
            .map_err(|error| failure(format!("get manifest: {reference}: {error}")))?;
        let manifest: Value = serde_json::from_slice(&body)
            .map_err(|error| failure(format!("get manifest: parse {reference}: {error}")))?;
        if rule == DigestRule::Index {
            return Ok(sha256_digest(&body));
        }
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
                .ok_or_else(|| {
                    failure(format!(
                        "get manifest: {reference}: no child with platform linux/amd64 in index"
                    ))
                });
        }
        Ok(sha256_digest(&body))
    }

    /// Pulls the image, applies its layers in order and validates the result.
    pub async fn download_and_validate(
        &self,
        module: &str,
        digest: &str,
    ) -> Result<(), RegistryFailure> {
        let tree = self.download(module, digest).await?;
        validate(&tree, None).map_err(failure)
    }

    /// Pulls `module` by tag or digest (an index by its linux/amd64 child) and returns
    /// its files with the layers applied in order.
    pub async fn download(
        &self,
        module: &str,
        tag_or_digest: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, RegistryFailure> {
        let reference = self.reference(module, tag_or_digest)?;
        let accepted = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
        let body = self
            .fetch_manifest(&reference, &accepted)
            .await
            .map_err(|error| failure(format!("download {reference}: {error}")))?;
        let client = &self.connect().await?.client;
        client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let mut manifest: Value = serde_json::from_slice(&body)
            .map_err(|error| failure(format!("parse manifest: {error}")))?;
        if let Some(child) = manifest
            .get("manifests")
            .and_then(Value::as_array)
            .and_then(|children| {
                children.iter().find(|child| {
                    child
                        .pointer("/platform/architecture")
                        .and_then(Value::as_str)
                        == Some("amd64")
                })
            })
            .and_then(|child| child.get("digest").and_then(Value::as_str))
            .map(str::to_string)
        {
            let child_ref = self.reference(module, &child)?;
            let body = self
                .fetch_manifest(&child_ref, &[OCI_MANIFEST, DOCKER_MANIFEST])
                .await
                .map_err(|error| failure(format!("download {child_ref}: {error}")))?;
            manifest = serde_json::from_slice(&body)
                .map_err(|error| failure(format!("parse manifest: {error}")))?;
        }
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
        Ok(tree)
    }
}

/// Which digest of a multi-arch tag the controller records (docs/deckhouse-real.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestRule {
    /// The linux/amd64 child (svc-A).
    Child,
    /// The index itself, as `crane digest` (svc-B with the `remote.Get` cr).
    Index,
}

/// The module definition and its values, as Deckhouse validates a downloaded module
/// (docs/deckhouse-real.md §3.11): the files must be there, the values schema must
/// parse, and `values` (the running values, else the ModuleConfig's `settings`) must
/// satisfy it. The error is the text after `Validation error: `.
pub fn validate(tree: &BTreeMap<String, Vec<u8>>, values: Option<&Value>) -> Result<(), String> {
    if tree.is_empty() {
        return Err("the image has no files".into());
    }
    let Some(schema) = tree.get("openapi/config-values.yaml") else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(schema);
    let schema: Value = serde_saphyr::from_str(&text)
        .map_err(|error| format!("parse openapi/config-values.yaml: {error}"))?;
    match values {
        Some(values) => check_values(&schema, values, ""),
        None => Ok(()),
    }
}

/// A small OpenAPI v3 subset (type, properties, required, enum, additionalProperties,
/// minimum, maximum, items), with go-openapi's wording (`<path> in body must be …`).
fn check_values(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let at = if path.is_empty() { "settings" } else { path };
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = actual == kind || (kind == "number" && actual == "integer");
        if !fits {
            return Err(format!("{at} in body must be of type {kind}: \"{actual}\""));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!(
            "{at} in body should be one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            return Err(format!(
                "{at} in body should be greater than or equal to {min}"
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            return Err(format!(
                "{at} in body should be less than or equal to {max}"
            ));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{} in body is required", join(path, key)));
            }
        }
        for (key, child) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check_values(sub, child, &join(path, key))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!(
                        "{} in body is a forbidden property",
                        join(path, key)
                    ));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, child) in array.iter().enumerate() {
            check_values(items, child, &format!("{at}.{index}"))?;
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
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
