//! The controller generation the sandbox plays (`GEN=A|B|C|D` at start-up,
//! docs/deckhouse-real.md §1) and the behaviour of deckhouse-real §2–§3 that depends on
//! it. `make test` runs this group against every generation, each with a sandbox of its
//! own; every test reads the generation from the sandbox and expects that generation's
//! behaviour.

use serde_json::{Value, json};

use crate::support::{
    block_on, eventually, kubectl, module_with_images, mpo, mpo_field, push_module, state, unique,
};

fn generation() -> char {
    state().generation.chars().next().unwrap_or('C')
}

fn gen_a() -> bool {
    generation() == 'A'
}

/// Applies an object given as JSON with kubectl; returns the run.
fn apply(object: Value) -> crate::support::Run {
    crate::support::kubectl_apply(&object)
}

/// An override as this generation's API takes it (v1alpha1 needs `spec.source`).
fn override_object(name: &str, tag: &str, scan_interval: &str) -> Value {
    if gen_a() {
        json!({
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModulePullOverride",
            "metadata": {"name": name},
            "spec": {"source": "test", "imageTag": tag, "scanInterval": scan_interval, "rollback": false},
        })
    } else {
        json!({
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
            "metadata": {"name": name},
            "spec": {"imageTag": tag, "scanInterval": scan_interval, "rollback": false},
        })
    }
}

/// The message this generation writes on success (§1: gen A writes none).
fn success() -> &'static str {
    if gen_a() { "" } else { "Ready" }
}

/// A module with one build `v1` and an override on it (scan interval 1h), deployed.
fn deployed(prefix: &str) -> (String, Vec<String>) {
    let name = unique(prefix);
    let digests = module_with_images(&name, true, &["v1"]);
    apply(override_object(&name, "v1", "1h")).assert_code(0);
    eventually(30, "the first deploy", || ready_on(&name, &digests[0]));
    (name, digests)
}

fn ready_on(name: &str, digest: &str) -> bool {
    mpo_field(name, ".status.imageDigest") == digest
        && mpo_field(name, ".status.message") == success()
}

fn crd(name: &str) -> Value {
    let run = kubectl(&["get", "crd", name, "-o", "json"]);
    run.assert_code(0);
    serde_json::from_str(&run.stdout).expect("CRD JSON")
}

fn version<'a>(crd: &'a Value, name: &str) -> &'a Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("version {name} in {crd}"))
}

fn column<'a>(version: &'a Value, name: &str) -> &'a Value {
    version["additionalPrinterColumns"]
        .as_array()
        .and_then(|columns| columns.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("column {name}"))
}

#[test]
fn the_sandbox_runs_the_generation_it_was_started_with() {
    let data = kubectl(&[
        "get",
        "configmap",
        "-n",
        "default",
        "deckhouse-simulator",
        "-o",
        "jsonpath={.data.generation}",
    ]);
    assert_eq!(data.stdout.trim(), state().generation, "{data:?}");
    // The deckhouse Deployment carries this generation's Deckhouse version.
    let version = kubectl(&[
        "get",
        "deployment",
        "-n",
        "d8-system",
        "deckhouse",
        "-o",
        "jsonpath={.metadata.annotations.core\\.deckhouse\\.io/version}",
    ]);
    let expected = match generation() {
        'A' => "v1.66",
        'B' => "v1.76",
        'C' => "v1.78",
        _ => "v1.80",
    };
    assert!(version.stdout.starts_with(expected), "{version:?}");
}

