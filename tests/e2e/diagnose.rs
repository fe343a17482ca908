//! explain, status and diff against the seeded message cases and fresh modules.

use crate::support::{
    eventually, kubectl, module_with_images, mpo, mpo_field, push_module, state, unique,
};

/// Merges `patch` (a JSON merge patch) into Module `name`, as the source controller or
/// the module manager would change it.
fn patch_module(name: &str, patch: &str) {
    kubectl(&[
        "patch",
        "modules.deckhouse.io",
        name,
        "--type=merge",
        "-p",
        patch,
    ])
    .assert_code(0);
}

/// A fix the plugin printed, run as a user pastes it into a shell.
fn run_fix(fix: &str) -> crate::support::Run {
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(fix)
        .env("KUBECONFIG", &state().kubeconfig);
    crate::support::run(shell)
}

#[test]
fn explain_names_the_cause_and_the_fix_for_each_message() {
    let cases = [
        ("ghost", "The module not found", "kubectl get modules"),
        (
            "ingress-nginx",
            "The module is embedded",
            "kubectl mpo delete ingress-nginx",
        ),
        (
            "disabled-module",
            "The module disabled",
            "kubectl patch moduleconfig disabled-module --type=merge -p '{\"spec\":{\"enabled\":true}}'",
        ),
        (
            "orphan-module",
            "The module does not have an active source",
            "kubectl get modulesources",
        ),
        (
            "two-sources",
            "The module does not have an active source",
            "\"source\":\"test\"",
        ),
        (
            "lost-source",
            "The source not found",
            "recreate ModuleSource removed-source",
        ),
        (
            "missing-tag",
            "Download error",
            "kubectl mpo registry tags missing-tag",
        ),
        (
            "bad-creds-module",
            "Download error",
            "kubectl patch modulesource bad-creds",
        ),
        ("no-ca-module", "Download error", "spec.registry.ca"),
        (
            "wrong-host-module",
            "Download error",
            "kubectl patch modulesource wrong-host",
        ),
    ];
    for (name, message, fix) in cases {
        let run = mpo(&["explain", name, "--no-color"]);
        assert_eq!(run.code, 1, "{name}: {run:?}");
        // The summary is a sentence naming the failed check and the message.
        let summary = run.stdout.lines().last().unwrap_or_default();
        assert!(
            summary.starts_with("Problem: ") && summary.contains(&format!("\"{message}")),
            "{name}: {run:?}"
        );
        assert!(
            run.stdout.contains(fix),
            "{name}: fix {fix:?} missing: {run:?}"
        );
    }
    // The aliases and a healthy module.
    mpo(&["why", "token-module"]).assert_code(0);
    mpo(&["doctor", "plain-module"]).assert_code(0);
}

#[test]
fn explain_json_is_structured_and_secret_free() {
    let run = mpo(&["explain", "bad-creds-module", "-o", "json", "-v", "-v"]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["healthy"], false);
    assert_eq!(report["predictedMessage"], "Download error");
    let registry = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "registry")
        .expect("registry step");
    assert_eq!(registry["state"], "failed");
    let password = state().registry("tls").unwrap().password.clone().unwrap();
    assert!(!run.all().contains(&password));
    assert!(!run.all().contains("dockerCfg\":"));
}

#[test]
fn explain_before_an_override_exists_and_after_a_fix_reports_staleness() {
    let name = unique("diag-fix");
    module_with_images(&name, false, &["v1"]);
    let before = mpo(&["explain", &name, "--tag", "v1"]);
    before.assert_code(1);
    assert!(before.stdout.contains("no override yet"), "{before:?}");
    mpo(&["create", &name, "--tag", "v1", "--force", "--wait"]).assert_code(1);

    kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"enabled":true}}"#,
    ])
    .assert_code(0);
    eventually(10, "the module to be enabled", || {
        mpo(&["explain", &name])
            .stdout
            .contains("status.message says \"The module disabled\"")
    });
    let run = mpo(&["explain", &name]);
    assert!(
        run.stdout.contains(&format!("kubectl mpo renew {name}")),
        "{run:?}"
    );
    mpo(&["renew", &name, "--wait"]).assert_code(0);
    mpo(&["explain", &name]).assert_code(0);
}

