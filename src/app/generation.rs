//! Which Deckhouse ModulePullOverride controller generation a cluster runs
//! (docs/deckhouse-real.md §1), from what the API server serves and, when readable, the
//! Deckhouse version of the `deckhouse` Deployment in `d8-system`. B, C and D serve
//! the same APIs: without the Deckhouse version the answer says so rather than guess;
//! D's DKP release is unconfirmed, so a Deckhouse ≥ 1.77 is "C or D".

use serde::Serialize;

use crate::cluster::Cluster;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    /// `A`, `B`, `C or D`, `B, C or D`, or `unknown`.
    pub generation: String,
    /// Why, in one line.
    pub basis: String,
    /// ModulePullOverride versions the API server serves.
    pub mpo_versions: Vec<String>,
    /// The Deckhouse version (`v1.78.1`) when the Deployment is readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deckhouse_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    /// Module API versions other than v1alpha1 are served: a future variant (§3.18).
    pub future_module_api: bool,
}

async fn serves(cluster: &Cluster, group_version: &str, plural: &str) -> bool {
    cluster
        .client
        .list_api_group_resources(group_version)
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == plural))
}

/// `v1.78.1` → 78.
pub fn minor(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

/// The Deckhouse version and edition: the Deployment's `core.deckhouse.io/version` and
/// `core.deckhouse.io/edition` annotations, else a `vX.Y.Z` image tag (`…/ce:v1.66.4`).
pub async fn deckhouse(cluster: &Cluster) -> (Option<String>, Option<String>) {
    let Some(deployment) = cluster.deckhouse_deployment().await else {
        return (None, None);
    };
    let annotations = deployment.metadata.annotations.unwrap_or_default();
    let image = deployment
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|pod| pod.containers.into_iter().next())
        .and_then(|container| container.image)
        .unwrap_or_default();
    let (repository, tag) = image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .unwrap_or((image.as_str(), ""));
    let version = annotations
        .get("core.deckhouse.io/version")
        .cloned()
        .or_else(|| (tag.starts_with('v') && minor(tag).is_some()).then(|| tag.to_string()));
    let edition = annotations
        .get("core.deckhouse.io/edition")
        .cloned()
        .or_else(|| {
            repository
                .rsplit('/')
                .next()
                .filter(|last| matches!(*last, "ce" | "ee" | "be" | "se" | "se-plus" | "fe"))
                .map(str::to_string)
        });
    (version, edition)
}

pub async fn detect(cluster: &Cluster) -> Generation {
    let (v2, v1, module_v1, module_v2, module_beta, (version, edition)) = tokio::join!(
        serves(cluster, "deckhouse.io/v1alpha2", "modulepulloverrides"),
        serves(cluster, "deckhouse.io/v1alpha1", "modulepulloverrides"),
        serves(cluster, "deckhouse.io/v1alpha1", "modules"),
        serves(cluster, "deckhouse.io/v1alpha2", "modules"),
        serves(cluster, "deckhouse.io/v1beta1", "modules"),
        deckhouse(cluster),
    );
    let mut mpo_versions = Vec::new();
    if v1 {
        mpo_versions.push("v1alpha1".to_string());
    }
    if v2 {
        mpo_versions.push("v1alpha2".to_string());
    }
    let future_module_api = module_v2 || module_beta || !module_v1;
    let (generation, basis) = match (v2, v1, version.as_deref().and_then(minor)) {
        (false, false, _) => (
            "unknown",
            "the API server serves no ModulePullOverride version".to_string(),
        ),
        (false, true, _) => ("A", "ModulePullOverride is served as v1alpha1 only".to_string()),
        (true, _, Some(minor)) if minor < 77 => (
            "B",
            format!("ModulePullOverride v1alpha2 and Deckhouse 1.{minor} (before 1.77)"),
        ),
        (true, _, Some(minor)) => (
            "C or D",
            format!(
                "ModulePullOverride v1alpha2 and Deckhouse 1.{minor}: D (the renew key forces a redeploy) ships with PR #22716, whose DKP release is unconfirmed"
            ),
        ),
        (true, _, None) => (
            "B, C or D",
            "ModulePullOverride v1alpha2; the Deckhouse version is not readable (deployment d8-system/deckhouse), and B, C and D serve the same APIs: it depends on the DKP version".to_string(),
        ),
    };
    Generation {
        generation: generation.to_string(),
        basis,
        mpo_versions,
        deckhouse_version: version,
        edition,
        future_module_api,
    }
}

#[cfg(test)]
mod tests {
    use super::minor;

    #[test]
    fn minors() {
        assert_eq!(minor("v1.78.1"), Some(78));
        assert_eq!(minor("1.66"), Some(66));
        assert_eq!(minor("stable"), None);
    }
}