/// §2: the ModulePullOverride CRD serves v1alpha2 only on B–D (v1alpha1 present, not
/// served, deprecated) and v1alpha1 only on gen A, with the real printer columns.
#[test]
fn override_crd_versions_and_columns_are_as_shipped() {
    let crd_mpo = crd("modulepulloverrides.deckhouse.io");
    let v1 = version(&crd_mpo, "v1alpha1");
    assert_eq!(crd_mpo["metadata"]["labels"]["heritage"], "deckhouse");
    assert_eq!(column(v1, "msg")["jsonPath"], ".status.message");
    assert_eq!(column(v1, "Updated")["type"], "date");
    if gen_a() {
        assert_eq!(v1["served"], true);
        assert_eq!(v1["storage"], true);
        assert_eq!(
            crd_mpo["spec"]["versions"].as_array().map(Vec::len),
            Some(1)
        );
    } else {
        assert_eq!(v1["served"], false);
        assert_eq!(v1["deprecated"], true);
        let v2 = version(&crd_mpo, "v1alpha2");
        assert_eq!(v2["served"], true);
        assert_eq!(v2["storage"], true);
        assert_eq!(column(v2, "Rollback")["type"], "string");
        assert_eq!(column(v2, "Message")["jsonPath"], ".status.message");
        let raw = kubectl(&["get", "--raw", "/apis/deckhouse.io/v1alpha1"]);
        assert!(!raw.stdout.contains("\"modulepulloverrides\""), "{raw:?}");
    }
    // The plugin talks the served version.
    let name = unique("gen-crd");
    module_with_images(&name, true, &["v1"]);
    let mut args = vec!["create", name.as_str(), "--tag", "v1", "--force"];
    if gen_a() {
        args.extend(["--source", "test"]);
    }
    mpo(&args).assert_code(0);
    let expected = if gen_a() { "v1alpha1" } else { "v1alpha2" };
    assert_eq!(
        mpo_field(&name, ".apiVersion"),
        format!("deckhouse.io/{expected}")
    );
    // The pattern and the defaults are the API server's.
    let bad = apply(override_object(&unique("gen-bad"), "v1", "5x"));
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("scanInterval"), "{bad:?}");
}

/// §2: ModuleSource `scheme` is an enum HTTP/HTTPS defaulting to HTTPS; Module
/// `status.phase` is an enum and there is no Module `status.message`; ModuleConfig
/// `version` is a number; Module `Enabled`/`Ready` columns read the conditions.
#[test]
fn deckhouse_crds_validate_and_default_as_shipped() {
    let name = unique("gen-ms");
    apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
        "metadata": {"name": name},
        "spec": {"registry": {"repo": "127.0.0.1:1/none"}},
    }))
    .assert_code(0);
    let scheme = kubectl(&[
        "get",
        "modulesources.deckhouse.io",
        &name,
        "-o",
        "jsonpath={.spec.registry.scheme}",
    ]);
    assert_eq!(scheme.stdout.trim(), "HTTPS", "{scheme:?}");
    let lower = apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
        "metadata": {"name": unique("gen-ms-lower")},
        "spec": {"registry": {"repo": "127.0.0.1:1/none", "scheme": "https"}},
    }));
    assert_ne!(
        lower.code, 0,
        "lowercase scheme is not in the enum: {lower:?}"
    );
    kubectl(&["delete", "modulesources.deckhouse.io", &name]).assert_code(0);

    let module = crd("modules.deckhouse.io");
    let v1 = version(&module, "v1alpha1");
    assert_eq!(version(&module, "v1beta1")["served"], false);
    let phases =
        &v1["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"]["enum"];
    assert!(phases.as_array().is_some_and(|p| p.len() == 12), "{phases}");
    assert!(
        v1["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["message"].is_null()
    );
    assert!(
        column(v1, "Ready")["jsonPath"]
            .as_str()
            .is_some_and(|path| path.contains("IsReady"))
    );
    assert_eq!(column(v1, "Weight")["type"], "integer");

    let config = unique("gen-mc");
    apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
        "metadata": {"name": config}, "spec": {"version": 1.5},
    }))
    .assert_code(0);
    kubectl(&["delete", "moduleconfigs.deckhouse.io", &config]).assert_code(0);
    let missing_spec = apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
        "metadata": {"name": unique("gen-mc-nospec")},
    }));
    assert_ne!(missing_spec.code, 0, "spec is required: {missing_spec:?}");
}

