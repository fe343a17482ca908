//! `auth-provider: oidc` users, as Deckhouse's kubeconfig generator writes them: the
//! id-token is refreshed with the refresh token when it has expired (as kubectl's oidc
//! auth provider decides it), and both new tokens go back into the same user entry of
//! the same file, so that the rotated refresh token is never lost.
//!
//! Behaviour follows client-go's `plugin/pkg/client/auth/oidc/oidc.go`
//! (kubernetes/client-go, release-1.33): expiry read from the JWT `exp` claim without
//! verifying the signature, a 10 s margin, issuer discovery, the refresh_token grant
//! with the client id and secret, the provider's CA from `idp-certificate-authority`
//! or `idp-certificate-authority-data`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::kubeconfig_file::{self, RefreshLock, WriteLock};
use crate::error::{Error, Result};

/// kubectl treats an id-token as expired this long before its `exp`.
const EXPIRY_MARGIN_SECONDS: i64 = 10;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The refresh settings of one oidc user.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
}

impl ProviderConfig {
    /// Reads `auth-provider.config`; relative CA paths are relative to the kubeconfig's
    /// directory, as client-go resolves them.
    pub fn from_config(
        config: &serde_json::Map<String, Value>,
        kubeconfig_dir: Option<&Path>,
    ) -> std::result::Result<Self, String> {
        let text = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let issuer = text("idp-issuer-url").ok_or("it has no idp-issuer-url")?;
        let client_id = text("client-id").ok_or("it has no client-id")?;
        let ca_pem = if let Some(data) = text("idp-certificate-authority-data") {
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.as_bytes())
                    .map_err(|_| "idp-certificate-authority-data is not base64")?,
            )
        } else if let Some(file) = text("idp-certificate-authority") {
            let path = match kubeconfig_dir {
                Some(dir) if Path::new(&file).is_relative() => dir.join(&file),
                _ => Path::new(&file).to_path_buf(),
            };
            Some(std::fs::read(&path).map_err(|err| {
                format!(
                    "cannot read idp-certificate-authority {}: {err}",
                    path.display()
                )
            })?)
        } else {
            None
        };
        Ok(Self {
            issuer,
            client_id,
            client_secret: text("client-secret"),
            id_token: text("id-token"),
            refresh_token: text("refresh-token"),
            ca_pem,
        })
    }
}

/// The `exp` claim of a JWT (seconds since the epoch), read without verifying the
/// signature: the API server verifies it; the client only needs to know when to refresh.
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64()
        .or_else(|| exp.as_f64().map(|value| value as i64))
}

/// Whether kubectl would refresh this id-token at `now` (unix seconds): when it is
/// missing, unreadable, or expires within the margin.
pub fn needs_refresh(id_token: Option<&str>, now: i64) -> bool {
    match id_token.and_then(jwt_expiry) {
        Some(exp) => now + EXPIRY_MARGIN_SECONDS >= exp,
        None => true,
    }
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// New tokens from the provider.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    token_endpoint: String,
}

/// Why a refresh failed.
#[derive(Debug)]
enum RefreshFailure {
    /// The provider refused the refresh token (expired, revoked, already used).
    Refused(String),
    /// Anything else: unreachable, TLS, an answer that is not OAuth.
    Other(String),
}

