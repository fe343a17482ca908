//! Against a sandbox whose API server serves ModulePullOverride v1alpha1 only (an older
//! cluster, where `spec.source` is required). Run by `make test` in its second phase.

#[path = "e2e/support.rs"]
mod support;

use support::{kubectl, module_with_images, mpo, mpo_field, unique};

#[test]
fn the_sandbox_serves_only_v1alpha1() {
    let v1 = kubectl(&["get", "--raw", "/apis/deckhouse.io/v1alpha1"]);
    v1.assert_code(0);
    assert!(v1.stdout.contains("\"modulepulloverrides\""), "{v1:?}");
    // v1alpha2 still exists for ModuleUpdatePolicy, without overrides.
    let v2 = kubectl(&["get", "--raw", "/apis/deckhouse.io/v1alpha2"]);
    v2.assert_code(0);
    assert!(!v2.stdout.contains("\"modulepulloverrides\""), "{v2:?}");
}

#[test]
fn create_sends_the_source_and_the_override_becomes_ready() {
    let name = unique("old-create");
    let digests = module_with_images(&name, true, &["v1"]);
    let run = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "60s"]);
    run.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.source"), "test");
    assert_eq!(mpo_field(&name, ".apiVersion"), "deckhouse.io/v1alpha1");
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
}

#[test]
fn status_explain_edit_and_delete_work_on_v1alpha1() {
    let name = unique("old-cmds");
    module_with_images(&name, true, &["v1", "v2"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    let status = mpo(&["status", &name, "-o", "json"]);
    status.assert_code(0);
    assert!(
        status.stdout.contains("\"sync\": \"in-sync\""),
        "{status:?}"
    );
    mpo(&["explain", &name]).assert_code(0);
    mpo(&["edit", &name, "--tag", "v2", "--wait"]).assert_code(0);
    assert_eq!(
        mpo_field(&name, ".spec.source"),
        "test",
        "edit keeps spec.source"
    );
    mpo(&["explain", "disabled-module"]).assert_code(1);
    mpo(&["delete", &name, "--yes", "--wait"]).assert_code(0);
}

/// Gen A (docs/deckhouse-real.md §3.3) checks neither the Module nor its ModuleConfig
/// and pulls from `spec.source`: a disabled module's override deploys, `explain`
/// predicts that (the empty success message, the module's state a warning) and that
/// the module does not run (§4), and a `spec.source` naming no ModuleSource is
/// predicted with gen A's own message.
#[test]
fn explain_judges_by_spec_source_as_gen_a_does() {
    let name = unique("old-judge");
    let digests = module_with_images(&name, false, &["v1"]);
    // Deployed, but a disabled module does not run: the wait says so.
    let created = mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "60s"]);
    created.assert_code(1);
    assert!(
        created
            .stdout
            .contains("the module is disabled (ModuleConfig)"),
        "{created:?}"
    );
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    assert_eq!(mpo_field(&name, ".status.message"), "");

    let report = mpo(&["explain", &name, "-o", "json"]);
    report.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&report.stdout).expect("JSON");
    assert_eq!(doc["predictedMessage"], "", "{report:?}");
    let steps = doc["steps"].as_array().expect("steps");
    let enabled = steps
        .iter()
        .find(|s| s["id"] == "enabled")
        .expect("the module's enabled step");
    assert_eq!(enabled["state"], "warning", "{report:?}");
    assert!(
        enabled["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("deploys anyway"),
        "{report:?}"
    );
    assert!(
        steps.iter().any(|s| s["id"] == "source"
            && s["summary"]
                .as_str()
                .unwrap_or_default()
                .contains("(spec.source)")),
        "{report:?}"
    );

    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"source":"no-such-source"}}"#,
    ])
    .assert_code(0);
    let expected = "ModuleSource \"no-such-source\" not found";
    let report = mpo(&["explain", &name, "-o", "json"]);
    report.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&report.stdout).expect("JSON");
    assert_eq!(doc["predictedMessage"], expected, "{report:?}");
    support::eventually(60, "gen A's own message", || {
        mpo_field(&name, ".status.message") == expected
    });
}