/// §3.12: a blocked message sets `updatedAt` too.
#[test]
fn blocked_messages_set_updated_at() {
    let name = unique("gen-ghost");
    apply(override_object(&name, "v1", "15s")).assert_code(0);
    // Gen A checks no Module: its ModuleSource exists, the image does not, and the raw
    // registry error is the message (§1).
    let blocked = if gen_a() {
        "manifest unknown"
    } else {
        "The module not found"
    };
    eventually(20, "the blocked message", || {
        mpo_field(&name, ".status.message").contains(blocked)
    });
    assert!(
        !mpo_field(&name, ".status.updatedAt").is_empty(),
        "updatedAt is set with the message"
    );
}

/// §3.3: gen A writes an empty message with the digest and weight and labels the
/// override; a missing source reads `ModuleSource "<name>" not found`. B–D write
/// `Ready` and no labels.
#[test]
fn success_message_and_labels_follow_the_generation() {
    let name = unique("gen-ok");
    let digests = module_with_images(&name, true, &["v1"]);
    apply(override_object(&name, "v1", "15s")).assert_code(0);
    eventually(30, "the override to be deployed", || {
        ready_on(&name, &digests[0])
    });
    if gen_a() {
        assert_eq!(mpo_field(&name, ".metadata.labels.module"), name);
        assert_eq!(mpo_field(&name, ".metadata.labels.source"), "test");
        assert_eq!(mpo_field(&name, ".status.weight"), "900");
        let lost = unique("gen-lost");
        let mut object = override_object(&lost, "v1", "15s");
        object["spec"]["source"] = json!("no-such-source");
        apply(object).assert_code(0);
        eventually(20, "the gen-A source message", || {
            mpo_field(&lost, ".status.message") == "ModuleSource \"no-such-source\" not found"
        });
    } else {
        assert_eq!(mpo_field(&name, ".metadata.labels.module"), "");
        assert_eq!(
            mpo_field(&name, ".metadata.finalizers[0]"),
            "modules.deckhouse.io/mpo-finalizer"
        );
    }
}

/// §3.13: `scanInterval: 0s` is never re-scanned (B–D; the sandbox's gen A does the
/// same): a new image under the same tag is not picked up, where a 15 s fallback would.
#[test]
fn scan_interval_zero_never_rescans() {
    let name = unique("gen-zero");
    let digests = module_with_images(&name, true, &["v1"]);
    apply(override_object(&name, "v1", "0s")).assert_code(0);
    eventually(30, "the first deploy", || ready_on(&name, &digests[0]));
    // Let the Deckhouse restart that follows a deploy (gen D pauses for it, §3.2) and
    // its re-list pass: a restarted controller reconciles every override once.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let newer = push_module(&name, "v1", "pushed after the deploy");
    std::thread::sleep(std::time::Duration::from_secs(20));
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    // The plugin sees the registry moved on.
    let status = mpo(&["status", &name, "-o", "json"]);
    assert!(
        status.stdout.contains(&newer) || status.stdout.contains(&newer[7..19]),
        "{status:?}"
    );
}

