//! Registry access with a ModuleSource's repo, credentials, CA and scheme.
//!
//! The public surface (used by `status`, `explain`, `create`, `diff`, `registry`):
//! - [`SourceRegistry::from_source`]: a client for one ModuleSource (dockerCfg host
//!   matching, CA, scheme), or [`SourceRegistry::from_docker_config`] as a fallback.
//! - [`SourceRegistry::module_digest`]: the digest the Deckhouse controller would
//!   deploy for `<repo>/<module>:<tag>` (deckhouse-facts §4).
//! - [`RegistryError`]: what went wrong, classified, with text close to Deckhouse's
//!   `Download error: ...` and never containing credentials.

use std::fmt;
use std::time::Duration;

use crate::deckhouse::resources::ModuleSource;

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
    /// Anything else (5xx, 429 after retries...).
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
    // Filled in by the registry layer implementation.
    _private: (),
}

impl SourceRegistry {
    pub fn from_source(
        _source: &ModuleSource,
        _options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        Err(RegistryError {
            kind: RegistryErrorKind::Other,
            message: "registry access is not implemented yet".into(),
        })
    }

    pub async fn module_digest(
        &self,
        _module: &str,
        _tag: &str,
    ) -> Result<ResolvedDigest, RegistryError> {
        Err(RegistryError {
            kind: RegistryErrorKind::Other,
            message: "registry access is not implemented yet".into(),
        })
    }
}
