//! Registry access with a ModuleSource's repo, credentials, CA and scheme
//! (deckhouse-facts §4): the digest rule, tag listing, and image pulls flattened into a
//! file tree. One client per ModuleSource; every request is bounded by a timeout.

mod auth;
mod credentials;
mod image;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryTokenType;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use image::{ImageLimits, ImageTree, ReadPlan, human_bytes};

use crate::deckhouse::resources::ModuleSource;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Why a registry operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistryErrorKind {
    /// The dockerCfg has no entry for the repo's host, or cannot be decoded.
    Credentials,
    /// 401/403 from the registry or the token service.
    Unauthorized,
    /// The tag or repository does not exist.
    NotFound,
    /// TLS failure (unknown CA, wrong name).
    Tls,
    /// Connection refused, DNS failure.
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// The registry answered with something that is not a valid manifest/index/blob.
    Malformed,
    /// The image exceeds a read cap (`--max-layer-size`, `--max-files`...).
    Limit,
    /// Anything else (5xx, 429...).
    Other,
}

#[derive(Debug, Clone)]
pub struct RegistryError {
    pub kind: RegistryErrorKind,
    /// One line, no secrets.
    pub message: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RegistryError {}

impl RegistryError {
    fn new(kind: RegistryErrorKind, message: impl Into<String>) -> Self {
        RegistryError {
            kind,
            message: message.into(),
        }
    }
}

/// The result of the digest rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDigest {
    /// What the controller compares with `status.imageDigest`.
    pub digest: String,
    /// Set when the tag is an index: the index's own digest (what `crane digest` prints).
    pub index_digest: Option<String>,
}

/// Options shared by every registry client of one command run.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Bound on each registry request.
    pub timeout: Duration,
}

/// A registry client for one ModuleSource.
pub struct SourceRegistry {
    client: Client,
    auth: RegistryAuth,
    repo: String,
    options: RegistryOptions,
    /// `http` or `https`.
    scheme: &'static str,
    /// The ModuleSource's CA, for the plain HTTP client.
    ca: Option<String>,
    /// For the `/v2/` probe and batched token requests, built on first use (`None`:
    /// the CA did not parse, and the OCI client reports that on its own requests).
    http: std::sync::OnceLock<Option<reqwest::Client>>,
    /// How the registry authenticates: one `/v2/` probe per registry instead of one per
    /// repository.
    challenge: tokio::sync::OnceCell<auth::Challenge>,
    /// Modules a command announced it will look up (`plan_lookup`), so that the first
    /// lookup can fetch Bearer tokens for all of them in batches.
    planned: std::sync::Mutex<Vec<String>>,
    prefetched: tokio::sync::OnceCell<()>,
    /// Repositories whose cached token came from a batched token request; if the
    /// registry refuses one, that repository gets a token of its own.
    batched: std::sync::Mutex<HashSet<String>>,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

impl SourceRegistry {
    pub fn from_source(
        source: &ModuleSource,
        options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        let registry = &source.spec.registry;
        Self::from_parts(
            &registry.repo,
            registry.docker_cfg.as_deref(),
            registry.ca.as_deref(),
            registry.scheme.as_deref(),
            options,
        )
    }

