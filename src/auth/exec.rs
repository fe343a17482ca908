//! Exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`, such as
//! kubelogin's `oidc-login get-token`). kube-client runs them and caches their
//! credential until `expirationTimestamp`; this fills in what client-go does besides
//! (`k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go`, release-1.33): a relative
//! command path is relative to the kubeconfig, a missing binary is named together with
//! the plugin's `installHint`, `interactiveMode: Always` without a terminal is an error
//! and `IfAvailable` without one runs the plugin non-interactively. Plugin failures are
//! reported without the command line, its environment or its output, which may carry
//! secrets.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use kube::client::AuthError;
use kube::config::{ExecConfig, ExecInteractiveMode};

use crate::error::{Error, Result};

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn prepare(
    exec: &mut ExecConfig,
    user: &str,
    kubeconfig_dir: Option<&Path>,
    terminal: bool,
) -> Result<()> {
    let Some(command) = exec
        .command
        .clone()
        .filter(|command| !command.trim().is_empty())
    else {
        return Err(Error::runtime(format!(
            "user {user:?} has an exec credential plugin without a command"
        ))
        .with_hint("set users[].user.exec.command in the kubeconfig"));
    };
    let resolved = resolve_command(&command, kubeconfig_dir, std::env::var_os("PATH"));
    match resolved {
        Some(path) => {
            if command.contains('/') {
                exec.command = Some(path.display().to_string());
            }
        }
        None => {
            let hint = exec
                .install_hint
                .clone()
                .filter(|hint| !hint.trim().is_empty())
                .unwrap_or_else(|| {
                    "install the plugin or fix users[].user.exec.command in the kubeconfig".into()
                });
            let place = if command.contains('/') {
                "does not exist".to_string()
            } else {
                "was not found on PATH".to_string()
            };
            return Err(Error::runtime(format!(
                "the exec credential plugin {command:?} of user {user:?} {place}"
            ))
            .with_hint(hint.trim().to_string()));
        }
    }
    match (exec.interactive_mode.clone(), terminal) {
        (Some(ExecInteractiveMode::Always), false) => {
            return Err(Error::runtime(format!(
                "the exec credential plugin {command:?} of user {user:?} needs a terminal (interactiveMode: Always), and standard input is not one"
            ))
            .with_hint("run the command in a terminal, or log in once there so that the plugin has a cached credential"));
        }
        (Some(ExecInteractiveMode::Never), _) | (_, true) => {}
        // IfAvailable (or unset, as in v1beta1) without a terminal: tell the plugin.
        (_, false) => exec.interactive_mode = Some(ExecInteractiveMode::Never),
    }
    Ok(())
}

/// Where the plugin binary is: a command with a slash is a path (relative ones are
/// relative to the kubeconfig's directory), else it is looked up on `PATH`.
fn resolve_command(
    command: &str,
    kubeconfig_dir: Option<&Path>,
    path_var: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if command.contains('/') {
        let path = match kubeconfig_dir {
            Some(dir) if Path::new(command).is_relative() => dir.join(command),
            _ => PathBuf::from(command),
        };
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(&path_var?)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A safe description of an authentication failure anywhere in `err`'s source chain:
/// kube-client's own messages for a failed plugin include the command line, its
/// environment and its raw output.
pub fn describe_auth_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(error) = current {
        if let Some(auth) = error.downcast_ref::<AuthError>() {
            return Some(describe(auth));
        }
        if let Some(credential) = error.downcast_ref::<super::token_layer::CredentialError>() {
            return Some(credential.0.clone());
        }
        current = error.source();
    }
    None
}

fn describe(err: &AuthError) -> String {
    match err {
        AuthError::AuthExecRun { out, .. } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last_lines: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            let tail = last_lines[last_lines.len().saturating_sub(3)..].join(" / ");
            let mut tail: String = tail.chars().take(400).collect();
            if tail.is_empty() {
                tail = "no message on stderr".into();
            }
            format!("the exec credential plugin failed ({}): {tail}", out.status)
        }
        AuthError::AuthExecStart(io) => format!("cannot start the exec credential plugin: {io}"),
        AuthError::AuthExecParse(_) | AuthError::ExecPluginFailed => {
            "the exec credential plugin did not print a valid ExecCredential".into()
        }
        AuthError::ExecMissingClusterInfo => {
            "the exec credential plugin asks for cluster info (provideClusterInfo) but the cluster entry is incomplete".into()
        }
        AuthError::MalformedTokenExpirationDate(_) => {
            "the exec credential plugin printed an invalid expirationTimestamp".into()
        }
        AuthError::MissingCommand => "the exec credential plugin has no command".into(),
        AuthError::InvalidBearerToken(_) => "the credential is not a valid bearer token".into(),
        AuthError::InvalidBasicAuth(_) => "the basic-auth credentials are invalid".into(),
        AuthError::UnrefreshableTokenResponse => {
            "the exec credential plugin returned a credential that cannot be refreshed".into()
        }
        other => format!("authentication failed: {}", first_line(&other.to_string())),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// What a plugin run handed out.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    Token {
        token: String,
        expires: Option<jiff::Timestamp>,
    },
    Certificate {
        certificate_pem: String,
        key_pem: String,
    },
}

