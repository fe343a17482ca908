//! Logging in to DKP: kubeconfigs from Deckhouse's kubeconfig generator (auth-provider
//! oidc) against the sandbox's real OpenID Connect provider (rotating refresh tokens,
//! id-tokens that live seconds) and the real API server, next to plain kubectl; and
//! exec credential plugins.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::support::{self, Run, state, unique};

/// A fresh login written by the sandbox's kubeconfig generator, in its own file.
pub struct Login {
    pub kubeconfig: PathBuf,
    pub user: String,
}

pub fn login(name: &str) -> Login {
    let user = format!("{}@dkp-sandbox", unique(name));
    let kubeconfig = support::home_dir().join(format!("{}.kubeconfig", unique(name)));
    mpo_sandbox::oidc::login_kubeconfig(state(), &kubeconfig, &user)
        .unwrap_or_else(|err| panic!("logging in through the sandbox provider: {err:#}"));
    Login { kubeconfig, user }
}

pub fn document(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("reading the kubeconfig");
    serde_saphyr::from_str(&text).expect("the kubeconfig parses")
}

pub fn provider_config(path: &Path, user: &str) -> serde_json::Map<String, Value> {
    let document = document(path);
    document["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["name"] == user))
        .and_then(|u| u["user"]["auth-provider"]["config"].as_object())
        .cloned()
        .unwrap_or_else(|| panic!("no oidc user {user} in {}", path.display()))
}

/// (id-token, refresh-token) of the user.
pub fn tokens(login: &Login) -> (String, String) {
    let config = provider_config(&login.kubeconfig, &login.user);
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("id-token"), text("refresh-token"))
}