#[test]
fn status_shows_digests_sync_and_causes() {
    let name = unique("diag-status");
    let digests = crate::support::quiet_override(&name, &["v1"]);
    let run = mpo(&["status", "-o", "json"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let items = doc["items"].as_array().expect("items");
    let row = |n: &str| {
        items
            .iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("row {n}"))
            .clone()
    };
    assert_eq!(row(&name)["sync"], "in-sync");
    assert_eq!(row(&name)["registryDigest"], digests[0].as_str());
    assert_eq!(row("wrong-host-module")["sync"], "unknown");
    assert!(
        row("disabled-module")["cause"]
            .as_str()
            .unwrap()
            .contains("enabled: false")
    );

    let pushed = push_module(&name, "v1", "newer");
    // The digests are in the wide table (the default one fits 100 columns).
    let table = mpo(&["status", &name, "-o", "wide", "--no-color"]);
    table.assert_code(0);
    assert!(
        table.stdout.contains("behind") && table.stdout.contains(&pushed[7..19]),
        "{table:?}"
    );

    let offline = mpo(&["status", "--offline", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&offline.stdout).expect("JSON");
    assert!(
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["registryDigest"].is_null())
    );

    // A developer who may not read ModuleSources still gets the table.
    let developer = state()
        .contexts
        .developer
        .clone()
        .expect("developer context");
    let run = mpo(&["--context", &developer, "status", "--no-color"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&name) && run.stdout.contains("unknown"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("may not read ModuleSources") && run.stderr.contains("--registry-repo"),
        "says why and what to do: {run:?}"
    );
}

/// A user who may not read ModuleSources checks the registry through `--registry-repo`
/// with their own credentials: the digest, and a missing tag with the message the
/// controller would write; the report without the flag names the flag.
#[test]
fn explain_reaches_the_registry_through_registry_repo() {
    let name = unique("diag-explain-repo");
    let digests = crate::support::quiet_override(&name, &["v1"]);
    let developer = state()
        .contexts
        .developer
        .clone()
        .expect("developer context");
    let blind = mpo(&["--context", &developer, "explain", &name, "--no-color"]);
    assert!(
        blind
            .stdout
            .contains(&format!("kubectl mpo explain {name} --registry-repo")),
        "{blind:?}"
    );
    let tls = state().registry("tls").expect("tls registry");
    let run = crate::support::through_registry_repo(
        tls,
        "tls",
        &["--context", &developer, "explain", &name, "-o", "json"],
    );
    run.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["registryDigest"], digests[0].as_str(), "{run:?}");
    assert_eq!(report["sync"], "in-sync", "{run:?}");
    assert!(run.stderr.contains("not a ModuleSource"), "{run:?}");
    let missing = crate::support::through_registry_repo(
        tls,
        "tls",
        &[
            "--context",
            &developer,
            "explain",
            &name,
            "--tag",
            "no-such-tag",
            "-o",
            "json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&missing.stdout).expect("JSON");
    let registry_step = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["id"] == "registry")
        .cloned()
        .unwrap_or_else(|| panic!("a registry step: {missing:?}"));
    // The ModuleSource stays unread, so this is the registry step's own prediction.
    assert_eq!(registry_step["state"], "failed", "{missing:?}");
    assert_eq!(
        registry_step["controllerMessage"], "Download error",
        "{missing:?}"
    );
    assert!(
        registry_step["fix"][0]
            .as_str()
            .is_some_and(|fix| fix.contains("registry tags") && fix.contains("--registry-repo")),
        "{missing:?}"
    );
}

#[test]
fn diff_follows_the_digest_rule_and_shows_content_changes() {
    let name = unique("diag-diff");
    crate::support::quiet_override(&name, &["v1"]);
    mpo(&["diff", &name]).assert_code(0);
    push_module(&name, "v1", "changed values");
    let run = mpo(&["diff", &name, "--content", "--no-color"]);
    run.assert_code(1);
    assert!(run.stdout.contains("changed:  values.yaml"), "{run:?}");
    assert!(
        run.stdout.contains("+  note: \"changed values\""),
        "{run:?}"
    );
    assert!(run.stdout.contains("app image backend"), "{run:?}");
    let json = mpo(&["diff", &name, "--content", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["same"], false);
    assert_eq!(doc["content"]["images"][0]["name"], "backend");
}

#[test]
fn multi_arch_index_compares_the_amd64_child() {
    // Only this test uses `echo`.
    mpo(&["delete", "echo", "--yes", "--wait"]);
    mpo(&[
        "create",
        "echo",
        "--tag",
        "multiarch",
        "--wait",
        "--timeout",
        "60s",
    ])
    .assert_code(0);
    let run = mpo(&["diff", "echo", "-o", "json"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["same"], true, "{run:?}");
    assert!(doc["indexDigest"].as_str().unwrap().starts_with("sha256:"));
    assert_ne!(doc["indexDigest"], doc["registryDigest"]);
    assert_eq!(doc["clusterDigest"], doc["registryDigest"]);
    mpo(&["delete", "echo", "--yes", "--wait"]).assert_code(0);
    assert_eq!(mpo_field("echo", ".spec.imageTag"), "");
}

#[test]
fn the_printed_fix_for_two_sources_clears_the_problem() {
    let name = unique("diag-two");
    module_with_images(&name, true, &["v1"]);
    patch_module(
        &name,
        r#"{"properties":{"availableSources":["test","token"]}}"#,
    );
    eventually(10, "the module to lose its active source", || {
        mpo(&["explain", &name, "--tag", "v1"])
            .stdout
            .contains("has no active source")
    });
    mpo(&["create", &name, "--tag", "v1", "--force", "--wait"]).assert_code(1);
    let report = mpo(&["explain", &name, "--no-color"]);
    report.assert_code(1);
    let fix = report
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("fix:").map(str::trim))
        .expect("a fix line")
        .to_string();
    assert!(fix.starts_with("kubectl patch moduleconfig"), "{fix}");
    run_fix(&fix).assert_code(0);
    eventually(10, "the source to be chosen", || {
        mpo(&["explain", &name])
            .stdout
            .contains("active source: test")
    });
    mpo(&["renew", &name, "--wait"]).assert_code(0);
    assert_eq!(mpo_field(&name, ".status.message"), "Ready");
}

#[test]
fn colour_only_on_a_terminal_and_no_color_is_respected() {
    // `script` gives the command a pseudo-terminal.
    let with_tty = |no_color: bool| {
        let binary = crate::support::binary();
        let mut command = std::process::Command::new("script");
        command
            .args([
                "-qec",
                &format!("{} explain disabled-module", binary.display()),
                "/dev/null",
            ])
            .env("KUBECONFIG", &state().kubeconfig)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        crate::support::run(command)
    };
    // SGR sequences (`ESC[...m`) are colour; the spinner's line clearing is not.
    let coloured = |text: &str| {
        text.split('\u{1b}').skip(1).any(|rest| {
            rest.strip_prefix('[').is_some_and(|seq| {
                seq.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                    .starts_with('m')
            })
        })
    };
    assert!(coloured(&with_tty(false).stdout), "colour on a terminal");
    assert!(!coloured(&with_tty(true).stdout), "NO_COLOR respected");
    assert!(
        !mpo(&["explain", "disabled-module"])
            .stdout
            .contains("\u{1b}["),
        "no colour in a pipe"
    );
}

#[test]
fn single_manifest_digest_equals_docker_content_digest() {
    let tls = state().registry("tls").unwrap();
    let url = format!(
        "https://{}/v2/deckhouse/modules/echo/manifests/v1.0.0",
        tls.host
    );
    let mut curl = std::process::Command::new("curl");
    curl.args([
        "-sSI",
        "--cacert",
        &state().ca_file.display().to_string(),
        "-u",
    ])
    .arg(format!(
        "{}:{}",
        tls.username.as_deref().unwrap(),
        tls.password.as_deref().unwrap()
    ))
    .args([
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &url,
    ]);
    let head = crate::support::run(curl);
    head.assert_code(0);
    let header = head
        .stdout
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|v| v.trim().to_string())
        })
        .expect("Docker-Content-Digest header");
    let explain = mpo(&["explain", "echo", "--tag", "v1.0.0", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&explain.stdout).expect("JSON");
    assert_eq!(report["registryDigest"], header.as_str());
}

/// §3.6: without a ModuleConfig, the cluster's own edition (`ce` in the sandbox) and
/// bundle (`Default`) decide whether a module is on, not "any edition's Default";
/// `explain` names them and agrees with what the controller writes.
#[test]
fn the_bundle_default_follows_the_clusters_edition_and_bundle() {
    let name = unique("diag-bundle");
    module_with_images(&name, true, &["v1"]);
    kubectl(&["delete", "moduleconfig", &name, "--wait"]).assert_code(0);
    let accessibility = |ce: &str| {
        format!(
            r#"{{"properties":{{"accessibility":{{"editions":{{"_default":{{"enabledInBundles":["Default"]}},"ce":{{"enabledInBundles":[{ce}]}}}}}}}}}}"#
        )
    };
    patch_module(&name, &accessibility(r#""Minimal""#));
    mpo(&["create", &name, "--tag", "v1", "--force"]).assert_code(0);
    eventually(30, "the controller to report the module disabled", || {
        mpo_field(&name, ".status.message") == "The module disabled"
    });
    let report = mpo(&["explain", &name, "--no-color"]);
    report.assert_code(1);
    assert!(
        report
            .stdout
            .contains("the Default bundle of edition ce does not enable it"),
        "{report:?}"
    );
    assert!(report.stdout.contains("kind: ModuleConfig"), "{report:?}");

    patch_module(&name, &accessibility(r#""Minimal","Default""#));
    mpo(&["renew", &name, "--wait", "--timeout", "60s"]).assert_code(0);
    assert_eq!(mpo_field(&name, ".status.message"), "Ready");
    let report = mpo(&["explain", &name, "--no-color"]);
    report.assert_code(0);
    assert!(
        report
            .stdout
            .contains("enabled by default in the Default bundle of edition ce"),
        "{report:?}"
    );
}

/// §3.17: the ModuleConfig webhook refuses to enable an experimental module while the
/// deckhouse ModuleConfig does not allow them, so the fix `explain` prints allows them
/// first; the enabling command alone is what the webhook refuses.
#[test]
fn the_fix_for_a_disabled_experimental_module_allows_experimental_modules_first() {
    let name = unique("diag-exp");
    module_with_images(&name, false, &["v1"]);
    patch_module(&name, r#"{"properties":{"stage":"Experimental"}}"#);
    mpo(&["create", &name, "--tag", "v1", "--force"]).assert_code(0);
    let report = mpo(&["explain", &name, "--no-color"]);
    report.assert_code(1);
    let fixes: Vec<&str> = report
        .stdout
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("fix:"))
        .take_while(|line| !line.starts_with('✗') && !line.starts_with('✓'))
        .map(|line| line.trim_start_matches("fix:").trim())
        .collect();
    assert!(
        fixes[0].starts_with(
            "kubectl patch moduleconfig deckhouse --type=merge -p '{\"spec\":{\"settings\":{\"allowExperimentalModules\":true}}}'"
        ),
        "{report:?}"
    );
    assert!(
        fixes[1].starts_with(&format!("kubectl patch moduleconfig {name} ")),
        "{report:?}"
    );
    let alone = run_fix(fixes[1]);
    assert_ne!(alone.code, 0, "{alone:?}");
    assert!(
        alone
            .stderr
            .contains(&format!("the '{name}' module is experimental")),
        "{alone:?}"
    );
}
