//! Reading kubeconfig like kubectl: flags, multi-file $KUBECONFIG, contexts, users,
//! and clear errors for broken or missing files. `create --dry-run=client --force`
//! is used as the probe: it talks to the API (discovery, reads) but writes nothing.

use std::path::PathBuf;

use crate::support::{self, Run, state, unique};

fn probe(module: &str) -> Vec<String> {
    [
        "create",
        module,
        "--tag",
        "v1.0.0",
        "--dry-run=client",
        "--force",
        "-o",
        "name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_with(env_kubeconfig: Option<&str>, args: &[String]) -> Run {
    let mut command = support::command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    command.env_remove("KUBECONFIG");
    if let Some(value) = env_kubeconfig {
        command.env("KUBECONFIG", value);
    }
    support::run(command)
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let path = support::home_dir().join(format!("{}-{name}", unique("kc")));
    std::fs::write(&path, text).expect("writing a scratch kubeconfig");
    path
}

#[test]
fn kubeconfig_flag_before_and_after_the_subcommand() {
    let kubeconfig = state().kubeconfig.display().to_string();
    let module = unique("kc-flag");
    let mut after = probe(&module);
    after.extend(["--kubeconfig".to_string(), kubeconfig.clone()]);
    let run = run_with(None, &after);
    run.assert_code(0);
    assert_eq!(
        run.stdout.trim(),
        format!("modulepulloverride.deckhouse.io/{module}")
    );

    let mut before = vec![
        "--kubeconfig".to_string(),
        kubeconfig,
        "--context".to_string(),
        "sandbox".to_string(),
    ];
    before.extend(probe(&module));
    run_with(None, &before).assert_code(0);
}

#[test]
fn client_certificate_context_works() {
    let mut args = probe(&unique("kc-cert"));
    args.extend(["--context".to_string(), state().contexts.cert.clone()]);
    run_with(Some(&state().kubeconfig.display().to_string()), &args).assert_code(0);
}

#[test]
fn multi_file_kubeconfig_env_is_merged() {
    // The first file only chooses the context; the second holds everything else.
    let chooser = scratch(
        "chooser",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {}\nclusters: []\ncontexts: []\nusers: []\n",
            state().contexts.cert
        ),
    );
    let joined = format!("{}:{}", chooser.display(), state().kubeconfig.display());
    run_with(Some(&joined), &probe(&unique("kc-multi"))).assert_code(0);
}

