//! The registry operations a command needs, for one [`RegistryTarget`]: the digest the
//! controller would deploy (docs/deckhouse-facts.md §4, docs/deckhouse-real.md §3.1),
//! tags, and image pulls flattened into a file tree. Every request is bounded by the
//! client's timeout; idempotent reads are retried on 429/503 within it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::credentials::RegistryTarget;
use super::error::{RegistryError, RegistryErrorKind, classify, is_busy};
use super::image::{self, ImageLimits, ImageTree, ReadPlan};
use super::reference;
use super::tokens::Tokens;
use crate::error::joined_causes as chain;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A manifest body as the tool uses it: parsed JSON and the sha256 of the bytes.
fn parse_manifest(what: &str, body: Vec<u8>) -> Result<(Value, String), RegistryError> {
    let digest = sha256(&body);
    let manifest: Value = serde_json::from_slice(&body).map_err(|_| {
        RegistryError::new(
            RegistryErrorKind::Malformed,
            format!("{what}: the answer is not a JSON manifest"),
        )
    })?;
    if !manifest.is_object() {
        return Err(RegistryError::new(
            RegistryErrorKind::Malformed,
            format!("{what}: the answer is not a manifest"),
        ));
    }
    Ok((manifest, digest))
}

/// The result of the digest rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDigest {
    /// What the controller compares with `status.imageDigest`.
    pub digest: String,
    /// Set when the tag is an index: the index's own digest (what `crane digest` prints).
    pub index_digest: Option<String>,
}

/// The OCI annotation for an image's creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// What a tag points to, without its layers (`registry tags`, provenance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The digest the controller would deploy (the linux/amd64 child of an index).
    pub digest: String,
    pub index_digest: Option<String>,
    /// The image config's `created` (else the `org.opencontainers.image.created` annotation).
    pub created: Option<String>,
    /// Compressed bytes of the config and the layers.
    pub size: u64,
    /// Manifest annotations over config labels.
    pub annotations: std::collections::BTreeMap<String, String>,
}

fn collect_strings(map: Option<&Value>, into: &mut std::collections::BTreeMap<String, String>) {
    if let Some(map) = map.and_then(Value::as_object) {
        for (key, value) in map {
            if let Some(value) = value.as_str() {
                into.insert(key.clone(), value.to_string());
            }
        }
    }
}

/// Options shared by every registry client of one command run.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Bound on each registry request.
    pub timeout: Duration,
}

/// Something a lookup noticed that the user should hear about (printed by the command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Shown only at `-v`.
    pub verbose: bool,
    pub text: String,
}

/// Which digest of the tag the cluster runs (docs/deckhouse-real.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DigestMatch {
    /// The tag is a single image and the cluster runs it.
    Image,
    /// The tag is an index and the cluster runs its linux/amd64 image.
    Amd64Child,
    /// The tag is an index and the cluster runs the index digest itself.
    Index,
}

impl DigestMatch {
    /// How a human reads it, after "in sync".
    pub fn describe(self) -> &'static str {
        match self {
            DigestMatch::Image => "the tag's image",
            DigestMatch::Amd64Child => "the index's linux/amd64 image",
            DigestMatch::Index => "the index digest itself",
        }
    }
}

impl ResolvedDigest {
    /// Whether `cluster_digest` is this tag's build: the image, the linux/amd64 child of
    /// an index, or the index itself (controllers differ, docs/deckhouse-real.md §3.1).
    pub fn matches(&self, cluster_digest: &str) -> Option<DigestMatch> {
        match &self.index_digest {
            None if cluster_digest == self.digest => Some(DigestMatch::Image),
            Some(_) if cluster_digest == self.digest => Some(DigestMatch::Amd64Child),
            Some(index) if cluster_digest == index => Some(DigestMatch::Index),
            _ => None,
        }
    }
}

/// A registry client for one [`RegistryTarget`].
pub struct SourceRegistry {
    /// The OCI client for the scheme the registry answers on, chosen at first use.
    client: tokio::sync::OnceCell<Client>,
    /// The client for the declared scheme, built up front (building one takes a while:
    /// not inside a lookup's time limit); taken when the probe confirms that scheme.
    prebuilt: std::sync::Mutex<Option<Client>>,
    /// Schemes to try, in order (docs/deckhouse-real.md §3.8).
    schemes: Vec<&'static str>,
    /// The ModuleSource's own scheme, used when no scheme's `/v2/` answers 200 or 401.
    declared: &'static str,
    host: String,
    /// The CA, when it parses.
    ca: Option<String>,
    auth: RegistryAuth,
    tokens: Tokens,
    repo: String,
    options: RegistryOptions,
    notices: std::sync::Mutex<Vec<Notice>>,
    /// Manifest reads in flight, by reference: a second read of the same reference
    /// while the first runs (the digest lookup beside the image preflight) waits for
    /// the first instead of asking again. Finished reads are not kept.
    in_flight: std::sync::Mutex<std::collections::HashMap<String, Arc<ManifestRead>>>,
}

type ManifestRead = tokio::sync::OnceCell<Result<(Value, String), RegistryError>>;

/// ggcr `name.Registry.Scheme` (docs/deckhouse-real.md §3.8): `scheme: HTTP` (any
/// case), RFC1918, loopback, `localhost` and `*.localhost` hosts are tried over https
/// first, then over http; other hosts over https only.
pub(super) fn may_fall_back_to_http(scheme: Option<&str>, host: &str) -> bool {
    if scheme.is_some_and(|s| s.trim().eq_ignore_ascii_case("http")) {
        return true;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Whether `pem` holds certificates a TLS client accepts as roots: at least one, and
/// every block parses (one bad block would make the whole client unusable).
fn usable_ca(pem: &str) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match certificate.map(|der| roots.add(der)) {
            Ok(Ok(())) => count += 1,
            _ => return false,
        }
    }
    count > 0
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 §10.2.3).
pub(super) fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let span = when.duration_since(now);
    Some(Duration::try_from(span).unwrap_or(Duration::ZERO))
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

