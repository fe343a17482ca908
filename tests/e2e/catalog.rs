//! The ModuleSource controller makes Module objects from each source's registry
//! catalog and takes them away again (docs/deckhouse-real.md §3.14), and lists the
//! catalog in `status.modules` with `overridden`, kept versions and release errors
//! (§3.16). The plugin reads what it made.

use serde_json::Value;

use crate::support::{block_on, eventually, kubectl, kubectl_apply, mpo, mpo_field, state, unique};

fn object(kind: &str, name: &str) -> Option<Value> {
    let run = kubectl(&["get", kind, name, "-o", "json"]);
    (run.code == 0).then(|| serde_json::from_str(&run.stdout).expect("JSON"))
}

fn module(name: &str) -> Option<Value> {
    object("modules.deckhouse.io", name)
}

fn condition(module: &Value, kind: &str) -> (String, String) {
    let found = module["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or_default();
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_string();
    (text("status"), text("reason"))
}

fn sources_of(module: &Value) -> Vec<String> {
    module["properties"]["availableSources"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn modules_come_and_go_with_the_source_catalog() {
    let source = unique("cat-src");
    let kept = unique("cat-kept");
    let dropped = unique("cat-dropped");
    let orphaned = unique("cat-orphaned");
    let long = "a".repeat(65);
    let catalog = [
        kept.as_str(),
        dropped.as_str(),
        orphaned.as_str(),
        "modules",
        long.as_str(),
        "Not_Dns",
    ];
    let (path, digests) = block_on(mpo_sandbox::fixtures::catalog_source(
        state(),
        &source,
        &catalog,
    ))
    .expect("a source with its catalog");

    // One Module per catalog tag, as a new one is: not enabled, not installed.
    eventually(30, "the Modules of the catalog", || {
        [&kept, &dropped, &orphaned]
            .iter()
            .all(|name| module(name).is_some())
    });
    let fresh = module(&kept).expect("module");
    assert_eq!(sources_of(&fresh), std::slice::from_ref(&source));
    assert_eq!(fresh["status"]["phase"], "Available", "{fresh}");
    assert_eq!(condition(&fresh, "EnabledByModuleManager").0, "False");
    assert_eq!(
        condition(&fresh, "IsReady"),
        ("False".to_string(), "NotInstalled".to_string())
    );
    assert!(
        module("modules").is_none(),
        "the catalog's own tag is no module"
    );
    let listed: Vec<String> =
        object("modulesources.deckhouse.io", &source).expect("source")["status"]["modules"]
            .as_array()
            .expect("status.modules")
            .iter()
            .filter_map(|m| m["name"].as_str().map(str::to_string))
            .collect();
    // §3.16: the source pulls each module's release on its channel; these have none,
    // so each entry has an `error` and the source says so.
    let source_object = object("modulesources.deckhouse.io", &source).expect("source");
    assert_eq!(
        source_object["status"]["message"], "Some errors occurred. Inspect status for details",
        "{source_object}"
    );
    assert!(
        source_object["status"]["modules"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("release")),
        "{source_object}"
    );
    let mut want = vec![kept.clone(), dropped.clone(), orphaned.clone()];
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(
        got, want,
        "modules, names over 64 characters and non-DNS names are skipped"
    );

    // The plugin sees the new module: disabled until a ModuleConfig enables it.
    let report = mpo(&["explain", &kept, "--tag", "v1", "--no-color"]);
    report.assert_code(1);
    assert!(
        report
            .stdout
            .contains(&format!("Module {kept} is not enabled (no ModuleConfig)")),
        "{report:?}"
    );
    kubectl_apply(&serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
        "metadata": {"name": kept}, "spec": {"enabled": true},
    }))
    .assert_code(0);
    eventually(15, "the module manager to choose the source", || {
        mpo(&["explain", &kept, "--offline"])
            .stdout
            .contains(&format!("active source: {source}"))
    });
    mpo(&["create", &kept, "--tag", "v1", "--wait", "--timeout", "60s"]).assert_code(0);

    // §3.16: the source sees the override only at its next scan, and then keeps the
    // version it listed before (the override's build is not a release).
    let lag = format!("ModuleSource {source} does not show {kept} as overridden yet");
    let report = mpo(&["explain", &kept, "--no-color"]);
    assert!(report.stdout.contains(&lag), "{report:?}");
    // The release error does not block the override: a warning.
    report.assert_code(0);
    assert!(
        report.stdout.contains(&format!(
            "ModuleSource {source} reports an error for {kept}"
        )),
        "{report:?}"
    );
    let rescan = |channel: &str| {
        kubectl(&[
            "patch",
            "modulesources.deckhouse.io",
            &source,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"releaseChannel":"{channel}"}}}}"#),
        ])
        .assert_code(0);
    };
    rescan("Beta");
    let entry = || {
        object("modulesources.deckhouse.io", &source).expect("source")["status"]["modules"]
            .as_array()
            .and_then(|list| list.iter().find(|m| m["name"] == kept.as_str()).cloned())
            .unwrap_or_default()
    };
    eventually(30, "the source to list the override", || {
        entry()["overridden"] == true
    });
    assert_eq!(entry()["version"], "", "the old version is kept");
    assert!(
        entry().get("error").is_none(),
        "an overridden module is not pulled"
    );
    assert_eq!(
        module(&kept).expect("module")["properties"]["version"],
        "v1"
    );
    let report = mpo(&["explain", &kept, "--no-color"]);
    report.assert_code(0);
    assert!(!report.stdout.contains(&lag), "{report:?}");
    assert!(
        report.stdout.contains(&format!(
            "ModuleSource {source} reports no error for {kept}"
        )),
        "{report:?}"
    );

    // Tags forgotten by the catalog: the source leaves those Modules, and one left with
    // no source is deleted unless it is enabled.
    for digest in &digests[..2] {
        block_on(mpo_sandbox::fixtures::delete_catalog_tag(
            state(),
            &path,
            digest,
        ))
        .expect("drop a catalog tag");
    }
    rescan("Stable");
    eventually(30, "the forgotten, disabled module to go", || {
        module(&dropped).is_none()
    });
    let enabled = module(&kept).expect("an enabled module stays");
    assert!(sources_of(&enabled).is_empty(), "{enabled}");
    assert_eq!(
        enabled["properties"]["source"],
        source.as_str(),
        "{enabled}"
    );
    assert_eq!(
        sources_of(&module(&orphaned).expect("still listed")),
        std::slice::from_ref(&source)
    );

    // The source deleted: its disabled module goes; the enabled one keeps naming it,
    // and the override is refused as the controller refuses it.
    kubectl(&["delete", "modulesources.deckhouse.io", &source]).assert_code(0);
    eventually(30, "the deleted source's module to go", || {
        module(&orphaned).is_none()
    });
    let report = mpo(&["explain", &kept, "--no-color"]);
    report.assert_code(1);
    assert!(
        report
            .stdout
            .contains(&format!("ModuleSource {source} does not exist")),
        "{report:?}"
    );
    mpo(&["renew", &kept]).assert_code(0);
    eventually(30, "the controller's verdict", || {
        mpo_field(&kept, ".status.message") == "The source not found"
    });
    mpo(&["delete", &kept, "--yes", "--wait"]).assert_code(0);
}
