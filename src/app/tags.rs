//! Tags that say what they are: kind (module build, application image, release),
//! the digest the controller would deploy, creation time, size and provenance, read
//! concurrently from the manifests and image configs (no layers). `registry tags` and
//! the tag picker show them.

use futures::StreamExt;
use serde::Serialize;

use crate::deckhouse::layout::is_hash_tag;
use crate::registry::{ImageInfo, SourceRegistry};

/// OCI annotations (or labels) of provenance.
pub const SOURCE: &str = "org.opencontainers.image.source";
pub const REVISION: &str = "org.opencontainers.image.revision";
pub const VERSION: &str = "org.opencontainers.image.version";

/// Lookups in flight at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagDetail {
    pub tag: String,
    /// `build` (a module image), `app-image` (an application image, tagged by its
    /// digest as images_digests.json lists it), `release` (`vX.Y.Z`).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Provenance::is_empty")]
    pub provenance: Provenance,
    /// The override's current tag.
    pub current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where an image came from, from its OCI annotations or labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Provenance {
    pub fn is_empty(&self) -> bool {
        *self == Provenance::default()
    }

    pub fn of(info: &ImageInfo) -> Self {
        let get = |key: &str| info.annotations.get(key).cloned();
        Provenance {
            source: get(SOURCE),
            revision: get(REVISION),
            created: get(crate::registry::ANNOTATION_CREATED),
            version: get(VERSION),
        }
    }

    /// `source@revision` (short), or what there is.
    pub fn short(&self) -> Option<String> {
        let revision = self
            .revision
            .as_deref()
            .map(|r| r.chars().take(12).collect::<String>());
        match (&self.source, revision) {
            (Some(source), Some(revision)) => Some(format!("{source}@{revision}")),
            (None, Some(revision)) => Some(revision),
            (Some(source), None) => Some(source.clone()),
            (None, None) => self.version.clone(),
        }
    }
}

/// Which commit runs in the cluster (`deployed` digest) and which the tag holds in the
/// registry, from their OCI annotations or labels; `None` where an image cannot be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenancePair {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Provenance>,
    /// When the registry's image was built (its config's `created`, else the OCI
    /// annotation), for "behind for longer than a scan".
    #[serde(skip)]
    pub registry_built: Option<String>,
}

impl ProvenancePair {
    pub fn is_empty(&self) -> bool {
        self.cluster.as_ref().is_none_or(Provenance::is_empty)
            && self.registry.as_ref().is_none_or(Provenance::is_empty)
    }

    /// One line per side, for the human reports.
    pub fn lines(&self) -> Vec<String> {
        let side = |p: &Option<Provenance>| {
            p.as_ref()
                .and_then(Provenance::short)
                .unwrap_or_else(|| "no provenance annotations".into())
        };
        vec![
            format!("cluster runs:  {}", side(&self.cluster)),
            format!("registry has:  {}", side(&self.registry)),
        ]
    }
}

/// Reads both sides concurrently (manifests and configs only).
pub async fn provenance(
    client: &SourceRegistry,
    module: &str,
    tag: &str,
    deployed: Option<&str>,
) -> ProvenancePair {
    let registry = client.image_info(module, tag);
    let cluster = async {
        match deployed {
            Some(digest) => client.image_info(module, digest).await.ok(),
            None => None,
        }
    };
    let (registry, cluster) = tokio::join!(registry, cluster);
    let registry = registry.ok();
    ProvenancePair {
        cluster: cluster.as_ref().map(Provenance::of),
        registry: registry.as_ref().map(Provenance::of),
        registry_built: registry.and_then(|info| info.created),
    }
}

pub fn kind_of(tag: &str) -> &'static str {
    if is_hash_tag(tag) {
        "app-image"
    } else if is_release(tag) {
        "release"
    } else {
        "build"
    }
}

fn is_release(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The details of each tag, in the order given.
pub async fn details(
    client: &SourceRegistry,
    module: &str,
    tags: &[String],
    current: Option<&str>,
) -> Vec<TagDetail> {
    futures::stream::iter(tags.iter().map(|tag| async move {
        let info = client.image_info(module, tag).await;
        let mut detail = TagDetail {
            tag: tag.clone(),
            kind: kind_of(tag),
            digest: None,
            created: None,
            size: None,
            provenance: Provenance::default(),
            current: Some(tag.as_str()) == current,
            error: None,
        };
        match info {
            Ok(info) => {
                detail.provenance = Provenance::of(&info);
                detail.digest = Some(info.digest);
                detail.created = info.created;
                detail.size = Some(info.size);
            }
            Err(err) => detail.error = Some(err.message),
        }
        detail
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await
}

/// Newest first (tags without a creation time last, by name), or by name.
pub fn sort(details: &mut [TagDetail], by_name: bool) {
    if by_name {
        details.sort_by(|a, b| a.tag.cmp(&b.tag));
    } else {
        details.sort_by(|a, b| {
            let created = |d: &TagDetail| {
                d.created
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
            };
            created(b).cmp(&created(a)).then_with(|| a.tag.cmp(&b.tag))
        });
    }
}

/// `1.2 MiB`-style size.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of("v1.2.3"), "release");
        assert_eq!(kind_of("main"), "build");
        assert_eq!(kind_of(&"a".repeat(64)), "app-image");
        assert_eq!(size_text(1536), "1.5 KiB");
    }
}