impl SourceRegistry {
    /// A client for `target`, every request bounded by `options.timeout`. Fails only on
    /// local problems: a repo that is not `host[:port]/path`, unusable credentials.
    pub fn new(target: &RegistryTarget, options: &RegistryOptions) -> Result<Self, RegistryError> {
        let repo = target.repo.trim().trim_end_matches('/').to_string();
        if repo.is_empty() || repo.contains("://") || !repo.contains('/') {
            return Err(RegistryError::new(
                RegistryErrorKind::Config,
                format!("the registry repo {repo:?} is not of the form host[:port]/path"),
            ));
        }
        let auth = target.auth()?;
        let host = repo.split('/').next().unwrap_or_default().to_string();
        let mut notices = Vec::new();
        let ca = match target.ca.as_deref().filter(|pem| !pem.trim().is_empty()) {
            Some(pem) if usable_ca(pem) => Some(pem.to_string()),
            Some(_) if target.name == super::credentials::FALLBACK_NAME => {
                return Err(RegistryError::new(
                    RegistryErrorKind::Config,
                    "--registry-ca holds no usable PEM certificate",
                ));
            }
            Some(_) => {
                // cr GetHTTPTransport appends the PEM to the system roots and ignores
                // one that does not parse (docs/deckhouse-real.md §3.10).
                notices.push(Notice {
                    verbose: false,
                    text: format!(
                        "ModuleSource {}: spec.registry.ca is not a usable PEM certificate; ignored, as Deckhouse ignores it (only the system's trusted CAs are used)",
                        target.name
                    ),
                });
                None
            }
            None => None,
        };
        let schemes =
            if !target.https_only && may_fall_back_to_http(target.scheme.as_deref(), &host) {
                vec!["https", "http"]
            } else {
                vec!["https"]
            };
        let tokens = Tokens::new(&host, ca.as_deref(), options.timeout);
        let declared = match target.scheme.as_deref().map(str::trim) {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => "http",
            _ => "https",
        };
        let mut registry = SourceRegistry {
            client: tokio::sync::OnceCell::new(),
            prebuilt: std::sync::Mutex::new(None),
            schemes,
            declared,
            host,
            ca,
            auth,
            tokens,
            repo,
            options: options.clone(),
            notices: std::sync::Mutex::new(notices),
            in_flight: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        let first = registry.schemes[0];
        registry.prebuilt = std::sync::Mutex::new(Some(registry.oci_client(first)));
        if registry.schemes.len() > 1 {
            // The scheme probe's client, built here for the same reason.
            let _ = registry.tokens.http();
        }
        Ok(registry)
    }

    /// What this client noticed so far (each once), for the command to print.
    pub fn take_notices(&self) -> Vec<Notice> {
        self.notices
            .lock()
            .map(|mut notices| std::mem::take(&mut *notices))
            .unwrap_or_default()
    }

    fn notice(&self, verbose: bool, text: String) {
        if let Ok(mut notices) = self.notices.lock()
            && !notices.iter().any(|n| n.text == text)
        {
            notices.push(Notice { verbose, text });
        }
    }

    fn oci_client(&self, scheme: &str) -> Client {
        let extra_root_certificates = self
            .ca
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            })
            .collect();
        Client::new(ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            // No read timeout on the client: every call is bounded here (`bounded`), and
            // a blob's chunks by `feed_layer`, which counts only the time spent waiting
            // for the registry. reqwest's read timeout also counts the time the layer's
            // decoder takes between two chunks, so a slow machine would fail a healthy
            // download.
            read_timeout: None,
            connect_timeout: Some(self.options.timeout.min(Duration::from_secs(10))),
            max_concurrent_download: 4,
            ..ClientConfig::default()
        })
    }

    /// The OCI client, once the scheme is known: like ggcr's ping, the first scheme
    /// whose `/v2/` answers 200 or 401; when none does, the ModuleSource's own scheme
    /// (whose requests then say why).
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let scheme = self.choose_scheme().await;
                self.tokens.set_scheme(scheme);
                let prebuilt = self
                    .prebuilt
                    .lock()
                    .ok()
                    .and_then(|mut prebuilt| prebuilt.take());
                match prebuilt {
                    Some(client) if scheme == self.schemes[0] => client,
                    _ => self.oci_client(scheme),
                }
            })
            .await
    }

    async fn choose_scheme(&self) -> &'static str {
        if self.schemes.len() == 1 {
            return self.schemes[0];
        }
        let Some(http) = self.tokens.http() else {
            return self.declared;
        };
        let mut failures = Vec::new();
        for scheme in &self.schemes {
            let url = format!("{scheme}://{}/v2/", self.host);
            match tokio::time::timeout(self.options.timeout, http.get(&url).send()).await {
                Ok(Ok(answer)) if matches!(answer.status().as_u16(), 200 | 401) => {
                    // The same answer ggcr's ping reads the challenge from.
                    self.tokens.set_challenge(super::auth::challenge_of(
                        answer.status().as_u16(),
                        answer
                            .headers()
                            .get(reqwest::header::WWW_AUTHENTICATE)
                            .and_then(|value| value.to_str().ok()),
                    ));
                    if *scheme == "http" {
                        self.notice(
                            true,
                            format!(
                                "registry {}: {}; using plain http, as Deckhouse does for private and loopback hosts (docs/deckhouse-real.md §3.8)",
                                self.host,
                                failures.join("; ")
                            ),
                        );
                    }
                    return scheme;
                }
                Ok(Ok(answer)) => failures.push(format!("{url} answered {}", answer.status())),
                Ok(Err(err)) => failures.push(format!("{url}: {}", chain(&err))),
                Err(_) => failures.push(format!("{url}: no answer")),
            }
        }
        self.declared
    }

    /// A client from a repo and a ModuleSource-style dockerCfg.
    #[cfg(test)]
    pub fn from_parts(
        repo: &str,
        docker_cfg: Option<&str>,
        ca: Option<&str>,
        scheme: Option<&str>,
        options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        // main() chooses the TLS provider for the process; tests do it here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self::new(
            &RegistryTarget::with_docker_cfg(repo, docker_cfg, ca, scheme),
            options,
        )
    }

    /// Announces that `module` will be looked up in this command run (`status`), so
    /// that behind a token service the first lookup fetches tokens for all announced
    /// modules, several repositories per token request.
    pub fn plan_lookup(&self, module: &str) {
        if let Ok(reference) = self.reference(module, "latest") {
            self.tokens.plan(reference);
        }
    }

    fn reference(&self, repository: &str, tag_or_digest: &str) -> Result<Reference, RegistryError> {
        reference::build(&self.repo, repository, tag_or_digest)
    }

    /// `host[:port]/path` of the ModuleSource.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// `<repo>/<module>:<tag>` (or `@digest`).
    pub fn image_name(&self, module: &str, tag_or_digest: &str) -> String {
        reference::image_name(&self.repo, module, tag_or_digest)
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.classify(what, &err)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> RegistryError {
        RegistryError::timed_out(what, self.options.timeout)
    }

    /// A failed call in the tool's terms. A connection that timed out inside the HTTP
    /// client reads as the lookup's own limit ran out, so one table never shows two
    /// texts for the same cause.
    fn classify(&self, what: &str, err: &OciDistributionError) -> RegistryError {
        let err = classify(what, err);
        if err.kind == RegistryErrorKind::Timeout {
            return self.timed_out(what);
        }
        err
    }

    /// Like `bounded`, for idempotent reads: a registry that answers 429 (rate limit) or
    /// 503 is asked again after a short back-off (0.5 s, 1 s, 2 s...), as long as the
    /// whole lookup stays within the timeout. (The client does not expose Retry-After.)
    async fn bounded_retrying<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let mut delay = Duration::from_millis(500);
        // -v=6: each registry request with its outcome and time (references carry no
        // credentials).
        let log = |outcome: &str, started: std::time::Instant| {
            crate::output::trace(
                crate::output::verbosity::REQUESTS,
                format!(
                    "registry {what}: {outcome} in {} ms",
                    started.elapsed().as_millis()
                ),
            );
        };
        loop {
            let started = std::time::Instant::now();
            let result = tokio::time::timeout_at(deadline, call()).await;
            match result {
                Ok(Err(ref err))
                    if is_busy(err) && tokio::time::Instant::now() + delay < deadline =>
                {
                    log("busy, asking again", started);
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(Ok(value)) => {
                    log("ok", started);
                    return Ok(value);
                }
                Ok(Err(err)) => {
                    let err = self.classify(what, &err);
                    let prefix = format!("{what}: ");
                    let detail = err.message.strip_prefix(&prefix).unwrap_or(&err.message);
                    log(&format!("failed: {detail}"), started);
                    return Err(err);
                }
                Err(_) => {
                    log("no answer", started);
                    return Err(self.timed_out(what));
                }
            }
        }
    }

    /// The raw manifest (or index) of `<repo>/<repository>:<tag>` and the sha256 of its
    /// body; one request for concurrent reads of the same reference.
    async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<(Value, String), RegistryError> {
        let key = format!("{repository}:{tag}");
        let read = {
            let Ok(mut in_flight) = self.in_flight.lock() else {
                return self.manifest_once(repository, tag).await;
            };
            Arc::clone(in_flight.entry(key.clone()).or_default())
        };
        let result = read
            .get_or_init(|| self.manifest_once(repository, tag))
            .await
            .clone();
        if let Ok(mut in_flight) = self.in_flight.lock()
            && in_flight
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &read))
        {
            in_flight.remove(&key);
        }
        result
    }

    async fn manifest_once(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<(Value, String), RegistryError> {
        let reference = self.reference(repository, tag)?;
        let what = format!("GET manifest {reference}");
        // -v=6: each registry request with its outcome and time (references carry no
        // credentials).
        let started = std::time::Instant::now();
        let result = self.manifest_of(reference, &what).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(err) => format!("{:?}", err.kind),
        };
        crate::output::trace(
            crate::output::verbosity::REQUESTS,
            format!(
                "registry {what}: {outcome} in {} ms",
                started.elapsed().as_millis()
            ),
        );
        result
    }

    async fn manifest_of(
        &self,
        reference: Reference,
        what: &str,
    ) -> Result<(Value, String), RegistryError> {
        let what = what.to_string();
        // One deadline for the whole read, the scheme probe included.
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let Ok(client) = tokio::time::timeout_at(deadline, self.client()).await else {
            return Err(self.timed_out(&what));
        };
        self.tokens.prepare(client, &self.auth, &reference).await;
        // A token from a batch goes with a direct request; a repository the token
        // service did not grant in the batch gets a token of its own through the OCI
        // client below.
        if let Some(token) = self.tokens.batch_token(&reference) {
            match self
                .manifest_directly(client, &reference, &what, deadline, Some(&token))
                .await
            {
                Err(err)
                    if err.kind == RegistryErrorKind::Unauthorized
                        && self.tokens.take_batched(&reference) => {}
                Err(err) => return Err(err),
                Ok(body) => return parse_manifest(&what, body),
            }
        }
        let pull = || async {
            match tokio::time::timeout_at(
                deadline,
                client.pull_manifest_raw(&reference, &self.auth, &ACCEPTED),
            )
            .await
            {
                Ok(result) => Ok(result),
                Err(_) => Err(self.timed_out(&what)),
            }
        };
        let result = pull().await?;
        let body = match result {
            Ok((body, _)) => body.to_vec(),
            // oci-client refuses a manifest whose Docker-Content-Digest header disagrees
            // with its body, and does not expose Retry-After: read it directly.
            Err(err) if is_busy(&err) || matches!(err, OciDistributionError::DigestError(_)) => {
                self.manifest_directly(client, &reference, &what, deadline, None)
                    .await?
            }
            Err(err) => return Err(self.classify(&what, &err)),
        };
        parse_manifest(&what, body)
    }

    /// GET a manifest with the plain HTTP client: the digest is the body's whatever
    /// the `Docker-Content-Digest` header says (ggcr hashes the body, docs/deckhouse-real.md
    /// §3.9; a disagreeing header is a warning), and a 429 or 503 is asked again after
    /// the `Retry-After` it carries (else 0.5 s, 1 s, 2 s...), within `deadline`.
    /// `token`: a token already fetched for the repository (from a batch).
    async fn manifest_directly(
        &self,
        client: &Client,
        reference: &Reference,
        what: &str,
        deadline: tokio::time::Instant,
        token: Option<&str>,
    ) -> Result<Vec<u8>, RegistryError> {
        let Some(http) = self.tokens.http() else {
            return Err(RegistryError::new(
                RegistryErrorKind::Config,
                format!("{what}: cannot build an HTTP client"),
            ));
        };
        let timed_out = || self.timed_out(what);
        // A token for the repository when the registry has a token service (the client
        // logs in as it would); Basic credentials and anonymous access go as they are.
        let token = match token {
            Some(token) => Some(token.to_string()),
            None => match tokio::time::timeout_at(
                deadline,
                client.auth(reference, &self.auth, RegistryOperation::Pull),
            )
            .await
            {
                Ok(Ok(token)) => token,
                Ok(Err(_)) => None,
                Err(_) => return Err(timed_out()),
            },
        };
        let scheme = self.tokens.scheme();
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{}",
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut request = http
                .get(&url)
                .header(reqwest::header::ACCEPT, ACCEPTED.join(", "));
            request = match (&token, &self.auth) {
                (Some(token), _) => request.bearer_auth(token),
                (None, RegistryAuth::Basic(user, password)) => {
                    request.basic_auth(user, Some(password))
                }
                (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
                (None, RegistryAuth::Anonymous) => request,
            };
            let answer = match tokio::time::timeout_at(deadline, request.send()).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(err)) => {
                    let kind = if err.is_connect() {
                        RegistryErrorKind::Unreachable
                    } else {
                        RegistryErrorKind::Other
                    };
                    return Err(RegistryError::new(kind, format!("{what}: {}", chain(&err))));
                }
                Err(_) => return Err(timed_out()),
            };
            let status = answer.status().as_u16();
            let header = |name: &str| {
                answer
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string)
            };
            if matches!(status, 429 | 503) {
                let advised = header("retry-after")
                    .and_then(|value| retry_after(&value, jiff::Timestamp::now()));
                let wait = advised.unwrap_or(backoff);
                let now = tokio::time::Instant::now();
                if now + wait >= deadline {
                    let message = match advised {
                        Some(advised) => format!(
                            "{what}: HTTP {status}: the registry asks to come back in {} (Retry-After), past the registry timeout ({})",
                            crate::output::humanize(advised),
                            crate::output::humanize(self.options.timeout)
                        ),
                        None => format!(
                            "{what}: HTTP {status}: the registry stayed busy for the registry timeout ({})",
                            crate::output::humanize(self.options.timeout)
                        ),
                    };
                    return Err(RegistryError::new(RegistryErrorKind::Other, message));
                }
                if let Some(advised) = advised {
                    self.notice(
                        true,
                        format!(
                            "{what}: HTTP {status}; asking again in {} as its Retry-After says",
                            crate::output::humanize(advised)
                        ),
                    );
                }
                tokio::time::sleep(wait).await;
                backoff *= 2;
                continue;
            }
            let claimed = header("docker-content-digest");
            let body = match tokio::time::timeout_at(deadline, answer.bytes()).await {
                Ok(Ok(body)) => body,
                Ok(Err(err)) => {
                    return Err(RegistryError::new(
                        RegistryErrorKind::Other,
                        format!("{what}: {}", chain(&err)),
                    ));
                }
                Err(_) => return Err(timed_out()),
            };
            if !(200..300).contains(&status) {
                // Read as the OCI client reads an error answer, so both paths give the
                // same text for the same answer.
                let url = url.clone();
                let err = match (status, serde_json::from_slice::<OciEnvelope>(&body)) {
                    (401, _) => OciDistributionError::UnauthorizedError { url },
                    (400..500, Ok(envelope)) => {
                        OciDistributionError::RegistryError { envelope, url }
                    }
                    _ => OciDistributionError::ServerError {
                        code: status,
                        url,
                        message: String::from_utf8_lossy(&body).chars().take(200).collect(),
                    },
                };
                return Err(self.classify(what, &err));
            }
            let actual = sha256(&body);
            if let Some(pinned) = reference.digest()
                && pinned != actual
            {
                return Err(RegistryError::new(
                    RegistryErrorKind::Malformed,
                    format!("{what}: the manifest's content hashes to {actual}, not {pinned}"),
                ));
            }
            if let Some(claimed) = claimed.filter(|claimed| *claimed != actual) {
                self.notice(
                    false,
                    format!(
                        "{}: the registry's Docker-Content-Digest header says {}, but the manifest it sent hashes to {actual}; using {actual}, as Deckhouse does (it hashes the body)",
                        reference,
                        crate::output::inline(&claimed)
                    ),
                );
            }
            return Ok(body.to_vec());
        }
    }

    /// The digest the Deckhouse controller would deploy for `<repo>/<module>:<tag>`:
    /// sha256 of the manifest body, or the linux/amd64 child of an index.
    pub async fn module_digest(
        &self,
        module: &str,
        tag: &str,
    ) -> Result<ResolvedDigest, RegistryError> {
        let (manifest, digest) = self.manifest(module, tag).await?;
        match amd64_child(&manifest) {
            None => Ok(ResolvedDigest {
                digest,
                index_digest: None,
            }),
            Some(Ok(child)) => Ok(ResolvedDigest {
                digest: child,
                index_digest: Some(digest),
            }),
            Some(Err(())) => Err(RegistryError::new(
                RegistryErrorKind::NotFound,
                format!(
                    "{} is an index without a linux/amd64 image",
                    self.image_name(module, tag)
                ),
            )),
        }
    }

    /// All tags of `<repo>/<repository>` (`""`: the repo itself, i.e. the module catalog).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let reference = self.reference(repository, "latest")?;
        let client = self.client().await;
        self.tokens.prepare(client, &self.auth, &reference).await;
        let what = format!("list tags of {}", reference.repository());
        let mut all = Vec::new();
        let mut last: Option<String> = None;
        const PAGE: usize = 1000;
        loop {
            let page = self
                .bounded_retrying(&what, || {
                    client.list_tags(&reference, &self.auth, Some(PAGE), last.as_deref())
                })
                .await?;
            let count = page.tags.len();
            last = page.tags.last().cloned();
            all.extend(page.tags);
            if count < PAGE || last.is_none() || all.len() > 1_000_000 {
                break;
            }
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// What a tag points to, without its layers: the digest the controller would deploy,
    /// the image config's `created`, the compressed size (config and layers), and the
    /// OCI annotations of the manifest (index first, then the image) over the config's
    /// labels (provenance: `org.opencontainers.image.source`, `.revision`...).
    pub async fn image_info(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<ImageInfo, RegistryError> {
        let (mut manifest, digest) = self.manifest(repository, tag).await?;
        let mut info = ImageInfo {
            digest: digest.clone(),
            ..Default::default()
        };
        if let Some(child) = amd64_child(&manifest) {
            let child = child.map_err(|()| {
                RegistryError::new(
                    RegistryErrorKind::NotFound,
                    format!(
                        "{} is an index without a linux/amd64 image",
                        self.image_name(repository, tag)
                    ),
                )
            })?;
            collect_strings(manifest.get("annotations"), &mut info.annotations);
            info.index_digest = Some(digest);
            (manifest, info.digest) = self.manifest(repository, &child).await?;
        }
        let mut annotations = std::collections::BTreeMap::new();
        collect_strings(manifest.get("annotations"), &mut annotations);
        info.size = manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(|layers| {
                layers
                    .iter()
                    .filter_map(|l| l.get("size").and_then(Value::as_u64))
                    .sum::<u64>()
            })
            .unwrap_or(0);
        let config = manifest.get("config");
        info.size += config
            .and_then(|c| c.get("size"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(config_digest) = config.and_then(|c| c.get("digest")).and_then(Value::as_str)
            && let Some(config) = self.small_blob(repository, config_digest).await?
        {
            info.created = config
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_string);
            collect_strings(config.pointer("/config/Labels"), &mut info.annotations);
        }
        info.annotations.extend(annotations);
        if info.created.is_none() {
            info.created = info.annotations.get(ANNOTATION_CREATED).cloned();
        }
        Ok(info)
    }

    /// A JSON blob of at most 1 MiB (an image config); `None` when it is larger or not JSON.
    async fn small_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Value>, RegistryError> {
        const CAP: usize = 1 << 20;
        let reference = self.reference(repository, digest)?;
        let what = format!("GET blob {digest} of {reference}");
        let client = self.client().await;
        self.tokens.lend(client, &reference).await;
        let stream = self
            .bounded(&what, client.pull_blob_stream(&reference, digest))
            .await?;
        let mut body = Vec::new();
        let mut chunks = stream.stream;
        let read = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|err| {
                    RegistryError::new(RegistryErrorKind::Other, format!("{what}: {}", chain(&err)))
                })?;
                body.extend_from_slice(&chunk);
                if body.len() > CAP {
                    return Ok(false);
                }
            }
            Ok::<bool, RegistryError>(true)
        };
        match tokio::time::timeout(self.options.timeout, read).await {
            Ok(Ok(true)) => Ok(serde_json::from_slice(&body).ok()),
            Ok(Ok(false)) => Ok(None),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(self.timed_out(&what)),
        }
    }

    /// Pulls `<repo>/<repository>:<tag|digest>` (the linux/amd64 image of an index) and
    /// applies its layers in order, with whiteouts. Layers are streamed: each is checked
    /// against its declared size and digest while it is decompressed and read, and only
    /// the files `plan` keeps stay in memory. The whole read is bounded by
    /// `limits.timeout`.
    pub async fn image_tree(
        &self,
        repository: &str,
        tag_or_digest: &str,
        limits: &ImageLimits,
        plan: &ReadPlan,
    ) -> Result<ImageTree, RegistryError> {
        let read = self.read_image(repository, tag_or_digest, limits, plan);
        match tokio::time::timeout(limits.timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(RegistryError::new(
                RegistryErrorKind::Timeout,
                format!(
                    "reading {} took longer than {:?}; raise the limit with --pull-timeout",
                    self.image_name(repository, tag_or_digest),
                    limits.timeout
                ),
            )),
        }
    }

    async fn read_image(
        &self,
        repository: &str,
        tag_or_digest: &str,
        limits: &ImageLimits,
        plan: &ReadPlan,
    ) -> Result<ImageTree, RegistryError> {
        let (mut manifest, mut digest) = self.manifest(repository, tag_or_digest).await?;
        if let Some(child) = amd64_child(&manifest) {
            let child = child.map_err(|()| {
                RegistryError::new(
                    RegistryErrorKind::NotFound,
                    "the index has no linux/amd64 image",
                )
            })?;
            (manifest, digest) = self.manifest(repository, &child).await?;
        }
        let reference = self.reference(repository, &digest)?;
        let layers = image::layer_descriptors(&manifest, limits).map_err(|message| {
            RegistryError::new(
                RegistryErrorKind::Malformed,
                format!("{reference}: {message}"),
            )
        })?;
        self.tokens.lend(self.client().await, &reference).await;
        let plan = std::sync::Arc::new(plan.clone());
        let mut tree = ImageTree::new(digest);
        for layer in layers {
            let delta = self
                .read_layer(&reference, &layer, tree.counts(), limits, &plan)
                .await?;
            tree.apply(delta);
        }
        Ok(tree)
    }

    /// Streams one layer blob: the download (size and digest checks) runs here, the
    /// decompression and tar reading on a blocking thread fed through a small channel,
    /// so at most a few chunks of the blob are in memory. A layer is applied only once
    /// its bytes are known to match its digest.
    async fn read_layer(
        &self,
        reference: &Reference,
        layer: &image::LayerRef,
        before: image::ReadCounts,
        limits: &ImageLimits,
        plan: &std::sync::Arc<ReadPlan>,
    ) -> Result<image::LayerDelta, RegistryError> {
        let what = format!("GET blob {} of {reference}", layer.digest);
        let stream = self
            .bounded(
                &what,
                self.client()
                    .await
                    .pull_blob_stream(reference, layer.digest.as_str()),
            )
            .await?;
        let mismatch = |message: String| {
            RegistryError::new(RegistryErrorKind::Malformed, format!("{what}: {message}"))
        };
        if let Some(served) = stream.content_length
            && served != layer.size
        {
            return Err(mismatch(format!(
                "the registry serves {served} bytes for a layer the manifest declares as {} bytes; refusing it",
                layer.size
            )));
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let decode = {
            let (media_type, name) = (layer.media_type.clone(), layer.digest.clone());
            let (limits, plan) = (limits.clone(), plan.clone());
            tokio::task::spawn_blocking(move || {
                image::read_layer(
                    crate::chunks::ChannelReader::new(receiver),
                    &media_type,
                    &name,
                    before,
                    &limits,
                    &plan,
                )
            })
        };
        let feed = feed_layer(
            stream.stream,
            sender,
            layer,
            self.options.timeout,
            &mismatch,
        );
        tokio::pin!(feed, decode);
        let image_error = |err: image::ImageError| match err {
            image::ImageError::Limit(message) => {
                RegistryError::new(RegistryErrorKind::Limit, message)
            }
            image::ImageError::Malformed(message) => mismatch(message),
        };
        let joined = |result: Result<
            Result<image::LayerDelta, image::ImageError>,
            tokio::task::JoinError,
        >| {
            result
                .map_err(|err| mismatch(format!("reading the layer failed: {err}")))?
                .map_err(image_error)
        };
        tokio::select! {
            fed = &mut feed => {
                // The download decides first: bytes that do not match the digest make any
                // decoding error beside the point.
                fed?;
                joined((&mut decode).await)
            }
            decoded = &mut decode => match joined(decoded) {
                // A cap stops the download at once.
                Err(err) if err.kind == RegistryErrorKind::Limit => Err(err),
                // A finished archive still needs the rest of the blob for the digest,
                // and a broken one may be broken because its bytes are not the
                // digest's (bounded by the declared size, itself capped).
                delta => {
                    feed.await?;
                    delta
                }
            },
        }
    }
}

