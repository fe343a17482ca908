//! The kubectl-mpo sandbox: state description, image building, seeding, the Deckhouse
//! controller simulator and the registry token service. Test infrastructure only; it
//! shares no code with the plugin.

pub mod bench;
pub mod deckhouse_pod;
pub mod fixtures;
pub mod hostile;
pub mod image;
pub mod kubelet;
pub mod oidc;
pub mod registry;
pub mod registry_front;
pub mod seed;
pub mod simulator;
pub mod state;
pub mod token_server;
pub mod webhook;

pub use state::State;

/// Installs ring as the process-wide TLS provider (reqwest is built without one).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for the sandbox API server as its admin.
pub async fn client(state: &State) -> anyhow::Result<kube::Client> {
    client_for(state, &state.contexts.admin).await
}

/// A client for one of the sandbox kubeconfig contexts.
pub async fn client_for(state: &State, context: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&state.kubeconfig)?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(kube::Client::try_from(config)?)
}