    pub fn from_parts(
        repo: &str,
        docker_cfg: Option<&str>,
        ca: Option<&str>,
        scheme: Option<&str>,
        options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        let repo = repo.trim().trim_end_matches('/').to_string();
        if repo.is_empty() || repo.contains("://") {
            return Err(RegistryError::new(
                RegistryErrorKind::Other,
                format!("the ModuleSource repo {repo:?} is not of the form host[:port]/path"),
            ));
        }
        let auth = credentials::for_repo(docker_cfg, &repo)?;
        // One process-wide TLS provider (ring) for reqwest, whatever else is linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = match scheme.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("http") => ClientProtocol::Http,
            _ => ClientProtocol::Https,
        };
        let extra_root_certificates = ca
            .filter(|pem| !pem.trim().is_empty())
            .map(|pem| {
                vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.as_bytes().to_vec(),
                }]
            })
            .unwrap_or_default();
        let client = Client::new(ClientConfig {
            protocol: protocol.clone(),
            extra_root_certificates,
            // No read timeout on the client: every call is bounded here (`bounded`), and
            // a blob's chunks by `feed_layer`, which counts only the time spent waiting
            // for the registry. reqwest's read timeout also counts the time the layer's
            // decoder takes between two chunks, so a slow machine would fail a healthy
            // download.
            read_timeout: None,
            connect_timeout: Some(options.timeout.min(Duration::from_secs(10))),
            max_concurrent_download: 4,
            ..ClientConfig::default()
        });
        Ok(SourceRegistry {
            client,
            auth,
            repo,
            options: options.clone(),
            scheme: match protocol {
                ClientProtocol::Http => "http",
                _ => "https",
            },
            ca: ca.map(str::to_string),
            http: std::sync::OnceLock::new(),
            challenge: tokio::sync::OnceCell::new(),
            planned: std::sync::Mutex::new(Vec::new()),
            prefetched: tokio::sync::OnceCell::new(),
            batched: std::sync::Mutex::new(HashSet::new()),
        })
    }

    fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| auth::http_client(self.ca.as_deref(), self.options.timeout))
            .as_ref()
    }

    /// Announces that `module` will be looked up in this command run (`status`), so
    /// that behind a token service the first lookup fetches tokens for all announced
    /// modules, several repositories per token request.
    pub fn plan_lookup(&self, module: &str) {
        if let Ok(mut planned) = self.planned.lock() {
            planned.push(module.to_string());
        }
    }

    fn planned_count(&self) -> usize {
        self.planned.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn host(&self) -> &str {
        self.repo.split('/').next().unwrap_or_default()
    }

    async fn challenge(&self) -> &auth::Challenge {
        self.challenge
            .get_or_init(|| async {
                let Some(http) = self.http() else {
                    return auth::Challenge::Unknown;
                };
                let probe = auth::probe(http, self.scheme, self.host());
                tokio::time::timeout(self.options.timeout, probe)
                    .await
                    .unwrap_or(auth::Challenge::Unknown)
            })
            .await
    }

    /// Fetches Bearer tokens for the planned modules' repositories, several repositories
    /// per token request. If the token service refuses, nothing changes: each
    /// repository then gets its own token from the OCI client.
    async fn prefetch_tokens(&self, realm: &str, service: Option<&str>) {
        let Some(http) = self.http() else {
            return;
        };
        let modules = self.planned.lock().map(|p| p.clone()).unwrap_or_default();
        let references: Vec<Reference> = modules
            .iter()
            .filter_map(|module| self.reference(module, "latest").ok())
            .collect();
        let Some(first) = references.first() else {
            return;
        };
        self.client
            .store_auth_if_needed(first.resolve_registry(), &self.auth)
            .await;
        futures::stream::iter(references.chunks(auth::SCOPES_PER_TOKEN))
            .for_each_concurrent(4, |chunk| async move {
                let scopes = auth::pull_scopes(chunk.iter().map(Reference::repository));
                let request = auth::batch_token(http, realm, service, &scopes, &self.auth);
                let Ok(Some(token)) = tokio::time::timeout(self.options.timeout, request).await
                else {
                    return;
                };
                for reference in chunk {
                    let token = RegistryTokenType::Bearer(token.clone());
                    self.client
                        .tokens
                        .insert(reference, RegistryOperation::Pull, token)
                        .await;
                }
                if let Ok(mut batched) = self.batched.lock() {
                    batched.extend(chunk.iter().map(|r| r.repository().to_string()));
                }
            })
            .await;
    }

    /// Whether `reference`'s token came from a batch (and forgets it: a repository gets
    /// one retry with a token of its own).
    fn take_batched(&self, reference: &Reference) -> bool {
        self.batched
            .lock()
            .map(|mut batched| batched.remove(reference.repository()))
            .unwrap_or(false)
    }

    /// Before a repository's first request: with Basic credentials and a registry that
    /// takes them directly, stores them for the repository, so the client does not probe
    /// `/v2/` again for every repository; behind a token service, fetches tokens for all
    /// planned lookups in batches (once per client; a static registry token needs none).
    async fn prepare_auth(&self, reference: &Reference) {
        let basic = matches!(self.auth, RegistryAuth::Basic(..));
        let batchable = !matches!(self.auth, RegistryAuth::Bearer(_)) && self.planned_count() > 1;
        if !basic && !batchable {
            return;
        }
        match self.challenge().await {
            auth::Challenge::Direct => {
                if let RegistryAuth::Basic(user, password) = &self.auth {
                    self.client
                        .tokens
                        .insert(
                            reference,
                            RegistryOperation::Pull,
                            RegistryTokenType::Basic(user.clone(), password.clone()),
                        )
                        .await;
                }
            }
            auth::Challenge::Bearer { realm, service } if batchable => {
                self.prefetched
                    .get_or_init(|| self.prefetch_tokens(realm, service.as_deref()))
                    .await;
            }
            _ => {}
        }
    }

    /// `host[:port]/path` of the ModuleSource.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// `<repo>/<module>:<tag>` (or `@digest`).
    pub fn image_name(&self, module: &str, tag_or_digest: &str) -> String {
        let separator = if tag_or_digest.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{}/{module}{separator}{tag_or_digest}", self.repo)
    }

    /// `<repo>/<repository>:<tag>` (or `@digest`) from its parts. Built directly rather
    /// than parsed: the parts are known, and the reference grammar's regex costs ~15 MB
    /// and tens of milliseconds to compile on first use.
    fn reference(&self, repository: &str, tag_or_digest: &str) -> Result<Reference, RegistryError> {
        let (host, repo_path) = self
            .repo
            .split_once('/')
            .unwrap_or((self.repo.as_str(), ""));
        let path = [repo_path, repository]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let invalid = |what: &str| {
            RegistryError::new(
                RegistryErrorKind::Other,
                format!(
                    "invalid image reference {}: {what}",
                    self.image_name(repository, tag_or_digest)
                ),
            )
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(invalid("the registry host is not host[:port]"));
        }
        if !valid_repository_path(&path) {
            return Err(invalid(
                "a repository path is lower-case letters and digits, separated by '.', '_', '__', '-' or '/'",
            ));
        }
        if let Some(hex) = tag_or_digest.strip_prefix("sha256:") {
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("not a sha256 digest"));
            }
            return Ok(Reference::with_digest(
                host.into(),
                path,
                tag_or_digest.into(),
            ));
        }
        if crate::validate::image_tag(tag_or_digest).is_err() {
            return Err(invalid("not an OCI tag"));
        }
        Ok(Reference::with_tag(host.into(), path, tag_or_digest.into()))
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify(what, &err)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> RegistryError {
        RegistryError::new(
            RegistryErrorKind::Timeout,
            format!(
                "{what}: no answer within {}s",
                self.options.timeout.as_secs()
            ),
        )
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
        loop {
            let result = tokio::time::timeout_at(deadline, call()).await;
            match result {
                Ok(Err(ref err))
                    if is_busy(err) && tokio::time::Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => return Err(classify(what, &err)),
                Err(_) => return Err(self.timed_out(what)),
            }
        }
    }

    /// The raw manifest (or index) of `<repo>/<repository>:<tag>` and the sha256 of its body.
    async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<(Value, String), RegistryError> {
        let reference = self.reference(repository, tag)?;
        self.prepare_auth(&reference).await;
        let what = format!("GET manifest {reference}");
        let pull = || {
            self.bounded_retrying(&what, || {
                self.client
                    .pull_manifest_raw(&reference, &self.auth, &ACCEPTED)
            })
        };
        let (body, _) = match pull().await {
            Err(err)
                if err.kind == RegistryErrorKind::Unauthorized && self.take_batched(&reference) =>
            {
                // The token service did not grant this repository in the batch: ask for
                // a token of its own (which replaces the cached one) and try once more.
                let _ = self
                    .bounded(
                        &what,
                        self.client
                            .auth(&reference, &self.auth, RegistryOperation::Pull),
                    )
                    .await;
                pull().await?
            }
            result => result?,
        };
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
        self.prepare_auth(&reference).await;
        let what = format!("list tags of {}", reference.repository());
        let mut all = Vec::new();
        let mut last: Option<String> = None;
        const PAGE: usize = 1000;
        loop {
            let page = self
                .bounded_retrying(&what, || {
                    self.client
                        .list_tags(&reference, &self.auth, Some(PAGE), last.as_deref())
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
                self.client
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
                    ChannelReader::new(receiver),
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

/// A blocking reader over chunks sent by the download task. A closed channel is the end
/// of the data: when the download fails, the decoder sees a truncated layer and stops.
struct ChannelReader<B> {
    receiver: tokio::sync::mpsc::Receiver<B>,
    chunk: Option<B>,
    offset: usize,
}

impl<B> ChannelReader<B> {
    fn new(receiver: tokio::sync::mpsc::Receiver<B>) -> Self {
        ChannelReader {
            receiver,
            chunk: None,
            offset: 0,
        }
    }
}

impl<B: AsRef<[u8]>> std::io::Read for ChannelReader<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.offset..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.offset += n;
                    return Ok(n);
                }
            }
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.chunk = Some(chunk);
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

/// The OCI distribution grammar for repository names: components of lower-case letters
/// and digits joined by `.`, `_`, `__` or runs of `-`, separated by `/`.
fn valid_repository_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
                return false;
            };
            if !alnum(first) || !alnum(last) {
                return false;
            }
            // Each run of separators between two letters/digits must be one of the
            // allowed ones.
            component
                .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                .all(|separator| {
                    separator.is_empty()
                        || separator == "."
                        || separator == "_"
                        || separator == "__"
                        || separator.bytes().all(|b| b == b'-')
                })
        })
}

