//! Image references built from their parts (`<repo>/<module>:<tag>` or `@digest`), and
//! the OCI distribution grammar they must follow
//! (https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests).

use oci_client::Reference;

use super::error::{RegistryError, RegistryErrorKind};

/// `<repo>/<module>:<tag>` (or `@digest`), for messages.
pub fn image_name(repo: &str, module: &str, tag_or_digest: &str) -> String {
    let separator = if tag_or_digest.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    format!("{repo}/{module}{separator}{tag_or_digest}")
}

/// `<repo>/<repository>:<tag>` (or `@digest`) from its parts. Built directly rather
/// than parsed: the parts are known, and the reference grammar's regex costs ~15 MB
/// and tens of milliseconds to compile on first use.
pub fn build(
    repo: &str,
    repository: &str,
    tag_or_digest: &str,
) -> Result<Reference, RegistryError> {
    let (host, repo_path) = repo.split_once('/').unwrap_or((repo, ""));
    let path = [repo_path, repository]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    let invalid = |what: &str| {
        RegistryError::new(
            RegistryErrorKind::Config,
            format!(
                "invalid image reference {}: {what}",
                image_name(repo, repository, tag_or_digest)
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

/// The OCI distribution grammar for repository names: components of lower-case letters
/// and digits joined by `.`, `_`, `__` or runs of `-`, separated by `/`.
pub fn valid_repository_path(path: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
