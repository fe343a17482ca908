//! Logins that need work before the Kubernetes client is built, so that they behave as
//! in kubectl: `auth-provider: oidc` users (Deckhouse's kubeconfig generator) get their
//! id-token refreshed and both new tokens written back to the file they came from, and
//! exec credential plugins are checked (binary present, terminal when required).

mod exec;
mod kubeconfig_file;
mod oidc;
mod token_layer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use kube::config::{ExecAuthCluster, KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

pub use exec::describe_auth_error;
pub use token_layer::TokenLayer;

/// The kubeconfig files in the order kubectl reads them: `--kubeconfig`, else every
/// file of `$KUBECONFIG`, else `~/.kube/config`.
pub fn kubeconfig_paths(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    if let Some(value) = std::env::var_os("KUBECONFIG")
        && !value.is_empty()
    {
        return std::env::split_paths(&value)
            .filter(|path| !path.as_os_str().is_empty())
            .collect();
    }
    std::env::var_os("HOME")
        .map(|home| vec![Path::new(&home).join(".kube/config")])
        .unwrap_or_default()
}

/// Readies the credentials of the user the connection will use, in `kubeconfig` (the
/// merged view of `paths`): a fresh OIDC id-token (refreshed and written back when
/// needed); for an exec plugin, one checked run whose credential goes into the
/// kubeconfig (client certificate) or into the returned layer (token, fetched again
/// when it expires).
pub async fn prepare(
    kubeconfig: &mut Kubeconfig,
    paths: &[PathBuf],
    options: &KubeConfigOptions,
    timeout: Option<Duration>,
) -> Result<Option<TokenLayer>> {
    let Some(user) = selected_user(kubeconfig, options) else {
        return Ok(None);
    };
    let cluster_info = exec_cluster_info(kubeconfig, options);
    let Some(entry) = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|entry| entry.name == user)
    else {
        return Ok(None);
    };
    let Some(auth_info) = entry.auth_info.as_mut() else {
        return Ok(None);
    };
    if let Some(provider) = auth_info.auth_provider.as_mut()
        && provider.name == "oidc"
    {
        let file = kubeconfig_file::file_of_user(paths, &user).ok_or_else(|| {
            Error::runtime(format!(
                "cannot find the kubeconfig file that defines user {user:?}"
            ))
        })?;
        let id_token = oidc::fresh_id_token(&file, &user, timeout).await?;
        // The layer sends the id-token and refreshes it again when it expires during
        // the command; kube-client would keep sending the first one.
        auth_info.auth_provider = None;
        return Ok(Some(TokenLayer::oidc(file, &user, timeout, id_token)));
    }
    // kube-client uses a token or certificate before an exec plugin, as client-go does.
    let static_credentials = auth_info.token.is_some()
        || auth_info.token_file.is_some()
        || auth_info.client_certificate.is_some()
        || auth_info.client_certificate_data.is_some();
    let Some(exec) = auth_info.exec.as_mut().filter(|_| !static_credentials) else {
        return Ok(None);
    };
    let file = kubeconfig_file::file_of_user(paths, &user);
    exec::prepare(
        exec,
        &user,
        file.as_deref().and_then(Path::parent),
        exec::stdin_is_terminal(),
    )?;
    if exec.provide_cluster_info {
        exec.cluster = Some(cluster_info.map_err(|cause| {
            Error::runtime(format!(
                "the exec credential plugin of user {user:?} asks for the cluster (provideClusterInfo): {cause}"
            ))
        })?);
    }
    let run_exec = exec.clone();
    let run_user = user.clone();
    let credential = tokio::task::spawn_blocking(move || exec::run_plugin(&run_exec, &run_user))
        .await
        .map_err(|err| Error::runtime(format!("the exec credential plugin did not finish: {err}")))?
        .map_err(|message| {
            Error::runtime(message)
                .with_hint("fix the plugin's login (run it yourself to see more), or its settings in users[].user.exec")
        })?;
    let exec = exec.clone();
    auth_info.exec = None;
    Ok(match credential {
        exec::Credential::Certificate {
            certificate_pem,
            key_pem,
        } => {
            let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
            auth_info.client_certificate_data = Some(encode(&certificate_pem));
            auth_info.client_key_data = Some(encode(&key_pem).into());
            None
        }
        exec::Credential::Token { token, expires } => {
            Some(TokenLayer::exec(exec, &user, token, expires))
        }
    })
}

/// What a plugin with `provideClusterInfo` gets: the cluster entry of the context.
fn exec_cluster_info(
    kubeconfig: &Kubeconfig,
    options: &KubeConfigOptions,
) -> std::result::Result<ExecAuthCluster, String> {
    let cluster_name = match &options.cluster {
        Some(name) => name.clone(),
        None => {
            let context = options
                .context
                .as_ref()
                .or(kubeconfig.current_context.as_ref())
                .ok_or("no context")?;
            kubeconfig
                .contexts
                .iter()
                .find(|named| &named.name == context)
                .and_then(|named| named.context.as_ref())
                .map(|context| context.cluster.clone())
                .ok_or("the context has no cluster")?
        }
    };
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|named| named.name == cluster_name)
        .and_then(|named| named.cluster.as_ref())
        .ok_or_else(|| format!("cluster {cluster_name:?} not found"))?;
    ExecAuthCluster::try_from(cluster)
        .map_err(|_| "its certificate authority cannot be read".to_string())
}

/// The user name the connection will use: `--user`, else the user of the context
/// (`--context` or the current context).
fn selected_user(kubeconfig: &Kubeconfig, options: &KubeConfigOptions) -> Option<String> {
    if let Some(user) = &options.user {
        return Some(user.clone());
    }
    let context = options
        .context
        .as_ref()
        .or(kubeconfig.current_context.as_ref())?;
    kubeconfig
        .contexts
        .iter()
        .find(|named| &named.name == context)?
        .context
        .as_ref()?
        .user
        .clone()
}

/// The innermost cause of an error ("connection refused", "certificate unknown"),
/// or the error itself when that says nothing. Authentication failures get a
/// description without the credential plugin's command line, environment or output.
pub fn short_cause(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(description) = describe_auth_error(err) {
        return description;
    }
    let text = crate::error::innermost(err);
    if text.is_empty() {
        err.to_string()
    } else {
        text
    }
}
