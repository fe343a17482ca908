//! The sandbox's OpenID Connect provider, for tests: fresh logins written as Deckhouse's
//! kubeconfig generator writes them (or as an exec plugin's token cache), and the
//! provider's test controls (revocation, held-back refreshes).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::state::{Oidc, State};

pub fn settings(state: &State) -> anyhow::Result<&Oidc> {
    state
        .oidc
        .as_ref()
        .context("this sandbox has no OpenID Connect provider (state.json without oidc)")
}

fn login_command(state: &State) -> anyhow::Result<Command> {
    let oidc = settings(state)?;
    let mut command = Command::new(&oidc.binary);
    command
        .arg("login")
        .arg("--issuer")
        .arg(&oidc.issuer)
        .arg("--ca")
        .arg(&state.ca_file)
        .arg("--client-id")
        .arg(&oidc.client_id)
        .arg("--client-secret-file")
        .arg(&oidc.client_secret_file)
        .arg("--username")
        .arg(&oidc.username)
        .arg("--password-file")
        .arg(&oidc.password_file);
    Ok(command)
}

fn run(mut command: Command) -> anyhow::Result<()> {
    let output = command.output().context("running mpo-oidc")?;
    if !output.status.success() {
        bail!(
            "mpo-oidc failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Logs in and writes a kubeconfig with an `auth-provider: oidc` user named
/// `user_name` (also the context's name, the current context).
pub fn login_kubeconfig(state: &State, path: &Path, user_name: &str) -> anyhow::Result<()> {
    let mut command = login_command(state)?;
    command
        .arg("--kubeconfig-out")
        .arg(path)
        .arg("--server")
        .arg(&state.api_server)
        .arg("--cluster-ca")
        .arg(&state.ca_file)
        .arg("--user-name")
        .arg(user_name);
    run(command)
}

/// Logs in and writes the tokens as `mpo-oidc get-token`'s cache file.
pub fn login_token_cache(state: &State, path: &Path) -> anyhow::Result<()> {
    let mut command = login_command(state)?;
    command.arg("--token-cache-out").arg(path);
    run(command)
}

fn curl(state: &State, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--cacert"])
        .arg(&state.ca_file)
        .args(args)
        .output()
        .context("running curl")?;
    if !output.status.success() {
        bail!(
            "curl failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Revokes a refresh token at the provider's revocation endpoint (RFC 7009).
pub fn revoke(state: &State, refresh_token: &str) -> anyhow::Result<()> {
    let oidc = settings(state)?;
    let secret = std::fs::read_to_string(&oidc.client_secret_file)?;
    let credentials = format!("{}:{}", oidc.client_id, secret.trim());
    curl(
        state,
        &[
            "-u",
            &credentials,
            "--data-urlencode",
            &format!("token={refresh_token}"),
            "--data-urlencode",
            "token_type_hint=refresh_token",
            &format!("{}/revoke", oidc.issuer),
        ],
    )
    .map(|_| ())
}

/// Makes the provider hold back the refresh of `refresh_token` for `seconds` before it
/// looks at the token (and rotates it).
pub fn hold_back_refresh(state: &State, refresh_token: &str, seconds: u32) -> anyhow::Result<()> {
    let oidc = settings(state)?;
    curl(
        state,
        &[
            "--data-urlencode",
            &format!("refresh_token={refresh_token}"),
            "--data-urlencode",
            &format!("seconds={seconds}"),
            &format!("{}/test/slow", oidc.issuer),
        ],
    )
    .map(|_| ())
}

/// Whether a held-back refresh of `refresh_token` has reached the provider.
pub fn refresh_arrived(state: &State, refresh_token: &str) -> anyhow::Result<bool> {
    let oidc = settings(state)?;
    let answer = curl(
        state,
        &[
            "-G",
            "--data-urlencode",
            &format!("refresh_token={refresh_token}"),
            &format!("{}/test/arrived", oidc.issuer),
        ],
    )?;
    Ok(answer.trim() == "true")
}
