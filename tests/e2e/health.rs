//! Beyond Ready (deckhouse-real §4): `--wait` follows a deploy to the running module,
//! `status` and `explain` show the module's health, and `logs` reads the deckhouse
//! controller's log through the API server's pods/log.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    block_on, command, eventually, kubectl, module_with_images, mpo, state, unique,
};

fn failing_hook_module(name: &str) {
    block_on(async {
        mpo_sandbox::fixtures::module_with_failing_hook(state(), name, "v1").await?;
        mpo_sandbox::fixtures::wait_settled(state(), name, true).await
    })
    .unwrap_or_else(|err| panic!("preparing {name}: {err:#}"));
}

fn bad_settings_module(name: &str) {
    block_on(async {
        mpo_sandbox::fixtures::module_with_bad_settings(state(), name, "v1").await?;
        mpo_sandbox::fixtures::wait_settled(state(), name, true).await
    })
    .unwrap_or_else(|err| panic!("preparing {name}: {err:#}"));
}

fn deckhouse_pods() -> Vec<String> {
    let run = kubectl(&[
        "-n",
        "d8-system",
        "get",
        "pods",
        "-l",
        "app=deckhouse",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    run.stdout.split_whitespace().map(str::to_string).collect()
}

fn module_field(name: &str, jsonpath: &str) -> String {
    kubectl(&[
        "get",
        "modules.deckhouse.io",
        name,
        "-o",
        &format!("jsonpath={{{jsonpath}}}"),
    ])
    .stdout
    .trim()
    .to_string()
}

#[test]
fn wait_follows_the_deploy_through_the_restart_until_the_module_runs() {
    let name = unique("health-run");
    module_with_images(&name, true, &["v1", "v2"]);
    let pods_before = deckhouse_pods();
    let run = mpo(&["create", &name, "--tag", "v1", "--wait", "-v"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("Running: module {name} runs v1")),
        "{run:?}"
    );
    // The stages, in order, on stderr (-v off a terminal).
    let stages: Vec<usize> = [
        "checking",
        "downloading",
        "installing",
        "restarting",
        "running",
    ]
    .iter()
    .map(|stage| {
        run.stderr
            .find(&format!("stage: {name}: {stage}"))
            .unwrap_or_else(|| panic!("no stage {stage}: {run:?}"))
    })
    .collect();
    assert!(stages.windows(2).all(|w| w[0] < w[1]), "{run:?}");
    // The deploy restarted Deckhouse: a new Pod, and the wait rode it out.
    let pods_after = deckhouse_pods();
    assert!(
        pods_after.iter().all(|pod| !pods_before.contains(pod)),
        "{pods_before:?} {pods_after:?}"
    );
    assert_eq!(module_field(&name, ".status.phase"), "Ready");
    assert_eq!(module_field(&name, ".properties.version"), "v1");

    // --wait-for=override keeps the override-only wait.
    let edit = mpo(&[
        "edit",
        &name,
        "--tag",
        "v2",
        "--wait",
        "--wait-for=override",
    ]);
    edit.assert_code(0);
    assert!(
        edit.stdout.contains("Ready:") && !edit.stdout.contains("Running:"),
        "{edit:?}"
    );

    // A forced renew (gen D) redeploys and restarts again; the wait follows it too.
    let renew = mpo(&["renew", &name, "--wait"]);
    renew.assert_code(0);
    assert!(
        renew
            .stdout
            .contains(&format!("Running: module {name} runs v2")),
        "{renew:?}"
    );
}

#[test]
fn wait_stops_early_with_the_hook_error_and_the_log_lines() {
    let name = unique("health-hook");
    failing_hook_module(&name);
    let started = Instant::now();
    let run = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "2m"]);
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it did not stop early"
    );
    let all = run.all();
    for expected in [
        "Module error:",
        "HookError",
        &format!("{name}/hooks/020-check-backend.sh"),
        "cannot reach the backend at backend.svc:8080: connection refused",
        "last error lines of the deckhouse log",
        &format!("kubectl mpo logs {name} --level error"),
    ] {
        assert!(all.contains(expected), "missing {expected:?}: {run:?}");
    }
}