/// The id-token to send for `user` of `file`, refreshed and written back when needed.
pub async fn fresh_id_token(file: &Path, user: &str, timeout: Option<Duration>) -> Result<String> {
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let place = format!("user {user:?} of kubeconfig {}", file.display());
    let read_config = || -> Result<ProviderConfig> {
        let document = kubeconfig_file::read_document(file)
            .map_err(|cause| Error::runtime(format!("kubeconfig {}: {cause}", file.display())))?;
        let config = kubeconfig_file::oidc_config(&document, user).ok_or_else(|| {
            Error::runtime(format!("{place} is no longer an oidc auth-provider user"))
        })?;
        ProviderConfig::from_config(config, file.parent()).map_err(|cause| {
            Error::runtime(format!("the oidc login of {place} is incomplete: {cause}")).with_hint(
                "log in again through the kubeconfig generator and replace the user entry",
            )
        })
    };
    let config = read_config()?;
    if !needs_refresh(config.id_token.as_deref(), now_unix())
        && let Some(token) = config.id_token
    {
        return Ok(token);
    }
    // Only one kubectl-mpo spends the refresh token; the others wait and then find a
    // fresh id-token in the file.
    let _refresh_lock = RefreshLock::acquire(file, timeout)
        .await
        .map_err(|cause| Error::runtime(format!("kubeconfig {}: {cause}", file.display())))?;
    let config = read_config()?;
    if !needs_refresh(config.id_token.as_deref(), now_unix())
        && let Some(token) = config.id_token
    {
        return Ok(token);
    }
    let Some(refresh_token) = config.refresh_token.clone() else {
        return Err(login_again(
            &place,
            &config.issuer,
            "the id-token has expired and there is no refresh-token",
        ));
    };
    let (outcome, interrupted) = shielded_from_ctrl_c(async {
        match refresh(&config, &refresh_token, timeout).await {
            Ok((id_token, new_refresh_token)) => {
                write_back(file, user, &refresh_token, &id_token, &new_refresh_token).await?;
                Ok(id_token)
            }
            Err(RefreshFailure::Refused(reason)) => {
                // kubectl may have spent the same refresh token a moment ago; its write
                // follows its refresh, so give it a moment to land.
                if let Some(token) = refreshed_by_someone_else(file, user, &refresh_token).await {
                    return Ok(token);
                }
                Err(login_again(&place, &config.issuer, &reason))
            }
            Err(RefreshFailure::Other(cause)) => {
                // A provider that loses a race between two refreshes of one token may
                // answer with a server error rather than invalid_grant.
                if let Some(token) = refreshed_by_someone_else(file, user, &refresh_token).await {
                    return Ok(token);
                }
                Err(Error::runtime(format!(
                    "cannot refresh the oidc login of {place} at {}: {cause}",
                    config.issuer
                ))
                .with_hint(
                    "check that the identity provider is reachable; the kubeconfig was not changed",
                ))
            }
        }
    })
    .await;
    if interrupted {
        return Err(match outcome {
            Ok(_) => Error::interrupted(format!(
                "interrupted; the refreshed login was saved to {} first",
                file.display()
            )),
            Err(err) => Error::interrupted(format!("interrupted: {}", err.message)),
        });
    }
    outcome
}

fn login_again(place: &str, issuer: &str, reason: &str) -> Error {
    Error::runtime(format!(
        "the oidc login of {place} has expired: {issuer} refused to refresh it ({reason})"
    ))
    .with_hint(
        "log in again through the cluster's kubeconfig generator (Deckhouse user-authn) and replace this user in the kubeconfig; the file was not changed",
    )
}

/// Runs `work` to the end even when Ctrl-C arrives meanwhile: once the provider has
/// been asked, the rotated refresh token must reach the file, or the login is lost.
/// Says whether Ctrl-C was pressed. Afterwards Ctrl-C ends the process as before.
async fn shielded_from_ctrl_c<T>(work: impl std::future::Future<Output = T>) -> (T, bool) {
    let interrupted = Arc::new(AtomicBool::new(false));
    let mut signal = std::pin::pin!(tokio::signal::ctrl_c());
    let mut work = std::pin::pin!(work);
    let mut listening = true;
    let outcome = loop {
        tokio::select! {
            biased;
            result = &mut signal, if listening => {
                listening = false;
                if result.is_ok() {
                    interrupted.store(true, Ordering::SeqCst);
                }
            }
            outcome = &mut work => break outcome,
        }
    };
    let was_interrupted = interrupted.load(Ordering::SeqCst);
    if !was_interrupted {
        // Listening for Ctrl-C replaced its default action for the whole process; keep
        // that action: commands that watch for Ctrl-C themselves get it first.
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                std::process::exit(130);
            }
        });
    }
    (outcome, was_interrupted)
}

