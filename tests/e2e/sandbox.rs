//! The sandbox itself: both users reach the API, RBAC denies the read-only user, each
//! registry variant serves seeded images with the expected digest, and the simulator
//! writes each documented message.

use crate::support::{block_on, eventually, kubectl, mpo_field, state};

#[test]
fn api_reachable_with_token_and_client_certificate() {
    for context in [&state().contexts.admin, &state().contexts.cert] {
        let run = kubectl(&[
            "--context",
            context,
            "get",
            "modulepulloverrides.deckhouse.io",
            "-o",
            "name",
        ]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("modulepulloverride.deckhouse.io/ghost"),
            "{run:?}"
        );
    }
    let whoami = kubectl(&[
        "--context",
        &state().contexts.cert,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(whoami.stdout.trim(), "cert-admin", "{whoami:?}");
}

#[test]
fn read_only_user_reads_but_gets_403_on_create() {
    let readonly = &state().contexts.readonly;
    kubectl(&[
        "--context",
        readonly,
        "get",
        "modulepulloverrides.deckhouse.io",
    ])
    .assert_code(0);
    let run = kubectl(&[
        "--context",
        readonly,
        "create",
        "configmap",
        "x",
        "--dry-run=server",
    ]);
    assert_ne!(run.code, 0);
    let run = kubectl(&[
        "--context",
        readonly,
        "auth",
        "can-i",
        "create",
        "modulepulloverrides.deckhouse.io",
    ]);
    assert_eq!(run.stdout.trim(), "no", "{run:?}");
}

#[test]
fn each_registry_variant_serves_images_with_the_expected_digest() {
    // Push through the sandbox's pusher, resolve through the simulator's own client
    // (each ModuleSource's credentials, CA and scheme): the digests must agree.
    let cases = [("test", "tls"), ("token", "token"), ("plain", "http")];
    for (source, registry) in cases {
        let digest = block_on(async {
            let pusher = mpo_sandbox::image::Pusher::new(state(), registry)?;
            let repository = format!("{}/variant-check", mpo_sandbox::seed::repo_path(registry));
            let layer = mpo_sandbox::image::Layer::with_files([(
                "file.txt",
                format!("{source}\n").into_bytes(),
            )]);
            pusher
                .push_image(&repository, "v1", &[layer], "amd64")
                .await
        })
        .unwrap_or_else(|err| panic!("push to {registry}: {err:#}"));
        let object = kubectl(&["get", "modulesources.deckhouse.io", source, "-o", "json"]);
        let value: serde_json::Value =
            serde_json::from_str(&object.stdout).expect("ModuleSource JSON");
        let resolved = block_on(async {
            let registry = mpo_sandbox::registry::ModuleRegistry::from_source(&value)
                .map_err(|e| e.to_string())?;
            registry
                .module_digest("variant-check", "v1")
                .await
                .map_err(|e| e.to_string())
        });
        assert_eq!(
            resolved.as_deref(),
            Ok(digest.digest.as_str()),
            "source {source}"
        );
    }
}

#[test]
fn simulator_writes_each_documented_message() {
    let expected = [
        ("ghost", "The module not found"),
        ("ingress-nginx", "The module is embedded"),
        ("disabled-module", "The module disabled"),
        ("orphan-module", "The module does not have an active source"),
        ("two-sources", "The module does not have an active source"),
        ("lost-source", "The source not found"),
        ("missing-tag", "Download error: get manifest: "),
        ("bad-creds-module", "Download error: "),
        ("no-ca-module", "Download error: "),
        // cr's wording (docs/deckhouse-real.md §3.7), naming `<repo>/<module>`.
        (
            "wrong-host-module",
            "Download error: build registry client: get registry client: read auth config: \"",
        ),
        ("token-module", "Ready"),
        ("plain-module", "Ready"),
    ];
    for (name, message) in expected {
        eventually(20, &format!("{name} to report {message:?}"), || {
            mpo_field(name, ".status.message").starts_with(message)
        });
    }
    assert!(
        mpo_field("wrong-host-module", ".status.message")
            .ends_with("credentials not found in the dockerCfg")
    );
    assert!(mpo_field("token-module", ".status.imageDigest").starts_with("sha256:"));
    assert_eq!(
        mpo_field("token-module", ".metadata.finalizers[0]"),
        "modules.deckhouse.io/mpo-finalizer"
    );
}