/// §3.11: a failed download writes no status (the override stays Ready on its old
/// digest); a values failure writes `Validation error: <err>`. Gen A writes the raw
/// registry error and checks no values (§1).
#[test]
fn failed_downloads_are_silent_and_bad_values_are_validation_errors() {
    let (name, digests) = deployed("gen-dl");
    let updated = mpo_field(&name, ".status.updatedAt");
    let newer = push_module(&name, "v1", "layer to be lost");
    delete_layers(&name, &newer);
    // Wake the controller: it finds the new digest and fails to download it.
    kubectl(&[
        "annotate",
        "modulepulloverrides.deckhouse.io",
        &name,
        "recheck=1",
    ])
    .assert_code(0);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    if gen_a() {
        let message = mpo_field(&name, ".status.message");
        assert!(
            !message.is_empty() && !message.starts_with("Download error"),
            "the raw registry error: {message}"
        );
    } else {
        assert_eq!(mpo_field(&name, ".status.message"), "Ready");
        assert_eq!(mpo_field(&name, ".status.updatedAt"), updated);
    }

    let bad = unique("gen-values");
    module_with_images(&bad, true, &["v1"]);
    kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &bad,
        "--type=merge",
        "-p",
        r#"{"spec":{"settings":{"replicas":"three"}}}"#,
    ])
    .assert_code(0);
    apply(override_object(&bad, "v1", "15s")).assert_code(0);
    if gen_a() {
        eventually(30, "gen A deploys without checking values", || {
            mpo_field(&bad, ".status.imageDigest").starts_with("sha256:")
                && mpo_field(&bad, ".status.message").is_empty()
        });
        return;
    }
    eventually(30, "the validation error", || {
        mpo_field(&bad, ".status.message")
            == "Validation error: replicas in body must be of type integer: \"string\""
    });
    assert_eq!(mpo_field(&bad, ".status.imageDigest"), "");
}

/// Deletes the layer blobs of `module@digest` from the tls registry (a download that
/// fails after the digest lookup succeeded).
fn delete_layers(module: &str, digest: &str) {
    let registry = state().registry("tls").expect("tls registry");
    let user = format!(
        "{}:{}",
        registry.username.clone().unwrap_or_default(),
        registry.password.clone().unwrap_or_default()
    );
    let ca = state().ca_file.display().to_string();
    let base = format!(
        "https://{}/v2/{}/{module}",
        registry.host,
        mpo_sandbox::seed::repo_path("tls")
    );
    let manifest = std::process::Command::new("curl")
        .args(["-sf", "--cacert", &ca, "-u", &user, "-H"])
        .arg("Accept: application/vnd.oci.image.manifest.v1+json")
        .arg(format!("{base}/manifests/{digest}"))
        .output()
        .expect("curl");
    let manifest: Value = serde_json::from_slice(&manifest.stdout).expect("manifest JSON");
    for layer in manifest["layers"].as_array().expect("layers") {
        let blob = layer["digest"].as_str().expect("digest");
        let deleted = std::process::Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "-X",
                "DELETE",
                "--cacert",
                &ca,
                "-u",
                &user,
            ])
            .arg(format!("{base}/blobs/{blob}"))
            .status()
            .expect("curl");
        assert!(deleted.success(), "DELETE {blob}");
    }
}

/// §3.2: on gen D `modules.deckhouse.io/renew: "true"` forces a redeploy of an
/// unchanged digest and is removed after it; A–C only re-check and keep the key.
#[test]
fn the_modern_renew_key_forces_a_redeploy_only_on_gen_d() {
    let (name, _) = deployed("gen-renew");
    let before = mpo_field(&name, ".status.updatedAt");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    kubectl(&[
        "annotate",
        "modulepulloverrides.deckhouse.io",
        &name,
        "modules.deckhouse.io/renew=true",
    ])
    .assert_code(0);
    let key = ".metadata.annotations.modules\\.deckhouse\\.io/renew";
    if generation() == 'D' {
        eventually(20, "a forced redeploy", || {
            mpo_field(&name, ".status.updatedAt") != before
        });
        eventually(20, "the key to be removed", || {
            mpo_field(&name, key).is_empty()
        });
        let log =
            std::fs::read_to_string(state().dir.join("logs/simulator.log")).expect("simulator log");
        assert!(
            log.contains(&format!("restarting deckhouse after {name}")),
            "the restart pause follows the redeploy"
        );
    } else {
        std::thread::sleep(std::time::Duration::from_secs(4));
        assert_eq!(mpo_field(&name, ".status.updatedAt"), before);
        assert_eq!(
            mpo_field(&name, key),
            "true",
            "kept on gen {}",
            generation()
        );
    }
}