fn expiry(id_token: &str) -> i64 {
    let payload = id_token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["exp"].as_i64().expect("exp claim")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Sleeps until kubectl (and the plugin) consider the file's id-token expired: 10 s
/// before its `exp`.
pub fn wait_until_expired(login: &Login) {
    let (id_token, _) = tokens(login);
    let expired_at = expiry(&id_token) - 10;
    let wait = expired_at - now() + 1;
    if wait > 0 {
        std::thread::sleep(Duration::from_secs(wait as u64));
    }
}

/// The plugin against the login's kubeconfig: lists overrides and modules.
pub fn mpo_with(login: &Login, extra: &[&str]) -> Run {
    let kubeconfig = login.kubeconfig.display().to_string();
    let mut args = vec!["--kubeconfig", kubeconfig.as_str(), "status", "--offline"];
    args.extend(extra);
    support::mpo(&args)
}

fn kubectl_command(login: &Login) -> Command {
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(&login.kubeconfig)
        .args(["get", "modulepulloverrides.deckhouse.io", "-o", "name"])
        .env("HOME", support::home_dir())
        .stdin(Stdio::null());
    command
}

pub fn kubectl_with(login: &Login) -> Run {
    support::run(kubectl_command(login))
}

#[test]
fn expired_id_token_is_refreshed_written_back_and_kubectl_keeps_working() {
    let login = login("oidc-refresh");
    std::fs::set_permissions(&login.kubeconfig, std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    let before = document(&login.kubeconfig);
    let (old_id, old_refresh) = tokens(&login);

    wait_until_expired(&login);
    mpo_with(&login, &[]).assert_code(0);

    let (new_id, new_refresh) = tokens(&login);
    assert_ne!(new_id, old_id, "the id-token was not written back");
    assert_ne!(
        new_refresh, old_refresh,
        "the rotated refresh token was not written back"
    );
    assert!(expiry(&new_id) > now() + 5, "the new id-token is fresh");
    let mode = std::fs::metadata(&login.kubeconfig)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "permissions kept");
    // Nothing else in the file changed.
    let mut after = document(&login.kubeconfig);
    let config = after["users"][0]["user"]["auth-provider"]["config"]
        .as_object_mut()
        .expect("config");
    config.insert("id-token".into(), old_id.clone().into());
    config.insert("refresh-token".into(), old_refresh.clone().into());
    assert_eq!(after, before);
    assert!(
        !lock_file(&login).exists(),
        "the write lock was left behind"
    );

    // kubectl with the same file works, and after the next expiry it refreshes with the
    // refresh token the plugin wrote: the provider rotated the old one away.
    kubectl_with(&login).assert_code(0);
    wait_until_expired(&login);
    kubectl_with(&login).assert_code(0);
    let (kubectl_id, kubectl_refresh) = tokens(&login);
    assert_ne!(
        kubectl_refresh, new_refresh,
        "kubectl refreshed with the written token"
    );
    assert_ne!(kubectl_id, new_id);
    // And the plugin takes kubectl's tokens as they are.
    let bytes = std::fs::read(&login.kubeconfig).expect("read");
    mpo_with(&login, &[]).assert_code(0);
    assert_eq!(
        std::fs::read(&login.kubeconfig).expect("read"),
        bytes,
        "a fresh id-token is used as is"
    );
}

fn lock_file(login: &Login) -> PathBuf {
    PathBuf::from(format!("{}.lock", login.kubeconfig.display()))
}

#[test]
fn missing_id_token_is_fetched_with_the_refresh_token() {
    let login = login("oidc-missing");
    let text = std::fs::read_to_string(&login.kubeconfig).expect("read");
    let without: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("id-token:"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&login.kubeconfig, without).expect("write");
    mpo_with(&login, &[]).assert_code(0);
    let (id_token, _) = tokens(&login);
    assert!(expiry(&id_token) > now(), "a fresh id-token was written");
    kubectl_with(&login).assert_code(0);
}

#[test]
fn revoked_refresh_token_gives_a_clear_error_and_leaves_the_file_byte_identical() {
    let login = login("oidc-revoked");
    let (_, refresh_token) = tokens(&login);
    mpo_sandbox::oidc::revoke(state(), &refresh_token).expect("revoking");
    wait_until_expired(&login);
    let before = std::fs::read(&login.kubeconfig).expect("read");
    let run = mpo_with(&login, &[]);
    run.assert_code(3);
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains("has expired"), "{run:?}");
    assert!(run.stderr.contains(&login.user), "names the user: {run:?}");
    assert!(run.stderr.contains("log in again"), "{run:?}");
    assert!(run.stderr.contains("kubeconfig generator"), "{run:?}");
    assert!(!run.stderr.contains(&refresh_token), "{run:?}");
    assert_eq!(
        std::fs::read(&login.kubeconfig).expect("read"),
        before,
        "file changed"
    );
    assert!(!lock_file(&login).exists());
}