#[test]
fn wait_stops_on_settings_that_fail_the_image_schema() {
    let name = unique("health-settings");
    bad_settings_module(&name);
    // The image's own schema refuses the settings before anything is written.
    let refused = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "2m"]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("replicas") && refused.stderr.contains("integer"),
        "{refused:?}"
    );
    // Forced, the controller's download validates the values against the same schema
    // and writes `Validation error: …` (docs/deckhouse-real.md §3.11): the wait ends
    // at once with it instead of waiting for a module that is never installed.
    let started = std::time::Instant::now();
    let forced = mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--force",
        "--wait",
        "--timeout",
        "2m",
    ]);
    forced.assert_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(90),
        "{forced:?}"
    );
    let both = format!("{}{}", forced.stdout, forced.stderr);
    assert!(
        both.contains("Validation error:") && both.contains("replicas"),
        "{forced:?}"
    );
    let explain = mpo(&["explain", &name, "--offline"]);
    explain.assert_code(1);
    assert!(explain.stdout.contains("Validation error"), "{explain:?}");
}

#[test]
fn status_and_explain_show_the_module_health() {
    let name = unique("health-status");
    failing_hook_module(&name);
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--wait",
        "--wait-for=override",
    ])
    .assert_code(0);
    eventually(30, "the module to fail", || {
        module_field(&name, ".status.phase") == "Error"
    });

    let table = mpo(&["status", &name, "--offline"]);
    table.assert_code(0);
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(header.contains("MODULE"), "{table:?}");
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(row.contains("Error"), "{table:?}");
    assert!(
        table
            .stdout
            .contains(&format!("{name}: Ready, but the module does not run")),
        "{table:?}"
    );

    let json = mpo(&["status", &name, "--offline", "-o", "json"]);
    json.assert_code(0);
    let parsed: Value = serde_json::from_str(&json.stdout).expect("json");
    let module = &parsed["items"][0]["module"];
    assert_eq!(module["phase"], "Error", "{module}");
    assert_eq!(module["ready"], false);
    assert_eq!(module["reason"], "HookError");
    assert_eq!(module["version"], "v1");
    assert!(
        module["hooksState"]
            .as_str()
            .is_some_and(|s| s.contains("020-check-backend.sh")),
        "{module}"
    );
    assert!(
        module["message"]
            .as_str()
            .is_some_and(|s| s.contains("connection refused")),
        "{module}"
    );

    let explain = mpo(&["explain", &name, "--offline"]);
    explain.assert_code(1);
    for expected in [
        format!("module {name} does not run"),
        "a hook failed".to_string(),
        format!("kubectl mpo logs {name} --level error"),
        "ModuleSource test reports no error".to_string(),
        "rescans every 3 minutes".to_string(),
    ] {
        assert!(
            explain.stdout.contains(&expected),
            "missing {expected:?}: {explain:?}"
        );
    }

    // A healthy module: phase Ready in the column, no cause line.
    let good = unique("health-good");
    module_with_images(&good, true, &["v1"]);
    mpo(&["create", &good, "--tag", "v1", "--wait"]).assert_code(0);
    let table = mpo(&["status", &good, "--offline"]);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&good))
        .unwrap_or_default();
    assert!(row.contains("Ready"), "{table:?}");
    assert!(!table.stdout.contains("does not run"), "{table:?}");
}

