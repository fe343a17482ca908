//! The sandbox's ModuleConfig validating admission webhook (docs/deckhouse-real.md
//! §3.17): served over HTTPS on 127.0.0.1, registered with a ValidatingWebhookConfiguration
//! and called by the real API server, so kubectl (and the plugin's printed fixes) meet
//! Deckhouse's rejections.

use serde_json::{Value, json};

use crate::support::{eventually, kubectl, kubectl_apply, module_with_images, mpo, unique};

fn apply(object: Value) -> crate::support::Run {
    kubectl_apply(&object)
}

fn module(name: &str, properties: Value) {
    apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module",
        "metadata": {"name": name}, "properties": properties,
    }))
    .assert_code(0);
}

fn config(name: &str, spec: Value) -> crate::support::Run {
    apply(json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
        "metadata": {"name": name}, "spec": spec,
    }))
}

#[test]
fn the_webhook_is_registered_with_the_sandbox_ca() {
    let run = kubectl(&[
        "get",
        "validatingwebhookconfigurations",
        "d8-deckhouse-validating-webhook-handler",
        "-o",
        "json",
    ]);
    run.assert_code(0);
    let object: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let client = &object["webhooks"][0]["clientConfig"];
    assert!(
        client["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://127.0.0.1:")),
        "{client}"
    );
    assert!(client["caBundle"].as_str().is_some_and(|ca| !ca.is_empty()));
    assert_eq!(object["webhooks"][0]["failurePolicy"], "Fail");
}

#[test]
fn deleting_a_module_config_under_an_override_is_refused() {
    let name = unique("adm-del");
    module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--force"]).assert_code(0);
    let refused = kubectl(&["delete", "moduleconfigs.deckhouse.io", &name]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("delete the ModulePullOverride before deleting the module config"),
        "{refused:?}"
    );
    kubectl(&["get", "moduleconfigs.deckhouse.io", &name]).assert_code(0);
    mpo(&["delete", &name, "--yes", "--wait"]).assert_code(0);
    kubectl(&["delete", "moduleconfigs.deckhouse.io", &name]).assert_code(0);
}

#[test]
fn embedded_unavailable_sources_and_unknown_policies_are_refused() {
    let name = unique("adm-src");
    module(
        &name,
        json!({"availableSources": ["test", "token"], "stage": "General Availability"}),
    );
    let embedded = config(&name, json!({"enabled": true, "source": "Embedded"}));
    assert!(
        embedded.stderr.contains("'Embedded' is a forbidden source"),
        "{embedded:?}"
    );
    let unavailable = config(&name, json!({"enabled": true, "source": "plain"}));
    assert!(
        unavailable.stderr.contains(&format!(
            "the 'plain' module source is an unavailable source for the '{name}' module, available sources: [test token]"
        )),
        "{unavailable:?}"
    );
    let policy = config(
        &name,
        json!({"enabled": true, "updatePolicy": "no-such-policy"}),
    );
    assert!(
        policy
            .stderr
            .contains("the 'no-such-policy' module policy does not exist"),
        "{policy:?}"
    );
    let missing = kubectl(&["get", "moduleconfigs.deckhouse.io", &name]);
    assert_ne!(missing.code, 0, "nothing was created: {missing:?}");
    config(
        &name,
        json!({"enabled": true, "source": "token", "updatePolicy": "test-alpha"}),
    )
    .assert_code(0);
}

#[test]
fn enabling_an_experimental_module_needs_the_deckhouse_setting() {
    let name = unique("adm-exp");
    module(
        &name,
        json!({"availableSources": ["test"], "stage": "Experimental"}),
    );
    let refused = config(&name, json!({"enabled": true}));
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "the '{name}' module is experimental, set param in 'deckhouse' ModuleConfig - spec.settings.allowExperimentalModules: true to allow it"
        )),
        "{refused:?}"
    );
    // Disabled, it may be configured.
    config(&name, json!({"enabled": false})).assert_code(0);
}

#[test]
fn disabling_a_module_that_needs_confirmation_needs_the_annotation() {
    let name = unique("adm-off");
    module(
        &name,
        json!({"availableSources": ["test"], "stage": "General Availability",
               "disableOptions": {"confirmation": true, "message": "Disabling it drops every ingress"}}),
    );
    config(&name, json!({"enabled": true})).assert_code(0);
    let refused = kubectl(&[
        "patch",
        "moduleconfigs.deckhouse.io",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"enabled":false}}"#,
    ]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "Disabling it drops every ingress. Please annotate ModuleConfig with `modules.deckhouse.io/allow-disabling=true` if you're sure that you want to disable the module."
        ),
        "{refused:?}"
    );
    kubectl(&[
        "annotate",
        "moduleconfigs.deckhouse.io",
        &name,
        "modules.deckhouse.io/allow-disabling=true",
    ])
    .assert_code(0);
    eventually(10, "the disabling to be admitted", || {
        kubectl(&[
            "patch",
            "moduleconfigs.deckhouse.io",
            &name,
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ])
        .code
            == 0
    });
}