/// `None`: not an index. `Some(Err)`: an index without linux/amd64.
fn amd64_child(manifest: &Value) -> Option<Result<String, ()>> {
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

/// The error chain as one line, like Go's wrapped errors.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
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

/// 429 Too Many Requests or 503, as a bare status or as an OCI error envelope.
fn is_busy(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ServerError { code, .. } => matches!(code, 429 | 503),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

fn classify(what: &str, err: &OciDistributionError) -> RegistryError {
    use RegistryErrorKind as K;
    let (kind, detail) = match err {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => (
            K::Unauthorized,
            "401 Unauthorized: the registry refused the credentials".to_string(),
        ),
        OciDistributionError::ImageManifestNotFoundError(_) => {
            (K::NotFound, "manifest unknown".to_string())
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let text = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let kind = if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                K::NotFound
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                K::Unauthorized
            } else {
                K::Other
            };
            (kind, text)
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let kind = match code {
                401 | 403 => K::Unauthorized,
                404 => K::NotFound,
                _ => K::Other,
            };
            (
                kind,
                format!(
                    "HTTP {code}: {}",
                    message.lines().next().unwrap_or_default()
                ),
            )
        }
        OciDistributionError::RequestError(request) => {
            let text = chain(request);
            let lower = text.to_lowercase();
            let kind = if request.is_timeout() {
                K::Timeout
            } else if lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("unknownissuer")
            {
                K::Tls
            } else if request.is_connect() {
                K::Unreachable
            } else {
                K::Other
            };
            (kind, text)
        }
        OciDistributionError::JsonError(_)
        | OciDistributionError::ManifestParsingError(_)
        | OciDistributionError::VersionedParsingError(_)
        | OciDistributionError::ManifestEncodingError(_)
        | OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::SpecViolationError(_) => (K::Malformed, chain(err)),
        other => (K::Other, chain(other)),
    };
    RegistryError::new(kind, format!("{what}: {detail}"))
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
    fn repository_paths_follow_the_oci_grammar() {
        for good in [
            "deckhouse/modules/echo",
            "a",
            "a.b_c__d---e/f0",
            "m/echo/release",
        ] {
            assert!(valid_repository_path(good), "{good}");
        }
        for bad in [
            "", "Upper/x", "a//b", "/a", "a/", "a..b", "a___b", "-a", "a-", "a._b", "a b", "a:b",
        ] {
            assert!(!valid_repository_path(bad), "{bad:?}");
        }
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
