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
