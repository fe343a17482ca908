//! The API server pushing back or answering oddly (issue #18): real 429s from API
//! Priority and Fairness and from a re-initializing CRD storage, a ModuleConfig with a
//! fractional `spec.version` (valid: the field is a `number`), a watch whose permission
//! is revoked mid-wait, and a token service that grants only part of a batch.

use std::time::{Duration, Instant};

use crate::support::{command, kubectl, mpo, state, unique};

/// `apiserver_flowcontrol_rejected_requests_total` summed over the sandbox's throttled
/// priority level, read from the apiserver's own metrics.
fn throttled_rejections() -> f64 {
    let metrics = kubectl(&["get", "--raw", "/metrics"]);
    metrics.assert_code(0);
    metrics
        .stdout
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                && line.contains("priority_level=\"mpo-sandbox-throttled\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn apply(object: serde_json::Value) {
    crate::support::kubectl_apply(&object).assert_code(0);
}

/// Overrides with names starting with `prefix`, for a longer list.
fn many_overrides(prefix: &str, count: usize) {
    let items: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
                "metadata": {"name": format!("{prefix}-{i:02}")},
                "spec": {"imageTag": "v1", "scanInterval": "1h", "rollback": false},
            })
        })
        .collect();
    apply(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}));
}

#[test]
fn status_through_a_throttled_priority_level_rides_out_real_429s() {
    let throttled = state()
        .contexts
        .throttled
        .clone()
        .expect("the sandbox has a throttled context");
    let prefix = unique("apf");
    many_overrides(&prefix, 40);
    let before = throttled_rejections();
    // Several users of one priority level at once, as on a busy cluster; each `status`
    // itself sends its discovery and list requests concurrently. The level has one
    // seat and rejects instead of queueing.
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut command = command(&[
                "status",
                "--offline",
                "-o",
                "json",
                "-v",
                "--context",
                &throttled,
            ]);
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().expect("spawn")
        })
        .collect();
    let mut retried = 0;
    for child in children {
        let output = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
        let ours = doc["items"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|row| row["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(ours, 40, "{stdout}");
        assert!(!stdout.contains("retry"), "retries are never on stdout");
        if stderr.contains("429 Too Many Requests, Retry-After:") {
            retried += 1;
        }
    }
    let after = throttled_rejections();
    assert!(
        after > before,
        "the priority level rejected requests ({before} -> {after})"
    );
    assert!(retried > 0, "a rejection was retried after its Retry-After");
}

/// Changes a Deckhouse CRD's spec (the schema's description), which makes the
/// apiserver rebuild that resource's storage, as an upgrade of Deckhouse's CRDs does.
fn replace_crd(crd_name: &str, round: usize) {
    let crd = kubectl(&["get", "crd", crd_name, "-o", "json"]);
    crd.assert_code(0);
    let mut crd: serde_json::Value = serde_json::from_str(&crd.stdout).expect("CRD JSON");
    let versions = crd["spec"]["versions"].as_array_mut().expect("versions");
    for version in versions.iter_mut().filter(|v| v["schema"].is_object()) {
        version["schema"]["openAPIV3Schema"]["description"] =
            format!("{crd_name} (sandbox revision {round}-{})", unique("crd")).into();
    }
    crate::support::kubectl_with_stdin(&["replace", "-f", "-"], &crd.to_string()).assert_code(0);
}

#[test]
fn status_right_after_a_crd_is_replaced_succeeds() {
    // The first list after a resource's storage is rebuilt meets "storage is
    // (re)initializing" (429, Retry-After: 1) in most rounds. Before #18, a replaced
    // ModulePullOverride CRD made status exit 3, and a replaced ModuleConfig CRD made it
    // drop every ModuleConfig silently (wrong causes).
    let crds = [
        "modulepulloverrides.deckhouse.io",
        "moduleconfigs.deckhouse.io",
    ];
    let mut retried = 0;
    // On a loaded machine the first request may come after the storage is ready again;
    // rounds go on (at most 10) until one met the 429 and retried it.
    for round in 0..10 {
        if retried > 0 && round >= 4 {
            break;
        }
        replace_crd(crds[round % 2], round);
        let run = mpo(&["status", "--offline", "-o", "json", "-v"]);
        run.assert_code(0);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        // The ModuleConfigs were read, not dropped: the seeded disabled module's cause
        // comes from its ModuleConfig.
        let disabled = doc["items"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "disabled-module"))
            .unwrap_or_else(|| panic!("no disabled-module row: {run:?}"));
        assert!(
            disabled["cause"].as_str().is_some_and(|c| c
                .contains("ModuleConfig disabled-module has spec.enabled: false")),
            "round {round}: {disabled}\n{}",
            run.stderr
        );
        if run.stderr.contains("429 Too Many Requests") && run.stderr.contains("retry 1") {
            retried += 1;
        }
    }
    assert!(
        retried > 0,
        "the re-initializing storage answered 429 at least once and it was retried"
    );
}