/// §3.2: `kubectl mpo renew` sets the modern key only where the generation may be D,
/// and then warns that an unchanged image is redeployed with a Deckhouse restart; on
/// gen A and B, which never remove the key, it removes a stale one.
#[test]
fn renew_sets_the_modern_key_only_where_it_may_redeploy() {
    let (name, _) = deployed("gen-renew-plugin");
    let key = ".metadata.annotations.modules\\.deckhouse\\.io/renew";
    let certain = matches!(generation(), 'A' | 'B');
    if certain {
        // A key left from an earlier renew, which these controllers never remove.
        kubectl(&[
            "annotate",
            "modulepulloverrides.deckhouse.io",
            &name,
            "modules.deckhouse.io/renew=true",
        ])
        .assert_code(0);
        // explain reports it: these controllers never remove it.
        let report = mpo(&["explain", &name, "--no-color"]);
        assert!(
            report.stdout.contains("left from an earlier renew")
                && report.stdout.contains(&format!("gen {}", generation())),
            "{report:?}"
        );
    }
    let run = mpo(&["renew", &name]);
    run.assert_code(0);
    assert!(
        !mpo_field(&name, ".metadata.annotations.renew").is_empty(),
        "{run:?}"
    );
    let warned = run.stderr.contains("redeploys each and restarts Deckhouse");
    if certain {
        assert!(!warned, "no warning on gen {}: {run:?}", generation());
        assert_eq!(mpo_field(&name, key), "", "the stale key is removed");
    } else {
        assert!(warned, "gen {} may be D: {run:?}", generation());
        if generation() == 'C' {
            assert_eq!(mpo_field(&name, key), "true");
            // Gen C keeps it on the Ready override: explain says what it will do later.
            let report = mpo(&["explain", &name, "--no-color"]);
            assert!(
                report.stdout.contains("most likely left on gen C"),
                "{report:?}"
            );
        }
    }
}

/// §3.2: where the controller may be gen D, renewing several unchanged overrides means
/// a Deckhouse restart for each, so it is asked for (`--yes` off a terminal) and
/// changes nothing unanswered; `--check-only` only wakes the controller and never sets
/// the modern key. On gen A and B nothing is asked.
#[test]
fn renewing_several_unchanged_overrides_is_asked_for_where_it_may_redeploy() {
    let (first, _) = deployed("gen-many");
    let (second, _) = deployed("gen-many");
    let key = ".metadata.annotations.modules\\.deckhouse\\.io/renew";
    let stamp = |name: &str| mpo_field(name, ".metadata.annotations.renew");
    let refused = mpo(&["renew", &first, &second]);
    if matches!(generation(), 'A' | 'B') {
        refused.assert_code(0);
        return;
    }
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("--yes") && refused.stderr.contains("--check-only"),
        "{refused:?}"
    );
    assert_eq!(stamp(&first), "", "nothing was renewed: {refused:?}");

    let checked = mpo(&["renew", &first, &second, "--check-only"]);
    checked.assert_code(0);
    assert!(
        !checked.stderr.contains("restarts Deckhouse"),
        "{checked:?}"
    );
    for name in [&first, &second] {
        assert!(!stamp(name).is_empty(), "{checked:?}");
        assert_eq!(mpo_field(name, key), "", "no forced redeploy: {checked:?}");
    }
    mpo(&["renew", &first, &second, "--yes"]).assert_code(0);
    if generation() == 'C' {
        assert_eq!(mpo_field(&first, key), "true");
    }
}