/// Reads a blob stream to its end: checks its size against the manifest while it
/// arrives and its digest at the end, and hands the chunks to the decoder (while it
/// still wants them).
async fn feed_layer<S, B>(
    mut stream: S,
    sender: tokio::sync::mpsc::Sender<B>,
    layer: &image::LayerRef,
    chunk_timeout: Duration,
    mismatch: &impl Fn(String) -> RegistryError,
) -> Result<(), RegistryError>
where
    S: futures::Stream<Item = Result<B, std::io::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut decoder_open = true;
    loop {
        let Ok(next) = tokio::time::timeout(chunk_timeout, stream.next()).await else {
            return Err(RegistryError::new(
                RegistryErrorKind::Timeout,
                mismatch(format!(
                    "no data from the registry for {}s after {received} of {} bytes",
                    chunk_timeout.as_secs(),
                    layer.size
                ))
                .message,
            ));
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // The client checks the digest too, and says so as a stream error at the end.
            Err(_)
                if received == layer.size
                    && format!("sha256:{:x}", hasher.clone().finalize()) != layer.digest =>
            {
                break;
            }
            Err(err) => {
                let message = mismatch(format!("reading the layer: {}", chain(&err))).message;
                return Err(RegistryError::new(RegistryErrorKind::Other, message));
            }
        };
        received += chunk.as_ref().len() as u64;
        if received > layer.size {
            return Err(mismatch(format!(
                "the registry sent more than the {} bytes the manifest declares; refusing the layer",
                layer.size
            )));
        }
        hasher.update(chunk.as_ref());
        if decoder_open && sender.send(chunk).await.is_err() {
            decoder_open = false;
        }
    }
    drop(sender);
    if received != layer.size {
        return Err(mismatch(format!(
            "the registry sent {received} bytes for a layer the manifest declares as {} bytes; refusing it",
            layer.size
        )));
    }
    let actual = format!("sha256:{:x}", hasher.finalize());
    if actual != layer.digest {
        return Err(mismatch(format!(
            "the content does not match its digest (got {actual}); refusing the layer"
        )));
    }
    Ok(())
}

