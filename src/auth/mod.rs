//! Logins that need work before the Kubernetes client is built, so that they behave as
//! in kubectl: `auth-provider: oidc` users (Deckhouse's kubeconfig generator) get their
//! id-token refreshed and both new tokens written back to the file they came from, and
//! exec credential plugins are checked (binary present, terminal when required).

mod exec;
mod kubeconfig_file;
mod oidc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};

pub use exec::describe_auth_error;

/// The kubeconfig files in the order kubectl reads them: `--kubeconfig`, else every
/// file of `$KUBECONFIG`, else `~/.kube/config`.
pub fn kubeconfig_paths(global: &GlobalArgs) -> Vec<PathBuf> {
    if let Some(path) = &global.kubeconfig {
        return vec![path.clone()];
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
/// needed) and checked exec plugin settings.
pub async fn prepare(
    kubeconfig: &mut Kubeconfig,
    paths: &[PathBuf],
    options: &KubeConfigOptions,
    timeout: Option<Duration>,
) -> Result<()> {
    let Some(user) = selected_user(kubeconfig, options) else {
        return Ok(());
    };
    let Some(entry) = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|entry| entry.name == user)
    else {
        return Ok(());
    };
    let Some(auth_info) = entry.auth_info.as_mut() else {
        return Ok(());
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
        provider.config.insert("id-token".to_string(), id_token);
    } else if let Some(exec) = auth_info.exec.as_mut() {
        let file = kubeconfig_file::file_of_user(paths, &user);
        exec::prepare(
            exec,
            &user,
            file.as_deref().and_then(Path::parent),
            exec::stdin_is_terminal(),
        )?;
    }
    Ok(())
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
