//! create / edit / renew / delete against the sandbox, checked with kubectl.

use crate::support::{
    eventually, kubectl, module_with_images, mpo, mpo_field, push_module, set_renew_style, unique,
};
use crate::validation::mpo_exists;

#[test]
fn create_waits_for_ready_with_the_registry_digest() {
    let name = unique("life-create");
    let digests = module_with_images(&name, true, &["v1"]);
    let run = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "60s"]);
    run.assert_code(0);
    assert!(run.stdout.contains("Ready"), "{run:?}");
    assert!(
        run.stdout.contains(&digests[0]),
        "says which digest will be deployed: {run:?}"
    );
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    // Both fields are always sent explicitly.
    assert_eq!(mpo_field(&name, ".spec.scanInterval"), "15s");
    assert_eq!(mpo_field(&name, ".spec.rollback"), "false");

    let again = mpo(&["create", &name, "--tag", "v1"]);
    again.assert_code(1);
    assert!(
        again.stderr.contains("already exists") && again.stderr.contains("kubectl mpo edit"),
        "{again:?}"
    );
}

#[test]
fn create_refuses_what_could_not_become_ready_unless_forced() {
    let name = unique("life-off");
    module_with_images(&name, false, &["v1"]);
    let run = mpo(&["create", &name, "--tag", "v1"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("\"enabled\":true"),
        "prints the fix: {run:?}"
    );
    assert!(!mpo_exists(&name));

    let missing = mpo(&["create", "echo", "--tag", "no-such-tag-here"]);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("does not exist") || missing.stderr.contains("manifest unknown"),
        "{missing:?}"
    );

    let forced = mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--force",
        "--wait",
        "--timeout",
        "30s",
    ]);
    forced.assert_code(1);
    assert!(forced.stdout.contains("The module disabled"), "{forced:?}");
    assert!(mpo_exists(&name));
}

#[test]
fn dry_runs_change_nothing() {
    let name = unique("life-dry");
    module_with_images(&name, true, &["v1"]);
    let client = mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    client.assert_code(0);
    assert!(client.stdout.contains("imageTag: v1"), "{client:?}");
    let server = mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    server.assert_code(0);
    assert!(server.stdout.contains("\"imageTag\": \"v1\""), "{server:?}");
    assert!(!mpo_exists(&name));
}

#[test]
fn edit_changes_only_the_given_fields_and_redeploys() {
    let name = unique("life-edit");
    let digests = module_with_images(&name, true, &["v1", "v2"]);
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--scan-interval",
        "2m",
        "--wait",
    ])
    .assert_code(0);
    let run = mpo(&["edit", &name, "--tag", "v2", "--wait", "--timeout", "60s"]);
    run.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");
    assert_eq!(
        mpo_field(&name, ".spec.scanInterval"),
        "2m",
        "untouched field kept"
    );
    eventually(20, "the new digest", || {
        mpo_field(&name, ".status.imageDigest") == digests[1]
    });

    let rollback = mpo(&["edit", &name, "--rollback=true"]);
    rollback.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.rollback"), "true");
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");
}