#[test]
fn logs_filter_to_the_module_by_level_and_tail_and_keep_plain_lines() {
    let name = unique("health-logs");
    failing_hook_module(&name);
    let other = unique("health-other");
    module_with_images(&other, true, &["v1"]);
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--wait",
        "--wait-for=override",
    ])
    .assert_code(0);
    mpo(&["create", &other, "--tag", "v1", "--wait"]).assert_code(0);
    // The failed hook is retried and logged again in whichever Pod runs now.
    let mut run = mpo(&["logs", &name]);
    eventually(30, "the hook's error in the log", || {
        run = mpo(&["logs", &name]);
        run.stdout.contains("Hook failed")
    });
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("{name}/hooks/020-check-backend.sh")),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains(&other),
        "another module's lines: {run:?}"
    );
    assert!(
        run.stdout.contains("leaderelection.go"),
        "a line that is not JSON was dropped: {run:?}"
    );

    let errors = mpo(&["logs", &name, "--level", "error"]);
    errors.assert_code(0);
    let json_lines: Vec<&str> = errors
        .stdout
        .lines()
        .filter(|l| !l.contains("leaderelection.go"))
        .collect();
    assert!(!json_lines.is_empty(), "{errors:?}");
    assert!(
        json_lines
            .iter()
            .all(|l| l.split_whitespace().nth(1) == Some("error")),
        "{errors:?}"
    );

    let tail = mpo(&["logs", &name, "--level", "error", "--tail", "2"]);
    assert_eq!(tail.stdout.lines().count(), 2, "{tail:?}");

    let json = mpo(&["logs", &name, "-o", "json", "--since", "10m"]);
    json.assert_code(0);
    let entries: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(entries.iter().any(|e| e["json"] == false), "{json:?}");
    assert!(
        entries
            .iter()
            .any(|e| e["level"] == "error" && e["hook"].as_str().is_some()),
        "{json:?}"
    );
    assert!(entries.iter().all(|e| {
        e["pod"]
            .as_str()
            .is_some_and(|p| p.starts_with("deckhouse-"))
    }));
}

#[test]
fn logs_follow_across_a_deckhouse_restart() {
    let name = unique("health-follow");
    module_with_images(&name, true, &["v1", "v2"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    let first_pods = deckhouse_pods();
    let mut child = command(&["logs", &name, "-f", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    // A deploy replaces the deckhouse Pod; the new Pod's lines about the module follow.
    mpo(&["edit", &name, "--tag", "v2", "--wait"]).assert_code(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_new_pod_run = false;
    let mut lines = Vec::new();
    while Instant::now() < deadline && !seen_new_pod_run {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let entry: Value = serde_json::from_str(&line).expect("json line");
            let pod = entry["pod"].as_str().unwrap_or_default().to_string();
            seen_new_pod_run = !first_pods.contains(&pod)
                && entry["module"] == name.as_str()
                && entry["message"] == "Module run succeeded";
            lines.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen_new_pod_run, "no line from the new Pod: {lines:#?}");
}

#[test]
fn logs_without_rbac_for_pods_log_get_the_usual_403() {
    let run = mpo(&["--context", &state().contexts.readonly, "logs", "echo"]);
    run.assert_code(3);
    assert!(run.stderr.contains("forbidden"), "{run:?}");
    assert!(
        run.stderr
            .contains("kubectl auth can-i get pods --subresource=log -n d8-system"),
        "{run:?}"
    );
}

#[test]
fn hostile_log_text_is_escaped_in_logs_and_in_a_failed_wait() {
    let name = unique("health-hostile");
    let hook = b"#!/bin/bash\necho \"\x1b]0;pwned\x07\x1b[31mred\xe2\x80\xae text\" >&2\nexit 1\n"
        .to_vec();
    block_on(mpo_sandbox::fixtures::push_module_with_files(
        state(),
        &name,
        "v1",
        vec![("hooks/010-hostile.sh".to_string(), hook)],
    ))
    .unwrap_or_else(|err| panic!("pushing {name}: {err:#}"));
    // The Module and its ModuleConfig, no further images.
    module_with_images(&name, true, &[]);
    let wait = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "2m"]);
    wait.assert_code(1);
    let mut logs = mpo(&["logs", &name, "--level", "error"]);
    eventually(30, "the hostile hook error in the log", || {
        logs = mpo(&["logs", &name, "--level", "error"]);
        logs.stdout.contains("red")
    });
    for run in [&wait, &logs] {
        let all = run.all();
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}') && !all.contains('\u{202e}'),
            "{run:?}"
        );
        assert!(all.contains("\\x1b]0;pwned\\x07"), "{run:?}");
    }
}

#[test]
fn logs_since_leaves_out_older_lines() {
    let name = unique("health-since");
    module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    // The module's Ready and Deckhouse's log line about it come close together, in
    // either order.
    eventually(10, "the module run in the log", || {
        let all = mpo(&["logs", &name]);
        all.code == 0 && all.stdout.contains("Module run succeeded")
    });
    std::thread::sleep(Duration::from_secs(3));
    let recent = mpo(&["logs", &name, "--since", "1s"]);
    recent.assert_code(0);
    assert!(
        !recent.stdout.contains("Module run succeeded"),
        "{recent:?}"
    );
}
