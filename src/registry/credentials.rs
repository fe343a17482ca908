//! Where registry credentials come from, as one [`RegistryTarget`] whatever the source:
//! a ModuleSource (`spec.registry.dockerCfg`, CA, scheme) or, for users who may not read
//! ModuleSources, `--registry-repo` with docker's own config.json. Entries are matched
//! by `host[:port]` the way Deckhouse does (docs/deckhouse-real.md §3.7: keys are parsed
//! as URLs, `https://reg.io/v2/` matches `reg.io`; the dockerCfg may be base64 or raw
//! JSON). Nothing from a credential ever reaches an error message.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::error::{RegistryError, RegistryErrorKind};

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default, Clone)]
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

/// Where the credentials of a [`RegistryTarget`] come from.
#[derive(Clone)]
enum Credentials {
    /// A ModuleSource's `dockerCfg` (base64 or raw JSON; empty: anonymous).
    DockerCfg(Option<String>),
    /// The `auths` of a docker config.json, read and checked up front.
    DockerConfig(BTreeMap<String, AuthEntry>),
}

/// A module registry and how to log in to it.
#[derive(Clone)]
pub struct RegistryTarget {
    /// The ModuleSource's name, or `(--registry-repo)`.
    pub name: String,
    /// `host[:port]/path`.
    pub repo: String,
    pub ca: Option<String>,
    /// `HTTP` or `HTTPS` (ModuleSource `spec.registry.scheme`; default HTTPS).
    pub scheme: Option<String>,
    /// The user wrote `https://` in `--registry-repo`: no plain-HTTP fallback, even on
    /// a private or loopback host.
    pub https_only: bool,
    credentials: Credentials,
}

/// Name shown for the registry given with `--registry-repo`.
pub const FALLBACK_NAME: &str = "(--registry-repo)";

impl RegistryTarget {
    /// A registry with a ModuleSource-style dockerCfg (base64 of a docker config.json).
    pub fn with_docker_cfg(
        repo: &str,
        docker_cfg: Option<&str>,
        ca: Option<&str>,
        scheme: Option<&str>,
    ) -> Self {
        RegistryTarget {
            name: String::new(),
            repo: repo.to_string(),
            ca: ca.map(str::to_string),
            scheme: scheme.map(str::to_string),
            https_only: false,
            credentials: Credentials::DockerCfg(docker_cfg.map(str::to_string)),
        }
    }

    /// `--registry-repo REPO` with the credentials of a docker config.json (`None`: no
    /// file, anonymous). A config that does not parse is refused here, with the path.
    pub fn from_docker_config(
        repo: &str,
        scheme: Option<&str>,
        config: Option<(&Path, &[u8])>,
        ca: Option<String>,
    ) -> Result<Self, String> {
        let auths = match config {
            Some((path, bytes)) => {
                parse_docker_config(bytes)
                    .map_err(|what| format!("{}: {what}", path.display()))?
                    .auths
            }
            None => BTreeMap::new(),
        };
        Ok(RegistryTarget {
            name: FALLBACK_NAME.to_string(),
            repo: repo.to_string(),
            ca,
            scheme: scheme.map(str::to_string),
            https_only: scheme.is_some_and(|s| s.eq_ignore_ascii_case("https")),
            credentials: Credentials::DockerConfig(auths),
        })
    }

    /// The credentials to send to this registry.
    pub fn auth(&self) -> Result<RegistryAuth, RegistryError> {
        match &self.credentials {
            Credentials::DockerCfg(docker_cfg) => for_repo(docker_cfg.as_deref(), &self.repo),
            Credentials::DockerConfig(auths) => match entry_for(auths, &self.repo) {
                Some(entry) => entry_auth(entry, host_of(&self.repo)),
                None => Ok(RegistryAuth::Anonymous),
            },
        }
    }
}

fn credentials_error(message: impl Into<String>) -> RegistryError {
    RegistryError::new(RegistryErrorKind::Credentials, message)
}

fn host_of(repo: &str) -> &str {
    repo.split('/').next().unwrap_or_default()
}

