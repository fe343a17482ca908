//! How a registry wants to be authenticated, learnt from one `/v2/` probe per registry,
//! and Bearer tokens for many repositories from one token request.
//!
//! The OCI client finds this out again for every repository: a `/v2/` probe and a token
//! request before each repository's first request. For `status` over hundreds of modules
//! that triples the requests. Token services (Docker's token spec, as Harbor, GitLab and
//! distribution implement it) accept several `scope` parameters and return one token
//! that grants all of them, so one request can serve a whole batch of repositories.

use std::time::Duration;

use http_auth::ChallengeParser;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryToken;

/// Repositories per token request: keeps the URL and the token (which lists every
/// granted repository) well under the 8 KiB header limit of common proxies.
pub const SCOPES_PER_TOKEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No challenge (an anonymous registry) or a Basic one: credentials, if any, go on
    /// every request as they are.
    Direct,
    /// A token service issues the tokens the registry takes.
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// The probe failed or the answer was not understood: each request finds out for
    /// itself (and reports its own error).
    Unknown,
}

/// The challenge of a `/v2/` answer: its status and `WWW-Authenticate` header.
pub fn challenge_of(status: u16, www_authenticate: Option<&str>) -> Challenge {
    if (200..300).contains(&status) {
        return Challenge::Direct;
    }
    let Some(header) = www_authenticate.filter(|_| status == 401) else {
        return Challenge::Unknown;
    };
    let mut basic = false;
    for challenge in ChallengeParser::new(header).flatten() {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.to_unescaped())
            };
            if let Some(realm) = param("realm").filter(|realm| !realm.is_empty()) {
                return Challenge::Bearer {
                    realm,
                    service: param("service"),
                };
            }
        } else if challenge.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    if basic {
        Challenge::Direct
    } else {
        Challenge::Unknown
    }
}

/// The plain HTTP client for the probe and the token service, with the same CA and
/// timeouts as the OCI client.
pub fn http_client(ca_pem: Option<&str>, timeout: Duration) -> Option<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .read_timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("kubectl-mpo/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem.filter(|pem| !pem.trim().is_empty()) {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).ok()?;
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().ok()
}

/// Asks `<scheme>://<host>/v2/` without credentials how the registry authenticates.
pub async fn probe(http: &reqwest::Client, scheme: &str, host: &str) -> Challenge {
    let url = format!("{scheme}://{host}/v2/");
    match http.get(&url).send().await {
        Ok(response) => challenge_of(
            response.status().as_u16(),
            response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok()),
        ),
        Err(_) => Challenge::Unknown,
    }
}

/// `repository:<name>:pull` for each repository.
pub fn pull_scopes<'a>(repositories: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    repositories
        .into_iter()
        .map(|name| format!("repository:{name}:pull"))
        .collect()
}

/// One token for all `scopes`, or `None` when the token service refuses or answers
/// something else (the caller then falls back to a token per repository).
pub async fn batch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    auth: &RegistryAuth,
) -> Option<RegistryToken> {
    let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
    if let Some(service) = service {
        query.push(("service", service));
    }
    let mut request = http.get(realm).query(&query);
    if let RegistryAuth::Basic(user, password) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    let token: RegistryToken = serde_json::from_slice(&body).ok()?;
    (!token.token().is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_like_docker_does() {
        assert_eq!(challenge_of(200, None), Challenge::Direct);
        assert_eq!(
            challenge_of(401, Some(r#"Basic realm="mpo-sandbox""#)),
            Challenge::Direct
        );
        assert_eq!(
            challenge_of(
                401,
                Some(
                    r#"Bearer realm="https://auth.example.io/token",service="registry.example.io",scope="x""#
                )
            ),
            Challenge::Bearer {
                realm: "https://auth.example.io/token".into(),
                service: Some("registry.example.io".into()),
            }
        );
        // Several challenges: the Bearer one wins; parameter names are case-insensitive.
        assert_eq!(
            challenge_of(401, Some(r#"Basic realm="r", Bearer Realm="https://a/t""#)),
            Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
            }
        );
        assert_eq!(
            challenge_of(401, Some("Bearer service=\"x\"")),
            Challenge::Unknown
        );
        assert_eq!(
            challenge_of(401, Some("garbage ,,, \"")),
            Challenge::Unknown
        );
        assert_eq!(challenge_of(401, None), Challenge::Unknown);
        assert_eq!(challenge_of(500, Some("Basic realm=x")), Challenge::Unknown);
    }

    #[test]
    fn scopes_name_each_repository_for_pull() {
        assert_eq!(
            pull_scopes(["deckhouse/modules/echo", "m/x"]),
            vec![
                "repository:deckhouse/modules/echo:pull".to_string(),
                "repository:m/x:pull".to_string()
            ]
        );
    }
}