#[test]
fn concurrent_refreshes_by_the_plugin_and_kubectl_leave_a_working_file() {
    let login = login("oidc-race");
    let plugin_command = |login: &Login| {
        let kubeconfig = login.kubeconfig.display().to_string();
        let mut command = support::command(&["--kubeconfig", &kubeconfig, "status", "--offline"]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    };
    let kubectl_piped = |login: &Login| {
        let mut command = kubectl_command(login);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    };
    // Two rounds after two expiries: kubectl first, then the plugin first (kubectl a
    // moment later), so that each side wins the provider's rotation at least once.
    for plugin_first in [false, true] {
        wait_until_expired(&login);
        let mut children = Vec::new();
        for _ in 0..2 {
            if plugin_first {
                children.push(("plugin", plugin_command(&login).spawn().expect("plugin")));
                std::thread::sleep(Duration::from_millis(150));
                children.push(("kubectl", kubectl_piped(&login).spawn().expect("kubectl")));
            } else {
                children.push(("kubectl", kubectl_piped(&login).spawn().expect("kubectl")));
                children.push(("plugin", plugin_command(&login).spawn().expect("plugin")));
            }
        }
        for (who, child) in children {
            let output = child.wait_with_output().expect("wait");
            // kubectl loses the race when the plugin spent the refresh token first (its
            // own problem, as with two kubectl processes); the plugin never does.
            if who == "plugin" {
                assert!(
                    output.status.success(),
                    "plugin (plugin first: {plugin_first}): {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        // The file works for both.
        kubectl_with(&login).assert_code(0);
        mpo_with(&login, &[]).assert_code(0);
    }
    // And keeps working after the next expiry, refreshed by kubectl.
    wait_until_expired(&login);
    kubectl_with(&login).assert_code(0);
    mpo_with(&login, &[]).assert_code(0);
    assert!(!lock_file(&login).exists());
}

#[test]
fn ctrl_c_during_a_refresh_leaves_a_valid_working_file() {
    let login = login("oidc-ctrl-c");
    let (_, refresh_token) = tokens(&login);
    mpo_sandbox::oidc::hold_back_refresh(state(), &refresh_token, 4).expect("hold back");
    wait_until_expired(&login);
    let kubeconfig = login.kubeconfig.display().to_string();
    let mut command = support::command(&["--kubeconfig", &kubeconfig, "status", "--offline"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("plugin");
    support::eventually(30, "the refresh to reach the provider", || {
        mpo_sandbox::oidc::refresh_arrived(state(), &refresh_token).unwrap_or(false)
    });
    // What the terminal sends on Ctrl-C (the shell's kill builtin: no procps needed).
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("saved"), "{stderr}");

    // The file parses (kubectl reads it), holds the rotated tokens and works.
    let (id_token, new_refresh) = tokens(&login);
    assert_ne!(
        new_refresh, refresh_token,
        "the rotated refresh token was saved"
    );
    assert!(expiry(&id_token) > now());
    kubectl_with(&login).assert_code(0);
    mpo_with(&login, &[]).assert_code(0);
    wait_until_expired(&login);
    kubectl_with(&login).assert_code(0);
    let leftovers: Vec<String> = std::fs::read_dir(support::home_dir())
        .expect("list")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(&unique_stem(&login)) && name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn unique_stem(login: &Login) -> String {
    login
        .kubeconfig
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn a_user_in_the_second_kubeconfig_file_is_written_back_there() {
    let login = login("oidc-multi");
    let chooser = support::home_dir().join(format!("{}-chooser", unique("kc")));
    std::fs::write(
        &chooser,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {}\nclusters: []\ncontexts: []\nusers: []\n",
            login.user
        ),
    )
    .expect("write");
    let chooser_before = std::fs::read(&chooser).expect("read");
    let (old_id, _) = tokens(&login);
    wait_until_expired(&login);
    let mut command = support::command(&["status", "--offline"]);
    command.env(
        "KUBECONFIG",
        format!("{}:{}", chooser.display(), login.kubeconfig.display()),
    );
    support::run(command).assert_code(0);
    assert_ne!(
        tokens(&login).0,
        old_id,
        "written back to the file that defines the user"
    );
    assert_eq!(std::fs::read(&chooser).expect("read"), chooser_before);
}

#[test]
fn id_token_expiring_during_a_command_is_refreshed_before_the_next_request() {
    let name = unique("oidc-editor");
    support::module_with_images(&name, true, &["v1", "v2"]);
    support::mpo(&["create", &name, "--tag", "v1", "--scan-interval", "1h"]).assert_code(0);
    let login = login("oidc-editor");
    let (first_id, _) = tokens(&login);
    // The user stays in the editor until the id-token has expired; the patch that
    // follows needs a refreshed one.
    let expired_in = (expiry(&first_id) - 10 - now() + 1).max(0);
    let editor = support::home_dir().join(format!("{name}-editor.sh"));
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh
sleep {expired_in}
sed -i 's/imageTag: v1/imageTag: v2/' \"$1\"\n"
        ),
    )
    .expect("write editor");
    let kubeconfig = login.kubeconfig.display().to_string();
    let mut command = support::command(&["--kubeconfig", &kubeconfig, "edit", &name]);
    command.env("EDITOR", format!("sh {}", editor.display()));
    let run = support::run(command);
    run.assert_code(0);
    assert_eq!(support::mpo_field(&name, ".spec.imageTag"), "v2");
    let (second_id, _) = tokens(&login);
    assert_ne!(
        second_id, first_id,
        "refreshed during the command and written back"
    );
    kubectl_with(&login).assert_code(0);
}

// --- exec credential plugins -------------------------------------------------------------

/// A kubeconfig whose user runs `mpo-oidc get-token` (in the style of kubelogin) with
/// its own token cache from a fresh login.
pub fn exec_kubeconfig(name: &str, exec: Value) -> PathBuf {
    let path = support::home_dir().join(format!("{}.kubeconfig", unique(name)));
    let ca = std::fs::read(&state().ca_file).expect("CA");
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": state().api_server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca),
        }}],
        "users": [{"name": "exec-user", "user": {"exec": exec}}],
        "contexts": [{"name": "exec", "context": {"cluster": "sandbox", "user": "exec-user"}}],
        "current-context": "exec",
    });
    std::fs::write(&path, document.to_string()).expect("write");
    path
}

