//! dockerCfg -> registry credentials, matched by host the way Deckhouse does
//! (deckhouse-facts §4). Nothing from the dockerCfg ever reaches an error message.

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::{RegistryError, RegistryErrorKind};

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

fn credentials_error(message: impl Into<String>) -> RegistryError {
    RegistryError {
        kind: RegistryErrorKind::Credentials,
        message: message.into(),
    }
}

/// Credentials for `repo` from a base64 docker config; empty means anonymous.
pub fn for_repo(docker_cfg: Option<&str>, repo: &str) -> Result<RegistryAuth, RegistryError> {
    let Some(encoded) = docker_cfg.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = engine
        .decode(encoded.split_whitespace().collect::<String>())
        .map_err(|_| credentials_error("the dockerCfg is not valid base64"))?;
    let config: DockerConfig = serde_json::from_slice(&decoded).map_err(|_| {
        credentials_error("the dockerCfg is not a docker config.json ({\"auths\": {...}})")
    })?;
    let host = repo.split('/').next().unwrap_or_default();
    let entry = config.auths.get(host).ok_or_else(|| {
        credentials_error(format!("\"{repo}\" credentials not found in the dockerCfg"))
    })?;
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let pair = engine
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                credentials_error(format!(
                    "the dockerCfg entry for {host} has an invalid \"auth\" field"
                ))
            })?;
        let (user, password) = pair.split_once(':').ok_or_else(|| {
            credentials_error(format!(
                "the dockerCfg entry for {host} has an invalid \"auth\" field (no ':')"
            ))
        })?;
        return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    if let Some(token) = entry.registrytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(RegistryAuth::Bearer(token.to_string()));
    }
    if let Some(user) = entry.username.as_deref().filter(|u| !u.is_empty()) {
        return Ok(RegistryAuth::Basic(
            user.to_string(),
            entry.password.clone().unwrap_or_default(),
        ));
    }
    if entry
        .identitytoken
        .as_deref()
        .is_some_and(|t| !t.is_empty())
    {
        // Docker's OAuth2 refresh flow: the token is sent as the password of "<token>".
        return Ok(RegistryAuth::Basic(
            "<token>".to_string(),
            entry.identitytoken.clone().unwrap_or_default(),
        ));
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    #[test]
    fn picks_the_entry_for_the_repo_host() {
        let cfg = encode(
            r#"{"auths":{"other:5000":{"auth":"eDp5"},"reg.io:5000":{"auth":"dXNlcjpwYXNz"}}}"#,
        );
        let auth = for_repo(Some(&cfg), "reg.io:5000/deckhouse/modules").unwrap();
        assert!(matches!(auth, RegistryAuth::Basic(ref u, ref p) if u == "user" && p == "pass"));
    }

    #[test]
    fn username_password_and_token_fields() {
        let cfg = encode(r#"{"auths":{"reg.io":{"username":"u","password":"p"}}}"#);
        assert!(
            matches!(for_repo(Some(&cfg), "reg.io/m").unwrap(), RegistryAuth::Basic(ref u, _) if u == "u")
        );
        let cfg = encode(r#"{"auths":{"reg.io":{"registrytoken":"t"}}}"#);
        assert!(
            matches!(for_repo(Some(&cfg), "reg.io/m").unwrap(), RegistryAuth::Bearer(ref t) if t == "t")
        );
    }

    #[test]
    fn empty_means_anonymous() {
        assert!(matches!(
            for_repo(None, "reg.io/m").unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(matches!(
            for_repo(Some("  "), "reg.io/m").unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn errors_name_the_problem_without_secrets() {
        let cfg = encode(r#"{"auths":{"localhost:5000":{"auth":"c2VjcmV0OnNlY3JldA=="}}}"#);
        let err = for_repo(Some(&cfg), "127.0.0.1:5000/mods").unwrap_err();
        assert_eq!(
            err.message,
            "\"127.0.0.1:5000/mods\" credentials not found in the dockerCfg"
        );
        assert!(!err.message.contains("secret"));
        assert!(
            for_repo(Some("%%%"), "r/m")
                .unwrap_err()
                .message
                .contains("base64")
        );
        let garbage = encode("password=hunter2");
        let err = for_repo(Some(&garbage), "r/m").unwrap_err();
        assert!(!err.message.contains("hunter2"));
        let bad_auth = encode(r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#);
        assert!(
            for_repo(Some(&bad_auth), "r/m")
                .unwrap_err()
                .message
                .contains("auth")
        );
    }
}