#[test]
fn edit_in_an_editor_keeps_a_concurrent_change_to_another_field() {
    let name = unique("life-editor");
    module_with_images(&name, true, &["v1", "v2"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    // The "editor" changes the tag while someone else changes the scan interval.
    let kubeconfig = crate::support::state().kubeconfig.display().to_string();
    let script = format!(
        "sed -i 's/imageTag: v1/imageTag: v2/' \"$1\" && KUBECONFIG={kubeconfig} kubectl patch modulepulloverrides.deckhouse.io {name} --type=merge -p '{{\"spec\":{{\"scanInterval\":\"5m\"}}}}' >/dev/null"
    );
    let editor = crate::support::temp_file(
        &format!("{name}-editor"),
        ".sh",
        &format!("#!/bin/sh\n{script}\n"),
    );
    let mut command = crate::support::command(&["edit", &name]);
    command.env("EDITOR", format!("sh {}", editor.path().display()));
    let run = crate::support::run(command);
    run.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");
    assert_eq!(
        mpo_field(&name, ".spec.scanInterval"),
        "5m",
        "the concurrent change survived"
    );
}

#[test]
fn renew_works_with_both_controller_styles() {
    let name = unique("life-renew");
    crate::support::quiet_override(&name, &["v1"]);

    set_renew_style(&name, "legacy");
    let new_digest = push_module(&name, "v1", "pushed again");
    let run = mpo(&["renew", &name, "--wait", "--timeout", "60s"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&new_digest[7..19]) || run.stdout.contains(&new_digest),
        "reports the new digest: {run:?}"
    );
    assert_eq!(mpo_field(&name, ".status.imageDigest"), new_digest);

    set_renew_style(&name, "modern");
    let before = mpo_field(&name, ".status.updatedAt");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = mpo(&["renew", &name, "--wait", "--timeout", "60s"]);
    run.assert_code(0);
    // A modern controller redeploys the unchanged digest and consumes the annotation.
    eventually(20, "a forced redeploy", || {
        mpo_field(&name, ".status.updatedAt") != before
    });
    eventually(20, "the annotation to be consumed", || {
        mpo_field(
            &name,
            ".metadata.annotations.modules\\.deckhouse\\.io/renew",
        )
        .is_empty()
    });
    // Back to the sandbox generation's own renew behaviour.
    set_renew_style(&name, "");
}

#[test]
fn delete_asks_or_needs_yes_and_waits_until_gone() {
    let name = unique("life-delete");
    module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    let refused = mpo(&["delete", &name]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    assert!(mpo_exists(&name));
    let run = mpo(&[
        "delete",
        &name,
        "--yes",
        "--rollback",
        "--wait",
        "--timeout",
        "60s",
    ]);
    run.assert_code(0);
    assert!(!mpo_exists(&name));
}

#[test]
fn read_only_user_gets_a_clear_403() {
    let name = unique("life-ro");
    module_with_images(&name, true, &["v1"]);
    let run = mpo(&[
        "--context",
        &crate::support::state().contexts.readonly,
        "create",
        &name,
        "--tag",
        "v1",
        "--force",
    ]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("forbidden") && run.stderr.contains("create"),
        "{run:?}"
    );
    assert!(run.stderr.contains("hint:"), "{run:?}");
    assert!(!mpo_exists(&name));
    let listed = kubectl(&["get", "modulepulloverrides.deckhouse.io", &name]);
    assert_ne!(listed.code, 0);
}

/// Applies a Deckhouse object as JSON with kubectl.
fn apply_json(object: serde_json::Value) {
    crate::support::kubectl_apply(&object).assert_code(0);
}

#[test]
fn create_preflight_refuses_each_blocked_case_with_its_cause() {
    let embedded = unique("pre-embedded");
    let orphan = unique("pre-orphan");
    let lost = unique("pre-lost");
    for (name, properties) in [
        (&embedded, serde_json::json!({"source": "Embedded"})),
        (&orphan, serde_json::json!({"availableSources": []})),
        (
            &lost,
            serde_json::json!({"availableSources": ["gone-source"]}),
        ),
    ] {
        apply_json(serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
            "metadata": {"name": name}, "properties": properties,
        }));
        apply_json(serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
            "metadata": {"name": name}, "spec": {"enabled": true},
        }));
    }
    let missing = unique("pre-missing");
    let cases = [
        (missing.as_str(), "does not exist"),
        (embedded.as_str(), "embedded"),
        (orphan.as_str(), "no ModuleSource lists this module"),
        (lost.as_str(), "ModuleSource gone-source does not exist"),
    ];
    for (name, cause) in cases {
        // The module manager needs a moment to reflect the new ModuleConfig.
        eventually(
            10,
            &format!("preflight of {name} to name {cause:?}"),
            || {
                let run = mpo(&["create", name, "--tag", "v1"]);
                run.code == 1 && run.stderr.contains(cause) && run.stderr.contains("fix:")
            },
        );
        assert!(!mpo_exists(name), "{name} was not created");
    }
    let forced = mpo(&["create", &lost, "--tag", "v1", "--force", "--wait"]);
    forced.assert_code(1);
    assert!(forced.stdout.contains("The source not found"), "{forced:?}");
}

#[test]
fn renew_wait_reports_unchanged_on_a_legacy_controller() {
    let name = unique("life-same");
    let digests = module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    set_renew_style(&name, "legacy");
    let run = mpo(&["renew", &name, "--wait", "--timeout", "60s"]);
    set_renew_style(&name, "");
    run.assert_code(0);
    assert!(run.stdout.contains("unchanged"), "{run:?}");
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    // Both annotations were set (docs/deckhouse-facts.md §3).
    assert!(!mpo_field(&name, ".metadata.annotations.renew").is_empty());
}

#[test]
fn racing_edits_never_lose_a_change() {
    let name = unique("life-race");
    module_with_images(&name, true, &["v1", "v2"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    for round in 0..3 {
        let interval = format!("{}m", round + 2);
        let tag = if round % 2 == 0 { "v2" } else { "v1" };
        let first = crate::support::command(&["edit", &name, "--tag", tag])
            .spawn()
            .expect("spawn");
        let second = crate::support::command(&["edit", &name, "--scan-interval", &interval])
            .spawn()
            .expect("spawn");
        for child in [first, second] {
            let output = child.wait_with_output().expect("wait");
            assert!(output.status.success(), "{output:?}");
        }
        assert_eq!(mpo_field(&name, ".spec.imageTag"), tag, "round {round}");
        assert_eq!(
            mpo_field(&name, ".spec.scanInterval"),
            interval,
            "round {round}"
        );
    }
}

#[test]
fn delete_asks_on_a_terminal() {
    let name = unique("life-ask");
    module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    let declined = crate::support::on_terminal(&["delete", &name], &["no\r"]);
    assert!(
        declined.stdout.contains("nothing was deleted"),
        "{declined:?}"
    );
    assert!(mpo_exists(&name), "declined: still there");
    let accepted = crate::support::on_terminal(&["delete", &name, "--wait"], &["yes\r"]);
    assert!(
        accepted.stdout.contains("keeps the dev build"),
        "{accepted:?}"
    );
    assert!(!mpo_exists(&name), "{accepted:?}");
}

#[test]
fn create_without_a_tag_offers_the_registry_tags_on_a_terminal() {
    let name = unique("life-pick");
    module_with_images(&name, true, &["v1", "v2"]);
    let run = crate::support::on_terminal(&["create", &name], &["v2", "\r"]);
    assert!(run.stdout.contains("created: tag v2"), "{run:?}");
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");
}