#[test]
fn a_fractional_module_config_version_never_fails_a_command() {
    let name = unique("fractional");
    crate::support::module_with_images(&name, false, &["v1"]);
    kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"version":1.5}}"#,
    ])
    .assert_code(0);
    assert_eq!(
        kubectl(&[
            "get",
            "moduleconfigs.deckhouse.io",
            &name,
            "-o",
            "jsonpath={.spec.version}"
        ])
        .stdout
        .trim(),
        "1.5",
        "the CRD allows a fractional version"
    );
    apply(serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
        "metadata": {"name": name},
        "spec": {"imageTag": "v1", "scanInterval": "1h", "rollback": false},
    }));

    let status = mpo(&["status", &name, "--offline", "-o", "json"]);
    status.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    let cause = doc["items"][0]["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&format!("ModuleConfig {name} has spec.enabled: false")),
        "the ModuleConfig was read: {status:?}"
    );

    let explain = mpo(&["explain", &name, "--offline"]);
    explain.assert_code(1);
    assert!(
        explain.stdout.contains("spec.enabled: false"),
        "{explain:?}"
    );
    assert!(!explain.all().contains("cannot reach"), "{explain:?}");
}

/// A ServiceAccount that may manage overrides, with a token, and the kubeconfig that
/// uses it; returns (kubeconfig file, removed when dropped; binding name).
fn service_account_user(name: &str) -> (tempfile::NamedTempFile, String) {
    apply(
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": name, "namespace": "default"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name},
             "rules": [{"apiGroups": ["deckhouse.io"], "resources": ["*"], "verbs": ["*"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]},
        ]}),
    );
    let token = kubectl(&[
        "create",
        "token",
        name,
        "-n",
        "default",
        "--duration",
        "10m",
    ]);
    token.assert_code(0);
    let ca = std::fs::read(&state().ca_file).expect("CA");
    use base64::Engine;
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": state().api_server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca),
        }}],
        "users": [{"name": "sa", "user": {"token": token.stdout.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "sandbox", "user": "sa"}}],
    });
    let file = crate::support::temp_file(name, ".kubeconfig", &kubeconfig.to_string());
    (file, name.to_string())
}