/// Runs the plugin once as client-go does: `KUBERNETES_EXEC_INFO` with the interactive
/// flag and (with `provideClusterInfo`) the cluster; the terminal when interactive,
/// else no stdin and stderr captured for the error message.
pub fn run_plugin(exec: &ExecConfig, user: &str) -> std::result::Result<Credential, String> {
    let command = exec.command.clone().unwrap_or_default();
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    let mut process = std::process::Command::new(&command);
    process.args(exec.args.iter().flatten());
    for entry in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (entry.get("name"), entry.get("value")) {
            process.env(name, value);
        }
    }
    for name in exec.drop_env.iter().flatten() {
        process.env_remove(name);
    }
    let api_version = exec
        .api_version
        .clone()
        .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let mut spec = serde_json::json!({ "interactive": interactive });
    if exec.provide_cluster_info
        && let Some(cluster) = &exec.cluster
        && let Ok(cluster) = serde_json::to_value(cluster)
    {
        spec["cluster"] = cluster;
    }
    let info =
        serde_json::json!({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec});
    process.env("KUBERNETES_EXEC_INFO", info.to_string());
    process.stdout(std::process::Stdio::piped());
    if interactive {
        process.stdin(std::process::Stdio::inherit());
        process.stderr(std::process::Stdio::inherit());
    } else {
        process.stdin(std::process::Stdio::null());
        process.stderr(std::process::Stdio::piped());
    }
    let place = format!("the exec credential plugin {command:?} of user {user:?}");
    let output = process
        .output()
        .map_err(|err| format!("cannot start {place}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{place} failed ({}): {}",
            output.status,
            stderr_tail(&output.stderr)
        ));
    }
    parse_credential(&output.stdout).map_err(|cause| format!("{place} {cause}"))
}

fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let tail: String = lines[lines.len().saturating_sub(3)..]
        .join(" / ")
        .chars()
        .take(400)
        .collect();
    if tail.is_empty() {
        "no message on stderr".into()
    } else {
        tail
    }
}

/// Reads an ExecCredential (JSON, or YAML as client-go's decoder also accepts).
pub fn parse_credential(stdout: &[u8]) -> std::result::Result<Credential, String> {
    let invalid = || "did not print a valid ExecCredential".to_string();
    let text = std::str::from_utf8(stdout).map_err(|_| invalid())?;
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|_| invalid())?;
    let status = value.get("status").ok_or_else(invalid)?;
    let text_field = |key: &str| {
        status
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    if let (Some(certificate_pem), Some(key_pem)) = (
        text_field("clientCertificateData"),
        text_field("clientKeyData"),
    ) {
        return Ok(Credential::Certificate {
            certificate_pem,
            key_pem,
        });
    }
    let token = text_field("token").ok_or_else(invalid)?;
    let expires = match text_field("expirationTimestamp") {
        Some(stamp) => Some(
            stamp
                .parse::<jiff::Timestamp>()
                .map_err(|_| "printed an invalid expirationTimestamp".to_string())?,
        ),
        None => None,
    };
    Ok(Credential::Token { token, expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &str, mode: Option<ExecInteractiveMode>) -> ExecConfig {
        let mut config: ExecConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": command,
            "installHint": "install kubelogin: https://github.com/int128/kubelogin",
        }))
        .expect("exec config");
        config.interactive_mode = mode;
        config
    }

    #[test]
    fn missing_binary_is_named_with_the_install_hint() {
        let mut config = exec("kubectl-oidc_login-does-not-exist", None);
        let err = prepare(&mut config, "dev", None, true).expect_err("missing");
        assert!(
            err.message.contains("kubectl-oidc_login-does-not-exist"),
            "{}",
            err.message
        );
        assert!(err.message.contains("PATH"), "{}", err.message);
        assert!(err.hint.unwrap_or_default().contains("install kubelogin"));

        let mut config = exec("./bin/plugin", None);
        let err = prepare(&mut config, "dev", Some(Path::new("/nonexistent")), true)
            .expect_err("missing path");
        assert!(err.message.contains("does not exist"), "{}", err.message);
    }

    #[test]
    fn relative_commands_are_relative_to_the_kubeconfig() {
        let dir = std::env::temp_dir().join(format!("kubectl-mpo-exec-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).expect("dir");
        let plugin = dir.join("bin/plugin");
        std::fs::write(&plugin, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut config = exec("./bin/plugin", Some(ExecInteractiveMode::Never));
        prepare(&mut config, "dev", Some(&dir), false).expect("found");
        assert_eq!(
            config.command.as_deref(),
            Some(dir.join("./bin/plugin").to_str().expect("utf8"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interactive_modes_follow_the_terminal() {
        let mut always = exec("sh", Some(ExecInteractiveMode::Always));
        let err = prepare(&mut always, "dev", None, false).expect_err("no terminal");
        assert!(err.message.contains("needs a terminal"), "{}", err.message);
        prepare(&mut always, "dev", None, true).expect("terminal");

        let mut if_available = exec("sh", Some(ExecInteractiveMode::IfAvailable));
        prepare(&mut if_available, "dev", None, false).expect("no terminal");
        assert_eq!(
            if_available.interactive_mode,
            Some(ExecInteractiveMode::Never)
        );
        let mut if_available = exec("sh", Some(ExecInteractiveMode::IfAvailable));
        prepare(&mut if_available, "dev", None, true).expect("terminal");
        assert_eq!(
            if_available.interactive_mode,
            Some(ExecInteractiveMode::IfAvailable)
        );
    }
}