/// §3.0 step 3, §3.6: disabling clears `imageDigest` on gen C and D only; gen A checks
/// no ModuleConfig and stays deployed.
#[test]
fn disabling_clears_the_digest_from_gen_c_on() {
    let (name, digests) = deployed("gen-off");
    kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"enabled":false}}"#,
    ])
    .assert_code(0);
    // The override wakes on a change of its own; a re-check annotation does that.
    eventually(10, "the module to be disabled", || {
        module_condition(&name, "EnabledByModuleConfig").0 == "False"
    });
    kubectl(&[
        "annotate",
        "--overwrite",
        "modulepulloverrides.deckhouse.io",
        &name,
        "recheck=1",
    ])
    .assert_code(0);
    if gen_a() {
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert!(
            ready_on(&name, &digests[0]),
            "gen A ignores the ModuleConfig"
        );
        return;
    }
    eventually(20, "The module disabled", || {
        mpo_field(&name, ".status.message") == "The module disabled"
    });
    let digest = mpo_field(&name, ".status.imageDigest");
    if generation() == 'B' {
        assert_eq!(digest, digests[0], "gen B keeps the digest");
    } else {
        assert_eq!(digest, "", "gen {} clears the digest", generation());
    }
}

/// (status, reason, message) of a Module condition.
fn module_condition(name: &str, kind: &str) -> (String, String, String) {
    let run = kubectl(&["get", "modules.deckhouse.io", name, "-o", "json"]);
    let module: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    let found = module["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_string();
    (text("status"), text("reason"), text("message"))
}

/// §3.4, §3.5: a ModuleConfig without `enabled` sets `EnabledByModuleConfig=False` with
/// empty reason and message ("The module disabled"); deleting it gives Unknown.
#[test]
fn module_config_without_enabled_disables_and_deletion_is_unknown() {
    let name = unique("gen-noenabled");
    module_with_images(&name, true, &["v1"]);
    kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &name,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/enabled"}]"#,
    ])
    .assert_code(0);
    eventually(10, "EnabledByModuleConfig=False", || {
        module_condition(&name, "EnabledByModuleConfig") == ("False".into(), "".into(), "".into())
    });
    apply(override_object(&name, "v1", "15s")).assert_code(0);
    // Gen A checks no ModuleConfig: it deploys anyway.
    let expected = if gen_a() { "" } else { "The module disabled" };
    eventually(20, "the override's verdict", || {
        mpo_field(&name, ".status.message") == expected
            && (!gen_a() || !mpo_field(&name, ".status.imageDigest").is_empty())
    });
    // The admission webhook refuses to delete the ModuleConfig under an override (§3.17).
    kubectl(&[
        "delete",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--wait",
    ])
    .assert_code(0);
    kubectl(&["delete", "moduleconfigs.deckhouse.io", &name]).assert_code(0);
    eventually(10, "EnabledByModuleConfig=Unknown", || {
        module_condition(&name, "EnabledByModuleConfig").0 == "Unknown"
    });
}