#[test]
fn broken_kubeconfigs_give_clear_errors() {
    let garbage = scratch("garbage", "this: [is not: a kubeconfig\n\t");
    let cases: Vec<(Vec<String>, Option<String>, &str)> = vec![
        (
            vec!["--kubeconfig".into(), garbage.display().to_string()],
            None,
            "kubeconfig",
        ),
        (
            vec!["--kubeconfig".into(), "/nonexistent/kubeconfig".into()],
            None,
            "cannot read kubeconfig",
        ),
        (
            vec!["--context".into(), "no-such-context".into()],
            Some(state().kubeconfig.display().to_string()),
            "no-such-context",
        ),
        (vec![], Some(garbage.display().to_string()), "kubeconfig"),
    ];
    for (flags, env, expected) in cases {
        let mut args = probe(&unique("kc-bad"));
        args.extend(flags.clone());
        let run = run_with(env.as_deref(), &args);
        // A context not in the kubeconfig is exit 1, as kubectl; the others are 3.
        let code = if flags.iter().any(|f| f == "--context") {
            1
        } else {
            3
        };
        assert_eq!(run.code, code, "flags {flags:?}: {run:?}");
        assert!(
            run.stderr.starts_with("error: "),
            "flags {flags:?}: {run:?}"
        );
        assert!(
            run.stderr.contains(expected),
            "flags {flags:?}: expected {expected:?} in {run:?}"
        );
        assert!(run.stderr.contains("hint: "), "flags {flags:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
}

#[test]
fn unreachable_api_server_is_reported_with_its_address() {
    let text =
        std::fs::read_to_string(&state().kubeconfig).expect("reading the sandbox kubeconfig");
    let dead = text.replace(&state().api_server, "https://127.0.0.1:1");
    let path = scratch("dead", &dead);
    let mut args = probe(&unique("kc-dead"));
    args.extend([
        "--kubeconfig".to_string(),
        path.display().to_string(),
        "--request-timeout".into(),
        "5s".into(),
    ]);
    let run = run_with(None, &args);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{run:?}");
    assert!(run.stderr.contains("cannot reach"), "{run:?}");
}

// --- parity with kubectl (review B6, B7, C13; M1's connection flags) -------------------

fn admin_token() -> String {
    let text = std::fs::read_to_string(&state().kubeconfig).expect("kubeconfig");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("token: "))
        .find(|t| t.starts_with("admin-"))
        .expect("the admin token")
        .to_string()
}

#[test]
fn a_kubeconfig_list_skips_missing_files_as_kubectl_does() {
    let joined = format!(
        "/nonexistent/kubeconfig-a:{}:/nonexistent/kubeconfig-b",
        state().kubeconfig.display()
    );
    let run = run_with(Some(&joined), &probe(&unique("kc-missing")));
    run.assert_code(0);
    // Every file missing: an error naming them, not a silent anonymous connection.
    let run = run_with(
        Some("/nonexistent/kubeconfig-a:/nonexistent/kubeconfig-b"),
        &probe(&unique("kc-none")),
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/kubeconfig-a")
            && run.stderr.contains("/nonexistent/kubeconfig-b"),
        "{run:?}"
    );
}

#[test]
fn a_kubeconfig_parse_error_names_the_file_and_the_line() {
    let garbage = scratch(
        "parse",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {server: [oops\n",
    );
    for (env, flags) in [
        (Some(garbage.display().to_string()), vec![]),
        (
            Some(format!(
                "{}:{}",
                state().kubeconfig.display(),
                garbage.display()
            )),
            vec![],
        ),
        (
            None,
            vec!["--kubeconfig".to_string(), garbage.display().to_string()],
        ),
    ] {
        let mut args = probe(&unique("kc-parse"));
        args.extend(flags);
        let run = run_with(env.as_deref(), &args);
        assert_eq!(run.code, 3, "{run:?}");
        assert!(
            run.stderr.contains(&garbage.display().to_string()),
            "{run:?}"
        );
        assert!(run.stderr.contains("line 5"), "{run:?}");
        assert!(!run.stderr.contains("$KUBECONFIG"), "{run:?}");
    }
}

#[test]
fn unknown_user_context_and_cluster_are_errors_naming_what_exists() {
    for (flag, exists) in [
        ("--user", "\"readonly\""),
        ("--context", "\"sandbox-readonly\""),
        ("--cluster", "\"sandbox\""),
    ] {
        let module = unique("kc-unknown");
        let mut args = vec!["create", &module, "--tag", "v1.0.0", "--force"];
        args.extend([flag, "nope"]);
        let run = crate::support::mpo(&args);
        // Exit 1, as kubectl for a name the kubeconfig does not have.
        assert_eq!(run.code, 1, "{flag}: {run:?}");
        let kind = flag.trim_start_matches("--");
        assert!(
            run.stderr.contains(&format!("{kind} \"nope\" not found")),
            "{flag}: {run:?}"
        );
        assert!(run.stderr.contains(exists), "{flag}: {run:?}");
        assert!(!run.stderr.contains("system:anonymous"), "{flag}: {run:?}");
        // Nothing was created.
        let get = crate::support::kubectl(&["get", "modulepulloverrides.deckhouse.io", &module]);
        assert_ne!(get.code, 0, "{flag}: created {module}");
    }
}

/// Review B7: a user who may not read the API's discovery documents gets a hint with
/// a command that works (`discover` is no verb).
#[test]
fn a_forbidden_discovery_names_a_working_check() {
    let run = crate::support::mpo(&["status", "--offline", "--as", "system:anonymous"]);
    assert_eq!(run.code, 3, "{run:?}");
    let check = "kubectl auth can-i get /apis/deckhouse.io/v1alpha2";
    assert!(run.stderr.contains(check), "{run:?}");
    assert!(!run.stderr.contains("can-i discover"), "{run:?}");
    // The printed check is a command kubectl understands (for the admin: yes).
    let answer = crate::support::kubectl(&["auth", "can-i", "get", "/apis/deckhouse.io/v1alpha2"]);
    assert_eq!(answer.stdout.trim(), "yes", "{answer:?}");
    assert!(!answer.stderr.contains("Warning"), "{answer:?}");
}

#[test]
fn a_missing_exec_plugin_path_is_named() {
    let exec = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "/nonexistent/bin/no-such-cred",
        "interactiveMode": "IfAvailable",
    });
    let path = crate::login::exec_kubeconfig("exec-missing-path", exec);
    let run = crate::login::mpo_kubeconfig(&path);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/bin/no-such-cred"),
        "{run:?}"
    );
    assert!(run.stderr.contains("does not exist"), "{run:?}");
    assert!(!run.stderr.contains("os error"), "{run:?}");
}

