//! Tags that say what they are: kind (module build, application image, release),
//! the digest the controller would deploy, creation time, size and provenance, read
//! concurrently from the manifests and image configs (no layers). `registry tags` and
//! the tag picker show them.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::Serialize;

use crate::deckhouse::layout::{APP_IMAGES, is_hash_tag};
use crate::registry::{ImageInfo, ImageLimits, ReadPlan, SourceRegistry};

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
    /// `build` (a module image), `release` (`vX.Y.Z`), `app-image` (an image whose
    /// digest a build lists in `images_digests.json`), `unlisted` (a hash tag that no
    /// build lists: an application image of a deleted build).
    pub kind: &'static str,
    /// The application image's name in `images_digests.json` (`app-image` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The builds whose `images_digests.json` lists this digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The index the tag points to, when it is one (`digest` is then its amd64 child).
    #[serde(skip)]
    pub index_digest: Option<String>,
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

/// The kind a tag's name suggests, before any build's `images_digests.json` is read:
/// a long hash tag is taken for an application image that no build lists.
pub fn kind_of(tag: &str) -> &'static str {
    if is_hash_tag(tag) {
        "unlisted"
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
            image: None,
            listed_by: Vec::new(),
            digest: None,
            index_digest: None,
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
                detail.index_digest = info.index_digest;
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

/// An application image as builds list it in `images_digests.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedImage {
    pub name: String,
    pub builds: Vec<String>,
}

/// The application images the given module images (builds) list, by digest. Each build
/// is read once, keeping only `images_digests.json` (layers streamed); a build that
/// cannot be read is counted in the second value and otherwise skipped.
pub async fn listed_app_images(
    client: &SourceRegistry,
    module: &str,
    builds: &[String],
) -> (BTreeMap<String, ListedImage>, usize) {
    let limits = ImageLimits {
        timeout: std::time::Duration::from_secs(120),
        ..ImageLimits::default()
    };
    let plan = ReadPlan::keep([APP_IMAGES]);
    let reads: Vec<_> = futures::stream::iter(builds.iter().map(|build| {
        let (limits, plan) = (&limits, &plan);
        async move {
            let tree = client.image_tree(module, build, limits, plan).await;
            let listed = tree
                .ok()
                .and_then(|tree| crate::app::images::app_images(&tree).ok());
            (build, listed)
        }
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await;
    let mut listed: BTreeMap<String, ListedImage> = BTreeMap::new();
    let mut unreadable = 0;
    for (build, images) in reads {
        let Some(images) = images else {
            unreadable += 1;
            continue;
        };
        for (name, digest) in images {
            let entry = listed.entry(digest).or_insert_with(|| ListedImage {
                name: name.clone(),
                builds: Vec::new(),
            });
            entry.builds.push(build.clone());
        }
    }
    (listed, unreadable)
}

/// Marks the tags whose digest (the image's, or its index's) a build lists as
/// `app-image`, with the image's name and the builds that list it.
pub fn mark_app_images(details: &mut [TagDetail], listed: &BTreeMap<String, ListedImage>) {
    for detail in details {
        let found = [&detail.digest, &detail.index_digest]
            .into_iter()
            .flatten()
            .find_map(|digest| listed.get(digest));
        if let Some(image) = found {
            detail.kind = "app-image";
            detail.image = Some(image.name.clone());
            detail.listed_by = image.builds.clone();
        }
    }
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
        assert_eq!(kind_of(&"a".repeat(64)), "unlisted");
        assert_eq!(size_text(1536), "1.5 KiB");
    }

    fn detail(tag: &str, digest: &str, index: Option<&str>) -> TagDetail {
        TagDetail {
            tag: tag.into(),
            kind: kind_of(tag),
            image: None,
            listed_by: Vec::new(),
            digest: Some(digest.into()),
            index_digest: index.map(Into::into),
            created: None,
            size: None,
            provenance: Provenance::default(),
            current: false,
            error: None,
        }
    }

    #[test]
    fn app_images_are_known_by_the_digest_a_build_lists() {
        let hash = "b".repeat(64);
        let other = "c".repeat(64);
        let mut details = vec![
            detail("main", "sha256:01", None),
            detail(&hash, "sha256:child", Some("sha256:index")),
            detail(&other, "sha256:03", None),
            detail("backend-latest", "sha256:04", None),
        ];
        let listed = BTreeMap::from([
            (
                "sha256:index".to_string(),
                ListedImage {
                    name: "backend".into(),
                    builds: vec!["main".into()],
                },
            ),
            (
                "sha256:04".to_string(),
                ListedImage {
                    name: "frontend".into(),
                    builds: vec!["main".into(), "v1.0.0".into()],
                },
            ),
        ]);
        mark_app_images(&mut details, &listed);
        let kinds: Vec<(&str, Option<&str>)> = details
            .iter()
            .map(|d| (d.kind, d.image.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("build", None),
                ("app-image", Some("backend")),
                ("unlisted", None),
                ("app-image", Some("frontend")),
            ]
        );
        assert_eq!(details[3].listed_by, ["main", "v1.0.0"]);
    }
}