/// §3.15: several sources and no choice: `IsReady=False`, reason `Conflict`, phase
/// `Conflict`; the override has no active source.
#[test]
fn several_sources_without_a_choice_are_a_conflict_on_is_ready() {
    eventually(10, "the seeded two-sources module to conflict", || {
        module_condition("two-sources", "IsReady")
            == (
                "False".into(),
                "Conflict".into(),
                "several available sources".into(),
            )
    });
    let phase = kubectl(&[
        "get",
        "modules.deckhouse.io",
        "two-sources",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase.stdout.trim(), "Conflict");
    // Gen A reads the override's own `spec.source` and deploys from it.
    let expected = if gen_a() {
        ""
    } else {
        "The module does not have an active source"
    };
    eventually(20, "two-sources' message", || {
        mpo_field("two-sources", ".status.message") == expected
    });
}

/// §3.6: the bundle fallback (a module without ModuleConfig, enabled in the cluster
/// bundle) exists from gen C on; gen B reports it disabled; gen A checks nothing.
#[test]
fn the_bundle_fallback_exists_from_gen_c_on() {
    let expected = match generation() {
        'A' => "",
        'B' => "The module disabled",
        _ => "Ready",
    };
    eventually(30, "bundle-module's message", || {
        mpo_field("bundle-module", ".status.message") == expected
    });
}

/// §3.1: the digest a multi-arch tag is recorded with follows the sandbox's rule
/// (`DIGEST_RULE=child|index` at start-up).
#[test]
fn multi_arch_digest_follows_the_rule() {
    let name = unique("gen-multi");
    module_with_images(&name, true, &["v1"]);
    let (child, index) = block_on(async {
        let pusher = mpo_sandbox::image::Pusher::new(state(), "tls")?;
        let repository = format!("{}/{name}", mpo_sandbox::seed::repo_path("tls"));
        let files = |note: &str| {
            mpo_sandbox::image::Layer::with_files(mpo_sandbox::image::module_files(
                &name,
                "multi",
                &[],
                note,
            ))
        };
        let amd64 = pusher
            .push_image(&repository, "multi-amd64", &[files("amd64")], "amd64")
            .await?;
        let arm64 = pusher
            .push_image(&repository, "multi-arm64", &[files("arm64")], "arm64")
            .await?;
        let child = amd64.digest.clone();
        let index = pusher
            .push_index(&repository, "multi", &[(amd64, "amd64"), (arm64, "arm64")])
            .await?;
        anyhow::Ok((child, index.digest))
    })
    .expect("push a multi-arch index");
    apply(override_object(&name, "multi", "1h")).assert_code(0);
    let expected = if state().digest_rule == "index" {
        index
    } else {
        child
    };
    eventually(30, "the multi-arch deploy", || ready_on(&name, &expected));
}

/// `version` shows the server side as kubectl does: Kubernetes version, Deckhouse
/// version and the controller generation (§1); where B, C and D cannot be told apart it
/// says so; `--client` does not ask the cluster.
#[test]
fn version_shows_the_server_and_the_generation() {
    let run = mpo(&["version", "-o", "json"]);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("version JSON");
    let server = &doc["server"];
    assert!(
        server["kubernetesVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{doc}"
    );
    let (version, expected) = match generation() {
        'A' => ("v1.66", "A"),
        'B' => ("v1.76", "B"),
        'C' => ("v1.78", "C or D"),
        _ => ("v1.80", "C or D"),
    };
    assert!(
        server["deckhouseVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with(version)),
        "{doc}"
    );
    assert_eq!(server["generation"], expected, "{doc}");
    assert_eq!(server["edition"], "ce", "{doc}");
    let text = mpo(&["version"]);
    text.assert_code(0);
    assert!(
        text.stdout
            .contains(&format!("Controller generation: {expected} (")),
        "{text:?}"
    );
    // explain names it too, in its report and its JSON.
    let explain = mpo(&["explain", "token-module"]);
    assert!(
        explain
            .stdout
            .contains(&format!("Controller generation: {expected} (")),
        "{explain:?}"
    );
    let explain = mpo(&["explain", "token-module", "-o", "json"]);
    let report: Value = serde_json::from_str(&explain.stdout).expect("explain JSON");
    assert_eq!(report["controller"]["generation"], expected, "{report}");

    // A user who cannot read the deckhouse Deployment: the APIs alone decide.
    let readonly = mpo(&[
        "--context",
        &state().contexts.readonly,
        "version",
        "-o",
        "json",
    ]);
    readonly.assert_code(0);
    let doc: Value = serde_json::from_str(&readonly.stdout).expect("version JSON");
    let expected = if gen_a() { "A" } else { "B, C or D" };
    assert_eq!(doc["server"]["generation"], expected, "{doc}");

    // --client never contacts the cluster.
    let mut offline = crate::support::command(&["version", "--client", "-o", "json"]);
    offline.env("KUBECONFIG", "/nonexistent/kubeconfig");
    let offline = crate::support::run(offline);
    offline.assert_code(0);
    assert!(!offline.stdout.contains("\"server\""), "{offline:?}");
}
