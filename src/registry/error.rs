//! Why a registry operation failed, in one line without secrets, classified so that
//! the diagnosis can say what to do: a local configuration problem is never reported
//! as the registry's answer.

use std::fmt;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::error::joined_causes as chain;

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
    /// Our side is wrong before any request: the ModuleSource repo or the image
    /// reference does not parse.
    Config,
    /// The registry answered with an error that fits none of the above (5xx, 429 after
    /// the retries).
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
    /// A whole lookup that did not finish within `timeout`.
    pub fn timed_out(what: &str, timeout: std::time::Duration) -> Self {
        RegistryError::new(
            RegistryErrorKind::Timeout,
            format!(
                "{what}: no answer within {}",
                crate::output::humanize(timeout)
            ),
        )
    }

    pub(super) fn new(kind: RegistryErrorKind, message: impl Into<String>) -> Self {
        RegistryError {
            kind,
            message: message.into(),
        }
    }
}

/// 429 Too Many Requests or 503, as a bare status or as an OCI error envelope.
pub(super) fn is_busy(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ServerError { code, .. } => matches!(code, 429 | 503),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

pub(super) fn classify(what: &str, err: &OciDistributionError) -> RegistryError {
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
            } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
                // A TLS handshake answered with plain HTTP bytes.
                return RegistryError::new(
                    K::Tls,
                    format!(
                        "{what}: the registry answered in plain HTTP to an HTTPS request; it does not serve HTTPS on that port (use http:// in --registry-repo, or scheme: HTTP in the ModuleSource)"
                    ),
                );
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
