//! Authentication state of one registry client: the registry's challenge (one `/v2/`
//! probe per registry, not per repository) and Bearer tokens fetched for many
//! repositories per token request, as Docker's token specification allows
//! (https://distribution.github.io/distribution/spec/auth/token/: repeated `scope`).
//! A repository the token service did not grant in a batch gets a token of its own.
//!
//! A batch's token is kept once, shared by its repositories, and sent with the
//! manifest request directly; it goes into the OCI client's token cache (which keeps a
//! copy per repository) only for a repository whose blobs are read too. Ten thousand
//! lookups then hold hundreds of tokens, not ten thousand copies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};
use oci_client::{Client, Reference, RegistryOperation};

use super::auth::{self, Challenge};

/// What one client knows about logging in to its registry.
pub struct Tokens {
    /// The scheme the registry answers on, once the client knows it (https until then).
    scheme: OnceLock<&'static str>,
    host: String,
    ca: Option<String>,
    timeout: Duration,
    /// For the `/v2/` probe and batched token requests, built on first use (`None`:
    /// the CA did not parse, and the OCI client reports that on its own requests).
    http: OnceLock<Option<reqwest::Client>>,
    challenge: tokio::sync::OnceCell<Challenge>,
    /// Repositories a command announced it will look up ([`Tokens::plan`]), so that
    /// the first lookup can fetch tokens for all of them.
    planned: Mutex<Vec<Reference>>,
    prefetched: tokio::sync::OnceCell<()>,
    /// The token of each repository fetched in a batch, shared within the batch.
    batched: Mutex<HashMap<String, Arc<str>>>,
}

impl Tokens {
    pub fn new(host: &str, ca: Option<&str>, timeout: Duration) -> Self {
        Tokens {
            scheme: OnceLock::new(),
            host: host.to_string(),
            ca: ca.map(str::to_string),
            timeout,
            http: OnceLock::new(),
            challenge: tokio::sync::OnceCell::new(),
            planned: Mutex::new(Vec::new()),
            prefetched: tokio::sync::OnceCell::new(),
            batched: Mutex::new(HashMap::new()),
        }
    }

    /// Records the scheme the registry answers on (once).
    pub fn set_scheme(&self, scheme: &'static str) {
        let _ = self.scheme.set(scheme);
    }

    pub fn scheme(&self) -> &'static str {
        self.scheme.get().copied().unwrap_or("https")
    }

    /// What the scheme probe learnt from `/v2/`: the registry's challenge, so that it
    /// is not asked again.
    pub fn set_challenge(&self, challenge: Challenge) {
        let _ = self.challenge.set(challenge);
    }

    /// The plain HTTP client with the registry's CA, built on first use.
    pub fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| auth::http_client(self.ca.as_deref(), self.timeout))
            .as_ref()
    }

    /// Announces a lookup of `reference`'s repository in this command run.
    pub fn plan(&self, reference: Reference) {
        if let Ok(mut planned) = self.planned.lock() {
            planned.push(reference);
        }
    }

    fn planned(&self) -> Vec<Reference> {
        self.planned
            .lock()
            .map(|planned| planned.clone())
            .unwrap_or_default()
    }

    fn planned_count(&self) -> usize {
        self.planned.lock().map(|p| p.len()).unwrap_or(0)
    }

    async fn challenge(&self) -> &Challenge {
        self.challenge
            .get_or_init(|| async {
                let Some(http) = self.http() else {
                    return Challenge::Unknown;
                };
                let probe = auth::probe(http, self.scheme(), &self.host);
                tokio::time::timeout(self.timeout, probe)
                    .await
                    .unwrap_or(Challenge::Unknown)
            })
            .await
    }

    /// Before a repository's first request: with Basic credentials and a registry that
    /// takes them directly, stores them for the repository, so the client does not
    /// probe `/v2/` again; behind a token service, fetches tokens for all planned
    /// lookups in batches (once per client; a static registry token needs none).
    pub async fn prepare(
        &self,
        client: &Client,
        credentials: &RegistryAuth,
        reference: &Reference,
    ) {
        let basic = matches!(credentials, RegistryAuth::Basic(..));
        let batchable = !matches!(credentials, RegistryAuth::Bearer(_)) && self.planned_count() > 1;
        if !basic && !batchable {
            return;
        }
        match self.challenge().await {
            Challenge::Direct => {
                if let RegistryAuth::Basic(user, password) = credentials {
                    // oci-client keeps its token cache public; storing Basic credentials
                    // there is what its own `store_auth` does for a Basic challenge.
                    client
                        .tokens
                        .insert(
                            reference,
                            RegistryOperation::Pull,
                            RegistryTokenType::Basic(user.clone(), password.clone()),
                        )
                        .await;
                }
            }
            Challenge::Bearer { realm, service } if batchable => {
                self.prefetched
                    .get_or_init(|| self.prefetch(client, credentials, realm, service.as_deref()))
                    .await;
            }
            _ => {}
        }
    }

    /// Fetches tokens for the planned repositories, several per token request. If the
    /// token service refuses, nothing changes: each repository then gets its own token
    /// from the OCI client.
    async fn prefetch(
        &self,
        client: &Client,
        credentials: &RegistryAuth,
        realm: &str,
        service: Option<&str>,
    ) {
        let Some(http) = self.http() else {
            return;
        };
        let references = self.planned();
        let Some(first) = references.first() else {
            return;
        };
        client
            .store_auth_if_needed(first.resolve_registry(), credentials)
            .await;
        futures::stream::iter(references.chunks(auth::SCOPES_PER_TOKEN))
            .for_each_concurrent(4, |chunk| async move {
                let scopes = auth::pull_scopes(chunk.iter().map(Reference::repository));
                let request = auth::batch_token(http, realm, service, &scopes, credentials);
                let Ok(Some(token)) = tokio::time::timeout(self.timeout, request).await else {
                    return;
                };
                let token: Arc<str> = Arc::from(token.token());
                if let Ok(mut batched) = self.batched.lock() {
                    batched.extend(
                        chunk
                            .iter()
                            .map(|r| (r.repository().to_string(), Arc::clone(&token))),
                    );
                }
            })
            .await;
    }

    /// The batch token for `reference`'s repository, if a batch fetched one.
    pub fn batch_token(&self, reference: &Reference) -> Option<Arc<str>> {
        self.batched
            .lock()
            .ok()?
            .get(reference.repository())
            .cloned()
    }

    /// Before the OCI client reads a blob of `reference`'s repository: puts the batch
    /// token into its cache, since the client sends only cached tokens with blob reads.
    pub async fn lend(&self, client: &Client, reference: &Reference) {
        if let Some(token) = self.batch_token(reference) {
            let token = RegistryTokenType::Bearer(RegistryToken::Token {
                token: token.to_string(),
            });
            client
                .tokens
                .insert(reference, RegistryOperation::Pull, token)
                .await;
        }
    }

    /// Whether `reference`'s token came from a batch (and forgets it: a repository
    /// gets one retry with a token of its own).
    pub fn take_batched(&self, reference: &Reference) -> bool {
        self.batched
            .lock()
            .map(|mut batched| batched.remove(reference.repository()).is_some())
            .unwrap_or(false)
    }
}
