//! Preflight against the image itself: one read of the module image that keeps only
//! `module.yaml` and `openapi/config-values.yaml` (layers streamed, memory bounded by
//! those two files), and what the cluster says about the module's settings, versions
//! and required modules. The judging is in `deckhouse::image_checks`.

use crate::cluster::{Cluster, decode};
use crate::deckhouse::checks::{Step, StepId, StepState};
use crate::deckhouse::image_checks::{self, CONFIG_VALUES, ClusterEnv, MODULE_YAML};
use crate::deckhouse::resources::ModuleConfig;
use crate::registry::{ImageLimits, ReadPlan, SourceRegistry};

/// The image checks of `<module>:<tag>`; a failed read is an `Unknown` step (the
/// registry step already says why a tag cannot be reached).
pub async fn image_steps(
    cluster: &Cluster,
    client: &SourceRegistry,
    module: &str,
    tag: &str,
    settings: Option<&serde_json::Value>,
) -> Vec<Step> {
    let limits = ImageLimits {
        timeout: client_timeout(),
        ..ImageLimits::default()
    };
    let plan = ReadPlan::keep([MODULE_YAML, CONFIG_VALUES]);
    // The cluster's side is read while the image is.
    let (tree, env) = tokio::join!(
        client.image_tree(module, tag, &limits, &plan),
        cluster_env(cluster)
    );
    let tree = match tree {
        Ok(tree) => tree,
        Err(err) => {
            return vec![Step {
                id: StepId::ImageRead,
                state: StepState::Unknown,
                summary: format!(
                    "{module}:{tag} could not be read: settings, requirements and stage not checked"
                ),
                cause: Some(err.message),
                fix: Vec::new(),
                controller_message: None,
            }];
        }
    };
    let definition = tree.content(MODULE_YAML);
    let schema = tree.content(CONFIG_VALUES);
    let mut env = env;
    required_modules(
        cluster,
        &image_checks::required_modules(definition),
        &mut env,
    )
    .await;
    image_checks::image_steps(module, tag, definition, schema, settings, &env)
}

fn client_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

fn enabled(config: &ModuleConfig) -> bool {
    config.spec.enabled == Some(true)
}

/// Versions and ModuleConfigs the requirement and stage checks read; what cannot be
/// read is unknown, never an error.
async fn cluster_env(cluster: &Cluster) -> ClusterEnv {
    let configs = cluster.module_configs();
    let kubernetes = cluster.client.apiserver_version();
    let deckhouse = async { super::generation::deckhouse(cluster).await.0 };
    let deckhouse_config = decode::get_opt(&configs, "deckhouse");
    let (kubernetes, deckhouse, deckhouse_config) =
        tokio::join!(kubernetes, deckhouse, deckhouse_config);
    ClusterEnv {
        kubernetes_version: kubernetes.ok().map(|info| info.git_version),
        deckhouse_version: deckhouse,
        allow_experimental: match deckhouse_config {
            Ok(config) => Some(
                config
                    .and_then(|c| c.spec.settings)
                    .and_then(|s| s.get("allowExperimentalModules").and_then(|v| v.as_bool()))
                    .unwrap_or(false),
            ),
            Err(_) => None,
        },
        ..Default::default()
    }
}

/// Whether each module `module.yaml` requires is enabled (by its ModuleConfig).
async fn required_modules(cluster: &Cluster, required: &[String], env: &mut ClusterEnv) {
    let configs = cluster.module_configs();
    for name in required {
        let state = match decode::get_opt(&configs, name).await {
            Ok(config) => Some(config.as_ref().is_some_and(enabled)),
            Err(_) => None,
        };
        env.module_enabled.insert(name.clone(), state);
    }
}