async fn refreshed_by_someone_else(file: &Path, user: &str, spent: &str) -> Option<String> {
    for _ in 0..20 {
        if let Ok(document) = kubeconfig_file::read_document(file)
            && let Some(config) = kubeconfig_file::oidc_config(&document, user)
            && let Ok(config) = ProviderConfig::from_config(config, file.parent())
            && config.refresh_token.as_deref() != Some(spent)
            && !needs_refresh(config.id_token.as_deref(), now_unix())
        {
            return config.id_token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn write_back(
    file: &Path,
    user: &str,
    spent: &str,
    id_token: &str,
    refresh_token: &str,
) -> Result<()> {
    let failed = |cause: String| {
        Error::runtime(format!(
            "refreshed the oidc login of user {user:?} but cannot write it to {}: {cause}",
            file.display()
        ))
        .with_hint(
            "the refresh token has been rotated: log in again through the kubeconfig generator",
        )
    };
    // kubectl holds this lock only while it writes; a lock that stays is stale.
    let _write_lock = WriteLock::acquire(file, Duration::from_secs(5)).await;
    let mut document = kubeconfig_file::read_document(file).map_err(failed)?;
    if !kubeconfig_file::set_tokens(&mut document, user, spent, id_token, refresh_token) {
        // Someone else refreshed and wrote meanwhile; their tokens stay.
        return Ok(());
    }
    let text = kubeconfig_file::render_document(&document).map_err(failed)?;
    kubeconfig_file::replace_atomically(file, &text).map_err(failed)
}

async fn refresh(
    config: &ProviderConfig,
    refresh_token: &str,
    timeout: Duration,
) -> std::result::Result<(String, String), RefreshFailure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("kubectl-mpo/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &config.ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
            RefreshFailure::Other("the provider's certificate authority is not PEM".into())
        })?;
        builder = builder.tls_certs_merge(certificates);
    }
    let client = builder
        .build()
        .map_err(|err| RefreshFailure::Other(super::short_cause(&err)))?;
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let response = client
        .get(&discovery_url)
        .send()
        .await
        .map_err(|err| RefreshFailure::Other(super::short_cause(&err)))?;
    if !response.status().is_success() {
        return Err(RefreshFailure::Other(format!(
            "discovery {discovery_url} answered {}",
            response.status()
        )));
    }
    let discovery: Discovery = response.json().await.map_err(|_| {
        RefreshFailure::Other(format!(
            "discovery {discovery_url} is not an OpenID configuration"
        ))
    })?;

    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let mut request = client.post(&discovery.token_endpoint);
    match &config.client_secret {
        // client_secret_basic (RFC 6749 §2.3.1): both parts form-urlencoded.
        Some(secret) => {
            request = request.basic_auth(form_encode(&config.client_id), Some(form_encode(secret)));
        }
        None => form.push(("client_id", &config.client_id)),
    }
    let body = form
        .iter()
        .map(|(key, value)| format!("{key}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    let response = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|err| RefreshFailure::Other(super::short_cause(&err)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| RefreshFailure::Other(super::short_cause(&err)))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<TokenError>(&body) {
            Ok(problem)
                if problem.error == "invalid_grant"
                    || status.as_u16() == 400
                    || status.as_u16() == 401 =>
            {
                let reason = match problem
                    .error_description
                    .filter(|d| !d.is_empty() && d.len() < 200)
                {
                    Some(description) => format!("{}: {description}", problem.error),
                    None => problem.error,
                };
                RefreshFailure::Refused(reason)
            }
            _ => RefreshFailure::Other(format!("the token endpoint answered {status}")),
        });
    }
    let tokens: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
        RefreshFailure::Other("the token endpoint's answer is not a token response".into())
    })?;
    let id_token = tokens
        .id_token
        .filter(|token| !token.is_empty())
        .ok_or_else(|| RefreshFailure::Other("the token response has no id_token".into()))?;
    // Providers that do not rotate refresh tokens send none back: keep the old one.
    let refresh_token = tokens
        .refresh_token
        .filter(|token| !token.is_empty())
        .unwrap_or_else(|| refresh_token.to_string());
    Ok((id_token, refresh_token))
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.c2ln", encode(r#"{"alg":"RS256"}"#), encode(payload))
    }

    #[test]
    fn expiry_is_read_from_the_payload() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000,"sub":"x"}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000.5}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.%%%.c"), None);
        assert_eq!(jwt_expiry(""), None);
    }

    #[test]
    fn refresh_decision_matches_kubectl() {
        let token = jwt(r#"{"exp":1000}"#);
        assert!(!needs_refresh(Some(&token), 989));
        assert!(needs_refresh(Some(&token), 990), "10 s margin");
        assert!(needs_refresh(Some(&token), 2000));
        assert!(needs_refresh(None, 0));
        assert!(needs_refresh(Some("garbage"), 0));
    }

    #[test]
    fn provider_config_reads_the_generators_fields() {
        let config: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"idp-issuer-url":"https://dex.example/","client-id":"kubeconfig-generator",
                "client-secret":"s","id-token":"i","refresh-token":"r",
                "idp-certificate-authority-data":"UEVNCg=="}"#,
        )
        .expect("json");
        let parsed = ProviderConfig::from_config(&config, None).expect("config");
        assert_eq!(parsed.issuer, "https://dex.example/");
        assert_eq!(parsed.client_secret.as_deref(), Some("s"));
        assert_eq!(parsed.ca_pem.as_deref(), Some(&b"PEM\n"[..]));

        let mut missing = config.clone();
        missing.remove("idp-issuer-url");
        assert!(ProviderConfig::from_config(&missing, None).is_err());
        let mut bad_ca = config;
        bad_ca.insert("idp-certificate-authority-data".into(), "%%%".into());
        let err = ProviderConfig::from_config(&bad_ca, None).expect_err("bad base64");
        assert!(!err.contains('s') || !err.contains("\"s\""));
    }

    #[test]
    fn client_credentials_are_form_encoded_for_basic_auth() {
        assert_eq!(form_encode("kubeconfig-generator"), "kubeconfig-generator");
        assert_eq!(form_encode("a b:c/d"), "a+b%3Ac%2Fd");
    }
}