#[test]
fn low_level_errors_are_said_in_plain_words() {
    let run = crate::support::mpo(&["status", "--offline", "--request-timeout", "1ms"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("did not answer within 1ms (--request-timeout)"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("deadline has elapsed"), "{run:?}");
    assert!(run.stderr.contains("raise --request-timeout"), "{run:?}");

    let http = state().registry("http").expect("plain HTTP registry");
    let repo = format!("https://{}/modules", http.host);
    let run = crate::support::mpo(&["registry", "tags", "plain-module", "--registry-repo", &repo]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("plain HTTP to an HTTPS request"),
        "{run:?}"
    );
    assert!(run.stderr.contains("http://"), "{run:?}");
    assert!(!run.stderr.contains("InvalidContentType"), "{run:?}");
}

/// The binary with no kubeconfig at all: only the connection flags.
fn without_kubeconfig(args: &[&str]) -> Run {
    let mut command = support::command(args);
    let home = support::temp_dir("kc-flags-home");
    command.env_remove("KUBECONFIG").env("HOME", home.path());
    support::run(command)
}

#[test]
fn connection_flags_override_the_kubeconfig_as_in_kubectl() {
    let token = admin_token();
    let ca = state().ca_file.display().to_string();
    let server = state().api_server.clone();
    let base = [
        "status",
        "--offline",
        "-o",
        "name",
        "--server",
        &server,
        "--token",
        &token,
    ];
    let mut with_ca = base.to_vec();
    with_ca.extend(["--certificate-authority", &ca]);
    without_kubeconfig(&with_ca).assert_code(0);
    let mut insecure = base.to_vec();
    insecure.push("--insecure-skip-tls-verify");
    without_kubeconfig(&insecure).assert_code(0);
    // Neither: the server's certificate is not trusted.
    let run = without_kubeconfig(&base);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("UnknownIssuer"), "{run:?}");
    // --token replaces the context's user: a read-only context with the admin token
    // may write (server-side dry run).
    let module = unique("kc-token");
    let run = support::mpo(&[
        "--context",
        &state().contexts.readonly,
        "--token",
        &token,
        "create",
        &module,
        "--tag",
        "v1.0.0",
        "--force",
        "--dry-run=server",
        "-o",
        "name",
    ]);
    run.assert_code(0);
    // Impersonation: the admin acting as readonly is refused; with a group that may, allowed.
    let run = support::mpo(&[
        "create",
        &module,
        "--tag",
        "v1.0.0",
        "--force",
        "--dry-run=server",
        "--as",
        "readonly",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("User \"readonly\" cannot create"),
        "{run:?}"
    );
    support::mpo(&[
        "create",
        &module,
        "--tag",
        "v1.0.0",
        "--force",
        "--dry-run=server",
        "-o",
        "name",
        "--as",
        "someone",
        "--as-group",
        "system:masters",
    ])
    .assert_code(0);
    // The token given on the command line is never printed, at any level.
    let mut loud = with_ca.clone();
    loud.push("--v=10");
    let run = without_kubeconfig(&loud);
    run.assert_code(0);
    assert!(!run.all().contains(&token), "token printed: {run:?}");
}

#[test]
fn kubectl_verbosity_levels_show_requests_without_secrets() {
    let api = state().api_server.clone();
    for form in [
        vec!["-v=6"],
        vec!["--v=6"],
        vec!["-v", "6"],
        vec!["--v", "6"],
    ] {
        let mut args = vec!["status", "--offline", "-o", "name"];
        args.extend(form.iter().copied());
        let run = support::mpo(&args);
        run.assert_code(0);
        let request = format!("GET {api}/apis/deckhouse.io/v1alpha2/modulepulloverrides");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&request) && l.contains(" 200 OK in ")),
            "{form:?}: {run:?}"
        );
        assert!(
            !run.stderr.contains("content-type:"),
            "headers below 8: {run:?}"
        );
    }
    // -v alone: notes only, no request lines.
    let run = support::mpo(&["status", "--offline", "-o", "name", "-v"]);
    run.assert_code(0);
    assert!(!run.stderr.contains(&format!("GET {api}")), "{run:?}");
    // 8: headers; a credential plugin's Authorization header is redacted.
    let cache = crate::login::token_cache("verbose-exec");
    let (id_token, refresh_token) = crate::login::cache_tokens(&cache);
    let exec = crate::login::get_token_exec("client.authentication.k8s.io/v1", &cache, &[]);
    let path = crate::login::exec_kubeconfig("verbose-exec", exec);
    let kubeconfig = path.display().to_string();
    let run = support::mpo(&["--kubeconfig", &kubeconfig, "status", "--offline", "--v=8"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("content-type: application/json"),
        "{run:?}"
    );
    assert!(run.stderr.contains("authorization: <redacted>"), "{run:?}");
    for secret in [&id_token, &refresh_token, &admin_token()] {
        assert!(!secret.is_empty());
        assert!(
            !run.all().contains(secret.as_str()),
            "secret printed: {run:?}"
        );
    }
    // The highest level with the sandbox kubeconfig and registry lookups, which are
    // shown from 6 on.
    let run = support::mpo(&["status", "--v=10"]);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("registry GET manifest") && l.contains(": ok in ")),
        "{run:?}"
    );
    for secret in [admin_token()].into_iter().chain(
        state()
            .registries
            .values()
            .filter_map(|r| r.password.clone()),
    ) {
        assert!(!run.all().contains(&secret), "secret printed: {run:?}");
    }
}
