//! How Deckhouse lays out a module registry (docs/deckhouse-facts.md §1): module images
//! at `<repo>/<module>:<tag>`, application images in the same repository tagged by
//! digest and listed in the module image's `images_digests.json`, release images at
//! `<repo>/<module>/release:<version>` with one tag per release channel carrying
//! `version.json`.

use serde_json::Value;

/// Release channels as Deckhouse tags them (kebab case).
pub const CHANNELS: [&str; 6] = [
    "alpha",
    "beta",
    "early-access",
    "stable",
    "rock-solid",
    "lts",
];

/// The file of a module image that lists its application images.
pub const APP_IMAGES: &str = "images_digests.json";

/// The repository of a module's release images.
pub fn release_repository(module: &str) -> String {
    format!("{module}/release")
}

/// Application images are tagged with long hashes; module images with branches or semver.
pub fn is_hash_tag(tag: &str) -> bool {
    tag.len() >= 32 && tag.chars().all(|c| c.is_ascii_hexdigit())
}

/// `images_digests.json` as name → digest pairs, in file order of the JSON object.
pub fn app_images(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|err| format!("images_digests.json is not valid JSON: {err}"))?;
    let map = value
        .as_object()
        .ok_or("images_digests.json is not a JSON object")?;
    Ok(map
        .iter()
        .map(|(name, digest)| {
            (
                name.clone(),
                digest.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// The `version` field of a release image's `version.json`.
pub fn release_version(raw: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(raw)
        .ok()?
        .get("version")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_are_application_images() {
        assert!(is_hash_tag(&"a1".repeat(32)));
        assert!(!is_hash_tag("main-patch-03354"));
        assert!(!is_hash_tag("v1.0.0"));
    }

    #[test]
    fn images_digests_and_version_files_are_read() {
        let images = app_images(br#"{"echo": "sha256:aa", "sidecar": "sha256:bb"}"#).unwrap();
        assert_eq!(images[0], ("echo".to_string(), "sha256:aa".to_string()));
        assert!(app_images(b"[1]").is_err());
        assert_eq!(
            release_version(br#"{"version": "v1.2.3"}"#).as_deref(),
            Some("v1.2.3")
        );
        assert_eq!(release_version(b"garbage"), None);
    }
}