pub fn get_token_exec(api_version: &str, cache: &Path, extra: &[&str]) -> Value {
    let oidc = mpo_sandbox::oidc::settings(state()).expect("oidc");
    let mut args = vec![
        "get-token".to_string(),
        format!("--oidc-issuer-url={}", oidc.issuer),
        format!("--oidc-client-id={}", oidc.client_id),
        format!(
            "--oidc-client-secret-file={}",
            oidc.client_secret_file.display()
        ),
        format!("--certificate-authority={}", state().ca_file.display()),
        format!("--token-cache={}", cache.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    serde_json::json!({
        "apiVersion": api_version,
        "command": oidc.binary,
        "args": args,
        "env": [{"name": "MPO_TEST_SENTINEL", "value": "sentinel-exec-env-value"}],
        "provideClusterInfo": true,
        "interactiveMode": "IfAvailable",
        "installHint": "install the sandbox plugin with sandbox/scripts/build-oidc.sh",
    })
}

pub fn token_cache(name: &str) -> PathBuf {
    let path = support::home_dir().join(format!("{}.tokens", unique(name)));
    mpo_sandbox::oidc::login_token_cache(state(), &path).expect("login for the token cache");
    path
}

/// (id_token, refresh_token) of a `get-token` cache file.
pub fn cache_tokens(path: &Path) -> (String, String) {
    let cache: Value =
        serde_json::from_slice(&std::fs::read(path).expect("token cache")).expect("JSON");
    let text = |key: &str| cache[key].as_str().unwrap_or_default().to_string();
    (text("id_token"), text("refresh_token"))
}

pub fn mpo_kubeconfig(path: &Path) -> Run {
    let kubeconfig = path.display().to_string();
    support::mpo(&["--kubeconfig", &kubeconfig, "status", "--offline"])
}

#[test]
fn exec_plugin_logins_work_in_v1_and_v1beta1_with_cluster_info() {
    for api_version in [
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
    ] {
        let cache = token_cache("exec-ok");
        let exec = get_token_exec(api_version, &cache, &["--require-cluster-info"]);
        let path = exec_kubeconfig("exec-ok", exec);
        let run = mpo_kubeconfig(&path);
        run.assert_code(0);
        assert!(!run.all().contains("sentinel-exec-env-value"), "{run:?}");
    }
    // The same plugin refuses without the cluster info: provideClusterInfo is passed on.
    let cache = token_cache("exec-no-cluster");
    let mut exec = get_token_exec(
        "client.authentication.k8s.io/v1",
        &cache,
        &["--require-cluster-info"],
    );
    exec["provideClusterInfo"] = false.into();
    let run = mpo_kubeconfig(&exec_kubeconfig("exec-no-cluster", exec));
    run.assert_code(3);
    assert!(
        run.stderr.contains("no cluster in KUBERNETES_EXEC_INFO"),
        "{run:?}"
    );
}

#[test]
fn exec_plugin_failure_is_reported_without_its_command_line_or_environment() {
    let missing_cache = support::home_dir().join(format!("{}.tokens", unique("exec-fail")));
    let exec = get_token_exec("client.authentication.k8s.io/v1", &missing_cache, &[]);
    let run = mpo_kubeconfig(&exec_kubeconfig("exec-fail", exec));
    run.assert_code(3);
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains("exec credential plugin"), "{run:?}");
    assert!(run.stderr.contains("failed (exit status: 1)"), "{run:?}");
    assert!(
        run.stderr.contains("no cached login"),
        "the plugin's own message: {run:?}"
    );
    assert!(!run.stderr.contains("sentinel-exec-env-value"), "{run:?}");
    assert!(!run.stderr.contains("--oidc-client-secret-file"), "{run:?}");
    assert!(!run.stderr.contains("KUBERNETES_EXEC_INFO"), "{run:?}");
}

#[test]
fn missing_exec_plugin_binary_is_named() {
    let exec = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "kubectl-oidc_login-not-installed",
        "args": ["get-token"],
        "interactiveMode": "IfAvailable",
        "installHint": "install kubelogin: kubectl krew install oidc-login",
    });
    let run = mpo_kubeconfig(&exec_kubeconfig("exec-missing", exec));
    run.assert_code(3);
    assert!(
        run.stderr.contains("\"kubectl-oidc_login-not-installed\""),
        "{run:?}"
    );
    assert!(run.stderr.contains("not found on PATH"), "{run:?}");
    assert!(run.stderr.contains("hint: install kubelogin"), "{run:?}");
}