/// `None`: not an index. `Some(Err)`: an index without linux/amd64.
pub(super) fn amd64_child(manifest: &Value) -> Option<Result<String, ()>> {
    let children = manifest.get("manifests")?.as_array()?;
    Some(
        children
            .iter()
            .find(|child| {
                child.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                    && child
                        .pointer("/platform/architecture")
                        .and_then(Value::as_str)
                        == Some("amd64")
            })
            .and_then(|child| child.get("digest")?.as_str().map(str::to_string))
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_resolves_to_amd64_child() {
        let index = json!({"manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        assert_eq!(amd64_child(&index), Some(Ok("sha256:amd".to_string())));
        let arm_only = json!({"manifests": [{"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}}]});
        assert_eq!(amd64_child(&arm_only), Some(Err(())));
        assert_eq!(amd64_child(&json!({"layers": []})), None);
    }

    #[test]
    fn a_cluster_digest_matches_the_image_the_amd64_child_or_the_index() {
        let image = ResolvedDigest {
            digest: "sha256:img".into(),
            index_digest: None,
        };
        assert_eq!(image.matches("sha256:img"), Some(DigestMatch::Image));
        assert_eq!(image.matches("sha256:other"), None);
        let index = ResolvedDigest {
            digest: "sha256:amd".into(),
            index_digest: Some("sha256:idx".into()),
        };
        assert_eq!(index.matches("sha256:amd"), Some(DigestMatch::Amd64Child));
        assert_eq!(index.matches("sha256:idx"), Some(DigestMatch::Index));
        assert_eq!(index.matches("sha256:arm"), None);
    }

    #[test]
    fn private_and_loopback_hosts_may_fall_back_to_http_like_ggcr() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "10.0.0.1:443",
            "172.16.5.4",
            "192.168.1.1:5000",
            "localhost",
            "localhost:5000",
            "registry.localhost:80",
            "[::1]:5000",
        ] {
            assert!(may_fall_back_to_http(None, host), "{host}");
            assert!(may_fall_back_to_http(Some("HTTPS"), host), "{host}");
        }
        for host in [
            "registry.example.com",
            "8.8.8.8:5000",
            "172.32.0.1",
            "[2001:db8::1]:443",
        ] {
            assert!(!may_fall_back_to_http(Some("HTTPS"), host), "{host}");
            assert!(!may_fall_back_to_http(None, host), "{host}");
        }
        // `scheme: HTTP`, any case: https first, then http, whatever the host.
        assert!(may_fall_back_to_http(Some("http"), "registry.example.com"));
        assert!(may_fall_back_to_http(Some("Http"), "registry.example.com"));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn a_bad_ca_from_a_module_source_is_ignored_with_a_warning() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = RegistryOptions {
            timeout: Duration::from_secs(1),
        };
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        for ca in [
            garbage,
            "just some text",
            "-----BEGIN CERTIFICATE-----\nnotacertificate\n-----END CERTIFICATE-----\n",
        ] {
            let mut target =
                RegistryTarget::with_docker_cfg("reg.io/modules", None, Some(ca), None);
            target.name = "broken-ca".into();
            let registry = SourceRegistry::new(&target, &options).expect("still a client");
            assert!(registry.ca.is_none());
            let notices = registry.take_notices();
            assert_eq!(notices.len(), 1, "{notices:?}");
            assert!(!notices[0].verbose);
            assert!(
                notices[0].text.contains("ModuleSource broken-ca")
                    && notices[0].text.contains("ignored"),
                "{notices:?}"
            );
        }
        let flag = RegistryTarget::from_docker_config(
            "reg.io/modules",
            None,
            None,
            Some("just some text".into()),
        )
        .expect("target");
        let err = SourceRegistry::new(&flag, &options)
            .err()
            .expect("bad --registry-ca");
        assert_eq!(err.kind, RegistryErrorKind::Config);
    }

    #[test]
    fn references_are_built_from_their_parts() {
        let options = RegistryOptions {
            timeout: Duration::from_secs(1),
        };
        let registry =
            SourceRegistry::from_parts("reg.io:5000/deckhouse/modules", None, None, None, &options)
                .unwrap();
        let tagged = registry.reference("echo", "pr-1").unwrap();
        assert_eq!(tagged.resolve_registry(), "reg.io:5000");
        assert_eq!(tagged.repository(), "deckhouse/modules/echo");
        assert_eq!(tagged.tag(), Some("pr-1"));
        let catalog = registry.reference("", "latest").unwrap();
        assert_eq!(catalog.repository(), "deckhouse/modules");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = registry.reference("echo", &digest).unwrap();
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        assert!(registry.reference("Echo", "v1").is_err());
        assert!(registry.reference("echo", "bad tag").is_err());
        assert!(registry.reference("echo", "sha256:abc").is_err());
        let upper =
            SourceRegistry::from_parts("reg.io/Deckhouse", None, None, None, &options).unwrap();
        let err = upper.reference("echo", "v1").unwrap_err();
        assert!(err.message.contains("reg.io/Deckhouse/echo:v1"), "{err}");
    }

    #[test]
    fn repo_must_be_host_and_path() {
        let options = RegistryOptions {
            timeout: Duration::from_secs(1),
        };
        assert!(
            SourceRegistry::from_parts("https://reg.io/x", None, None, None, &options).is_err()
        );
        assert!(SourceRegistry::from_parts("", None, None, None, &options).is_err());
        let ok = SourceRegistry::from_parts(
            "reg.io:5000/deckhouse/modules/",
            None,
            None,
            Some("HTTP"),
            &options,
        )
        .unwrap();
        assert_eq!(ok.repo(), "reg.io:5000/deckhouse/modules");
        assert_eq!(
            ok.image_name("echo", "pr1"),
            "reg.io:5000/deckhouse/modules/echo:pr1"
        );
    }
}

/// Hostile registry and dockerCfg content: errors, never panics.
#[cfg(test)]
mod hostile_input {
    use super::*;
    use crate::registry::credentials;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn docker_cfg_and_repo_never_panic(cfg in any::<String>(), repo in any::<String>()) {
            let _ = credentials::for_repo(Some(&cfg), &repo);
            let options = RegistryOptions { timeout: Duration::from_secs(1) };
            let _ = SourceRegistry::from_parts(&repo, Some(&cfg), None, None, &options);
        }

        #[test]
        fn layers_and_manifests_never_panic(blob in proptest::collection::vec(any::<u8>(), 0..2048), json in any::<String>()) {
            let mut tree = ImageTree::new("sha256:x".into());
            let limits = ImageLimits::default();
            let plan = ReadPlan { keep: ["a".to_string()].into(), digests: true };
            let _ = tree.apply_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &limits, &plan);
            let _ = tree.apply_layer(&blob, "application/vnd.oci.image.layer.v1.tar", &limits, &plan);
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&json) {
                let _ = image::layer_descriptors(&value, &ImageLimits::default());
                let _ = amd64_child(&value);
            }
        }
    }
}

/// The client against an in-process registry that answers what each test scripts:
/// retries and timeouts tested in milliseconds, without the sandbox.
#[cfg(test)]
mod against_a_scripted_registry {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    /// Serves every manifest request with `respond(n)` for the n-th request (from 0);
    /// `/v2/` answers 200. Returns the registry's `host:port` and the request count.
    async fn registry(
        respond: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    let Ok(read) = socket.read(&mut buffer).await else {
                        return;
                    };
                    let request = String::from_utf8_lossy(&buffer[..read]);
                    let (status, body) = if request.contains("/manifests/") {
                        respond(seen.fetch_add(1, Ordering::SeqCst))
                    } else {
                        (200, "{}")
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (address, count)
    }

    fn client(address: &str, timeout: Duration) -> SourceRegistry {
        SourceRegistry::from_parts(
            &format!("{address}/modules"),
            None,
            None,
            Some("HTTP"),
            &RegistryOptions { timeout },
        )
        .expect("client")
    }

    #[tokio::test]
    async fn a_busy_registry_is_asked_again_within_the_timeout() {
        let (address, count) =
            registry(|n| if n < 2 { (429, "{}") } else { (200, MANIFEST) }).await;
        let resolved = client(&address, Duration::from_secs(10))
            .module_digest("echo", "v1")
            .await
            .expect("resolved after two 429s");
        assert_eq!(
            resolved.digest,
            format!("sha256:{:x}", Sha256::digest(MANIFEST))
        );
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_reads_of_one_manifest_make_one_request() {
        let (address, count) = registry(|_| (200, MANIFEST)).await;
        let registry = client(&address, Duration::from_secs(10));
        let (first, second) = tokio::join!(
            registry.module_digest("echo", "v1"),
            registry.image_info("echo", "v1")
        );
        assert_eq!(first.expect("digest").digest, second.expect("info").digest);
        assert_eq!(count.load(Ordering::SeqCst), 1, "one manifest request");
        // A later read asks again: nothing is cached past the reads in flight.
        registry.module_digest("echo", "v1").await.expect("again");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_registry_that_stays_busy_ends_within_the_timeout() {
        let (address, _) = registry(|_| (503, "{}")).await;
        let started = std::time::Instant::now();
        let err = client(&address, Duration::from_secs(2))
            .module_digest("echo", "v1")
            .await
            .expect_err("never answers 200");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.message.contains("503") || err.kind == RegistryErrorKind::Timeout,
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_tag_is_not_found_and_garbage_is_malformed() {
        let (address, _) = registry(|n| {
            if n == 0 {
                (404, "{}")
            } else {
                (200, "not json")
            }
        })
        .await;
        let client = client(&address, Duration::from_secs(5));
        let missing = client.module_digest("echo", "v1").await.expect_err("404");
        assert_eq!(missing.kind, RegistryErrorKind::NotFound, "{missing}");
        let garbage = client
            .module_digest("echo", "v2")
            .await
            .expect_err("garbage");
        assert_eq!(garbage.kind, RegistryErrorKind::Malformed, "{garbage}");
    }
}
