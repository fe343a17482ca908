//! `state.json`: the description of a running sandbox (see sandbox/README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub api_server: String,
    /// The controller generation the simulator plays (`A`…`D`, docs/deckhouse-real.md §1).
    #[serde(default = "default_generation")]
    pub generation: String,
    /// `child` or `index` (§3.1).
    #[serde(default = "default_digest_rule")]
    pub digest_rule: String,
    pub contexts: Contexts,
    pub ca_file: PathBuf,
    pub registries: BTreeMap<String, Registry>,
    /// The OpenID Connect provider and its kubeconfig-generator client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
    /// The kubelet log endpoint of the Node the deckhouse Pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<Kubelet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kubelet {
    /// Port on 127.0.0.1 (the Node's `daemonEndpoints.kubeletEndpoint.Port`)
    pub port: u16,
    /// Container logs: `<namespace>/<pod>/<container>.log`
    pub dir: PathBuf,
}

fn default_generation() -> String {
    "C".into()
}

fn default_digest_rule() -> String {
    "child".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Oidc {
    /// `https://127.0.0.1:PORT` (the sandbox CA signs its certificate)
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub username: String,
    pub password_file: PathBuf,
    /// `mpo-oidc`: `serve`, `login` (the kubeconfig generator), `get-token` (exec plugin)
    pub binary: PathBuf,
    /// The generator-style kubeconfig written at start-up.
    pub kubeconfig: PathBuf,
    /// e.g. `20s`
    pub id_token_lifetime: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contexts {
    pub admin: String,
    pub cert: String,
    pub readonly: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub developer: Option<String>,
    /// A reader whose requests go to a priority level with one seat (API Priority and
    /// Fairness, `sandbox/apf.yaml`), so that concurrent requests meet real 429s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registry {
    /// `host:port`
    pub host: String,
    /// `HTTPS` or `HTTP`
    pub scheme: String,
    /// `basic`, `bearer` or `none`
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_realm: Option<String>,
}

impl State {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is the sandbox up? run `make sandbox-up`)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The sandbox the current process should use: `$MPO_SANDBOX_DIR`, else
    /// `target/sandbox-test`, else `target/sandbox` relative to the workspace root.
    pub fn discover() -> anyhow::Result<Self> {
        if let Ok(dir) = std::env::var("MPO_SANDBOX_DIR") {
            return Self::load(Path::new(&dir));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for candidate in ["target/sandbox-test", "target/sandbox"] {
            let dir = root.join(candidate);
            if dir.join("state.json").exists() {
                return Self::load(&dir);
            }
        }
        anyhow::bail!("no running sandbox found: set MPO_SANDBOX_DIR or run `make sandbox-up`")
    }

    pub fn registry(&self, name: &str) -> anyhow::Result<&Registry> {
        self.registries
            .get(name)
            .with_context(|| format!("sandbox state has no registry {name:?}"))
    }
}