#[test]
fn a_watch_refused_mid_wait_is_reported_at_once() {
    // The controller's registry stalls, so the wait would last its whole --timeout.
    let name = crate::faults::module_without_override("stall");
    // The file stays until the test ends: the spawned plugin reads it.
    let (kubeconfig_file, binding) = service_account_user(&unique("watcher"));
    let kubeconfig = kubeconfig_file.path().display().to_string();
    // --request-timeout 5s: each watch request lasts about 3 s, so the revoked
    // permission is checked again soon, as on a long wait.
    let mut child = command(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--force",
        "--wait",
        "--timeout",
        "120s",
        "--request-timeout",
        "5s",
        "--kubeconfig",
        &kubeconfig,
    ]);
    child
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = child.spawn().expect("spawn");
    crate::support::eventually(30, "the override to be created", || {
        kubectl(&["get", "modulepulloverrides.deckhouse.io", &name]).code == 0
    });
    std::thread::sleep(Duration::from_millis(700));
    kubectl(&["delete", "clusterrolebinding", &binding]).assert_code(0);
    let revoked = Instant::now();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        revoked.elapsed() < Duration::from_secs(9),
        "reported at the first refused watch, not after a grace period: {:?}",
        revoked.elapsed()
    );
    assert!(stderr.contains("forbidden"), "{stderr}");
    assert!(
        stderr.contains("modulepulloverrides.deckhouse.io"),
        "{stderr}"
    );
    assert!(stderr.contains("kubectl auth can-i"), "{stderr}");
    assert!(!stderr.contains("lost the API server"), "{stderr}");
}

#[test]
fn a_status_watch_refused_midway_is_reported_at_once() {
    // The file stays until the test ends: the spawned plugin reads it.
    let (kubeconfig_file, binding) = service_account_user(&unique("status-watcher"));
    let kubeconfig = kubeconfig_file.path().display().to_string();
    let mut child = command(&[
        "status",
        "--watch",
        "--offline",
        "--request-timeout",
        "5s",
        "--kubeconfig",
        &kubeconfig,
    ]);
    child
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = child.spawn().expect("spawn");
    // Longer than one watch request (about 3 s): a quiet watch is not a failure.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the watch keeps running while allowed"
    );
    kubectl(&["delete", "clusterrolebinding", &binding]).assert_code(0);
    let revoked = Instant::now();
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        revoked.elapsed() < Duration::from_secs(9),
        "{:?}",
        revoked.elapsed()
    );
    assert!(stdout.contains("NAME"), "the table came first: {stdout}");
    assert!(stderr.contains("forbidden"), "{stderr}");
    assert!(stderr.contains("kubectl auth can-i"), "{stderr}");
}

#[test]
fn a_token_service_granting_part_of_a_batch_still_resolves_every_lookup() {
    let partial = state()
        .registry("token-partial")
        .expect("the sandbox has a token-partial user");
    let prefix = unique("partial");
    let names: Vec<String> = (0..4).map(|i| format!("{prefix}-{i}")).collect();
    let digests: Vec<String> = names
        .iter()
        .map(|name| {
            crate::support::block_on(mpo_sandbox::fixtures::push_module_to(
                state(),
                "token",
                name,
                "v1",
                "partial build",
            ))
            .expect("push to the token registry")
        })
        .collect();
    for name in &names {
        apply(serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
            "metadata": {"name": name},
            "spec": {"imageTag": "v1", "scanInterval": "1h", "rollback": false},
        }));
    }
    let status = crate::support::status_through_registry_repo(partial, "token", &names);
    status.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    for (name, digest) in names.iter().zip(&digests) {
        let row = doc["items"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}: {status:?}"));
        assert_eq!(row["registryDigest"], digest.as_str(), "{row}");
    }

    // The batch went out, and the repositories it did not cover were asked for alone.
    let realm = partial.token_realm.clone().expect("token realm");
    let seen = std::process::Command::new("curl")
        .args(["-sf", &realm.replace("/token", "/requests")])
        .output()
        .expect("curl");
    let requests: Vec<Vec<String>> = serde_json::from_slice(&seen.stdout).expect("requests");
    let ours: Vec<&Vec<String>> = requests
        .iter()
        .filter(|scopes| {
            scopes
                .iter()
                .any(|s| s.contains(&prefix) && s.ends_with(":pull"))
        })
        .collect();
    assert!(
        ours.iter().any(|scopes| scopes.len() == names.len()),
        "one batch for all: {ours:?}"
    );
    let singles = ours.iter().filter(|scopes| scopes.len() == 1).count();
    assert!(
        singles >= names.len() - 1,
        "a token of its own for each repository the batch did not cover: {ours:?}"
    );
}
