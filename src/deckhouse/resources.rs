//! Typed Deckhouse resources (group `deckhouse.io`, all cluster-scoped).
//!
//! Every field the cluster fills in is optional: objects come from clusters of many DKP
//! versions, and a missing field must give a clear message, never a decode failure.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Serialize};
/// Numbers no verdict depends on (weights, counts, versions) are kept as any JSON
/// number: a cluster that stores `1.0` or `1.5` where an integer was expected must not
/// make a command fail.
use serde_json::Number;

pub const GROUP: &str = "deckhouse.io";
/// Renew annotation of controllers since deckhouse PR #22716 (only `"true"` counts).
pub const RENEW_ANNOTATION: &str = "modules.deckhouse.io/renew";
/// The documented bare annotation; older controllers react to any annotation change.
pub const LEGACY_RENEW_ANNOTATION: &str = "renew";

/// Object metadata without `managedFields`: the server-side-apply bookkeeping is never
/// read here (kubectl hides it too), and in a list of a thousand objects it is a large
/// part of the memory.
fn metadata_without_managed_fields<'de, D>(deserializer: D) -> Result<ObjectMeta, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let mut metadata = ObjectMeta::deserialize(deserializer)?;
    metadata.managed_fields = None;
    Ok(metadata)
}

/// The ModulePullOverride API version a cluster serves, chosen by discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum MpoVersion {
    V1alpha1,
    #[default]
    V1alpha2,
}

impl MpoVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MpoVersion::V1alpha1 => "v1alpha1",
            MpoVersion::V1alpha2 => "v1alpha2",
        }
    }

    pub fn api_version(self) -> String {
        format!("{GROUP}/{}", self.as_str())
    }
}

/// A ModulePullOverride of either served version (v1alpha1 only adds `spec.source`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModulePullOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "metadata_without_managed_fields")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: MpoSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MpoStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpoSpec {
    #[serde(default)]
    pub image_tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<bool>,
    /// v1alpha1 only: the ModuleSource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpoStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Number>,
}

impl ModulePullOverride {
    pub fn message(&self) -> Option<&str> {
        self.status.as_ref()?.message.as_deref()
    }

    pub fn image_digest(&self) -> Option<&str> {
        self.status
            .as_ref()?
            .image_digest
            .as_deref()
            .filter(|d| !d.is_empty())
    }

    pub fn updated_at(&self) -> Option<&str> {
        self.status
            .as_ref()?
            .updated_at
            .as_deref()
            .filter(|d| !d.is_empty())
    }
}

impl kube::Resource for ModulePullOverride {
    type DynamicType = MpoVersion;
    type Scope = ClusterResourceScope;

    fn kind(_: &MpoVersion) -> Cow<'_, str> {
        "ModulePullOverride".into()
    }
    fn group(_: &MpoVersion) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(version: &MpoVersion) -> Cow<'_, str> {
        version.as_str().into()
    }
    fn plural(_: &MpoVersion) -> Cow<'_, str> {
        "modulepulloverrides".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A Module. Its data lives in a top-level `properties` object, not `spec`; newer DKP
/// versions may drop `properties`, so it is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Module {
    #[serde(default, deserialize_with = "metadata_without_managed_fields")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<ModuleProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModuleStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessibility: Option<ModuleAccessibility>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleAccessibility {
    #[serde(default)]
    pub editions: BTreeMap<String, EditionAccess>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditionAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    #[serde(default)]
    pub enabled_in_bundles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub conditions: Vec<ModuleCondition>,
    /// The hook error summary while the module is enabled (deckhouse-real §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks_state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleCondition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Module {
    pub fn condition(&self, type_: &str) -> Option<&ModuleCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}

impl kube::Resource for Module {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Module".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "modules".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Where modules come from: a registry repo with credentials.
#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize)]
#[kube(
    group = "deckhouse.io",
    version = "v1alpha1",
    kind = "ModuleSource",
    status = "ModuleSourceStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSourceSpec {
    #[serde(default)]
    pub registry: SourceRegistry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_channel: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRegistry {
    #[serde(default)]
    pub repo: String,
    /// base64 of a docker config.json; never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_cfg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSourceStatus {
    #[serde(default)]
    pub modules: Vec<SourceModule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceModule {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub overridden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A module's configuration: whether it is enabled and which source it uses.
#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize)]
#[kube(
    group = "deckhouse.io",
    version = "v1alpha1",
    kind = "ModuleConfig",
    status = "ModuleConfigStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ModuleConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<String>,
    /// The settings schema version: a `number` in the CRD as it ships (`1.5` is valid),
    /// and not needed for any verdict, so any number is kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Number>,
    /// The module's settings, checked against the image's `openapi/config-values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// `status.message`: `Error: <validation error>` for bad settings (deckhouse-real §4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A release of a module delivered through its update policy.
#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize)]
#[kube(
    group = "deckhouse.io",
    version = "v1alpha1",
    kind = "ModuleRelease",
    status = "ModuleReleaseStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReleaseSpec {
    #[serde(default)]
    pub module_name: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_fields_are_dropped_and_the_rest_of_metadata_kept() {
        let object = serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
            "metadata": {
                "name": "echo", "resourceVersion": "42",
                "annotations": {"renew": "1"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"imageTag": "pr1"},
        });
        let mpo: ModulePullOverride = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(mpo.metadata.name.as_deref(), Some("echo"));
        assert_eq!(mpo.metadata.resource_version.as_deref(), Some("42"));
        assert!(mpo.metadata.annotations.is_some());
        assert!(mpo.metadata.managed_fields.is_none());
        let module: Module = serde_json::from_value(object).unwrap();
        assert!(module.metadata.managed_fields.is_none());
        // An object without metadata still decodes.
        let bare: Module = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(bare.metadata.name.is_none());
    }

    #[test]
    fn numbers_no_verdict_needs_accept_any_number() {
        // ModuleConfig spec.version is a `number` in the CRD as it ships.
        let config: ModuleConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
            "metadata": {"name": "disabled-module"},
            "spec": {"enabled": false, "version": 1.5},
        }))
        .unwrap();
        assert_eq!(config.spec.enabled, Some(false));
        assert_eq!(
            config.spec.version.map(|v| v.to_string()).as_deref(),
            Some("1.5")
        );
        let module: Module = serde_json::from_value(serde_json::json!({
            "properties": {"source": "test", "weight": 900.0},
        }))
        .unwrap();
        assert_eq!(module.properties.unwrap().source.as_deref(), Some("test"));
        let mpo: ModulePullOverride = serde_json::from_value(serde_json::json!({
            "spec": {"imageTag": "v1"}, "status": {"message": "Ready", "weight": 1.0},
        }))
        .unwrap();
        assert_eq!(mpo.message(), Some("Ready"));
        let source: ModuleSource = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "test"}, "spec": {"registry": {"repo": "r/x"}},
            "status": {"modulesCount": 2.0},
        }))
        .unwrap();
        assert_eq!(source.spec.registry.repo, "r/x");
    }
}