/// `https://reg.io:5000/v2/` → `reg.io:5000`: only host and port are compared.
fn key_host(key: &str) -> &str {
    let bare = key.split_once("://").map_or(key, |(_, rest)| rest);
    bare.split('/').next().unwrap_or(bare)
}

fn entry_for<'a>(auths: &'a BTreeMap<String, AuthEntry>, repo: &str) -> Option<&'a AuthEntry> {
    let host = host_of(repo);
    auths.get(host).or_else(|| {
        auths
            .iter()
            .find(|(key, _)| key_host(key) == host)
            .map(|(_, e)| e)
    })
}

fn parse_docker_config(bytes: &[u8]) -> Result<DockerConfig, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not valid JSON")?;
    match value.get("auths") {
        None | Some(serde_json::Value::Object(_)) => {}
        Some(_) => return Err("\"auths\" is not an object"),
    }
    serde_json::from_value(value).map_err(|_| "an \"auths\" entry is not an object of strings")
}

/// Credentials for `repo` from a ModuleSource dockerCfg; empty means anonymous.
pub fn for_repo(docker_cfg: Option<&str>, repo: &str) -> Result<RegistryAuth, RegistryError> {
    let Some(text) = docker_cfg.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = match engine.decode(text.split_whitespace().collect::<String>()) {
        Ok(bytes) => bytes,
        // Deckhouse also takes the JSON itself.
        Err(_) if text.starts_with('{') => text.as_bytes().to_vec(),
        Err(_) => {
            return Err(credentials_error(
                "the dockerCfg is neither valid base64 nor a JSON docker config",
            ));
        }
    };
    let config: DockerConfig = serde_json::from_slice(&decoded).map_err(|_| {
        credentials_error("the dockerCfg is not a docker config.json ({\"auths\": {...}})")
    })?;
    let entry = entry_for(&config.auths, repo).ok_or_else(|| {
        credentials_error(format!("\"{repo}\" credentials not found in the dockerCfg"))
    })?;
    entry_auth(entry, host_of(repo))
}

/// One `auths` entry as credentials, in the order Docker reads the fields.
fn entry_auth(entry: &AuthEntry, host: &str) -> Result<RegistryAuth, RegistryError> {
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let pair = engine
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                credentials_error(format!(
                    "the credentials entry for {host} has an invalid \"auth\" field"
                ))
            })?;
        let (user, password) = pair.split_once(':').ok_or_else(|| {
            credentials_error(format!(
                "the credentials entry for {host} has an invalid \"auth\" field (no ':')"
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
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        // Docker's OAuth2 refresh flow: the token is sent as the password of "<token>".
        return Ok(RegistryAuth::Basic(
            "<token>".to_string(),
            token.to_string(),
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
    fn keys_match_by_host_and_port_and_raw_json_is_accepted() {
        let raw = r#"{"auths":{"https://reg.io:5000/v2/":{"auth":"dXNlcjpwYXNz"}}}"#;
        let auth = for_repo(Some(raw), "reg.io:5000/modules").unwrap();
        assert!(matches!(auth, RegistryAuth::Basic(ref u, _) if u == "user"));
        assert!(for_repo(Some(raw), "reg.io/modules").is_err());
    }

    #[test]
    fn docker_config_json_is_a_credential_source() {
        let config = br#"{"auths":{"https://index.reg.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
        let target = RegistryTarget::from_docker_config(
            "index.reg.io/modules",
            None,
            Some((Path::new("config.json"), config)),
            None,
        )
        .unwrap();
        assert!(matches!(target.auth().unwrap(), RegistryAuth::Basic(ref u, _) if u == "user"));
        let other = RegistryTarget::from_docker_config(
            "other.io/modules",
            None,
            Some((Path::new("config.json"), config)),
            None,
        )
        .unwrap();
        assert!(matches!(other.auth().unwrap(), RegistryAuth::Anonymous));
        let err = RegistryTarget::from_docker_config(
            "r/m",
            None,
            Some((Path::new("/x/config.json"), b"{\"auths\": 1}")),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(err, "/x/config.json: \"auths\" is not an object");
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