#[test]
fn interactive_exec_plugin_gets_the_terminal_and_needs_one() {
    let cache = token_cache("exec-tty");
    let mut exec = get_token_exec(
        "client.authentication.k8s.io/v1",
        &cache,
        &["--confirm-on-terminal"],
    );
    exec["interactiveMode"] = "Always".into();
    let path = exec_kubeconfig("exec-tty", exec);

    let run = mpo_kubeconfig(&path);
    run.assert_code(3);
    assert!(run.stderr.contains("needs a terminal"), "{run:?}");
    assert!(run.stderr.contains("interactiveMode: Always"), "{run:?}");

    let kubeconfig = path.display().to_string();
    let run = support::on_terminal(
        &["--kubeconfig", &kubeconfig, "status", "--offline"],
        &["\r"],
    );
    assert!(
        run.all().contains("Press Enter to log in"),
        "the plugin prompted on the terminal: {run:?}"
    );
    assert!(
        run.all()
            .contains(&format!("logged in for {}", state().api_server)),
        "{run:?}"
    );
}

/// A plugin that hands out the sandbox admin token with a given expiry and counts its
/// runs, to see kube's credential cache at work.
fn counting_plugin(name: &str, expires_in: &str) -> (PathBuf, PathBuf) {
    let dir = support::home_dir().join(unique(name));
    std::fs::create_dir_all(&dir).expect("dir");
    let count = dir.join("runs");
    let kubeconfig = std::fs::read_to_string(&state().kubeconfig).expect("kubeconfig");
    let admin_token = kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("token: admin-"))
        .map(|rest| format!("admin-{rest}"))
        .expect("the admin token");
    let script = dir.join("plugin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexp=$(date -u -d '{expires_in}' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{admin_token}\",\"expirationTimestamp\":\"%s\"}}}}' \"$exp\"\n",
            count.display()
        ),
    )
    .expect("write plugin");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exec = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "./plugin",
        "interactiveMode": "Never",
    });
    let path = exec_kubeconfig(name, exec);
    // The kubeconfig sits next to the plugin: "./plugin" is relative to it.
    let moved = dir.join("kubeconfig");
    std::fs::rename(&path, &moved).expect("move");
    (moved, count)
}

fn runs(count: &Path) -> usize {
    std::fs::read_to_string(count)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[test]
fn cached_exec_credentials_are_reused_until_their_expiration() {
    let (valid, valid_count) = counting_plugin("exec-cache", "+1 hour");
    mpo_kubeconfig(&valid).assert_code(0);
    assert_eq!(
        runs(&valid_count),
        1,
        "one run for all requests of the command"
    );

    // An already expired credential is fetched again for every request.
    let (expired, expired_count) = counting_plugin("exec-expired", "-1 hour");
    mpo_kubeconfig(&expired).assert_code(0);
    assert!(runs(&expired_count) > 1, "expired credential reused");
}
