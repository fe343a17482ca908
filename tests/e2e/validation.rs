//! Bad input is refused before any request (exit 2) and creates nothing.

use crate::support::{mpo, unique};

/// Whether an override exists, asked with kubectl (independent of the plugin).
pub fn mpo_exists(name: &str) -> bool {
    let output = std::process::Command::new("kubectl")
        .args([
            "get",
            "modulepulloverrides.deckhouse.io",
            name,
            "-o",
            "name",
        ])
        .env("KUBECONFIG", &crate::support::state().kubeconfig)
        .output()
        .expect("running kubectl");
    output.status.success()
}

#[test]
fn invalid_module_names_are_refused() {
    for name in [
        "Echo",
        "-echo",
        "echo_1",
        "a/b",
        "echo.",
        &"a".repeat(64),
        "",
    ] {
        let run = mpo(&["create", name, "--tag", "v1.0.0"]);
        assert_eq!(run.code, 2, "{name:?}: {run:?}");
        assert!(
            run.stderr.contains("invalid module name"),
            "{name:?}: {run:?}"
        );
    }
}

#[test]
fn invalid_tags_are_refused_and_nothing_is_created() {
    let name = unique("val-tag");
    for tag in [".v1", "-x", "a:b", "a/b", "has space", &"t".repeat(129), ""] {
        let run = mpo(&["create", &name, "--tag", tag, "--force"]);
        assert_eq!(run.code, 2, "{tag:?}: {run:?}");
        assert!(run.stderr.contains("invalid image tag"), "{tag:?}: {run:?}");
    }
    assert!(!mpo_exists(&name));
}

#[test]
fn invalid_intervals_are_refused_and_nothing_is_created() {
    let name = unique("val-interval");
    for interval in ["0s", "", "1.5s", "100ms", "-1s", "1d", "15", "0h0m0s"] {
        let run = mpo(&[
            "create",
            &name,
            "--tag",
            "v1.0.0",
            "--scan-interval",
            interval,
            "--force",
        ]);
        assert_eq!(run.code, 2, "{interval:?}: {run:?}");
        assert!(
            run.stderr.contains("invalid scan interval"),
            "{interval:?}: {run:?}"
        );
    }
    assert!(!mpo_exists(&name));
}

#[test]
fn invalid_durations_and_missing_arguments_are_usage_errors() {
    let name = unique("val-misc");
    mpo(&["create", &name, "--tag", "v1.0.0", "--timeout", "soon"]).assert_code(2);
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1.0.0",
        "--request-timeout",
        "-1s",
    ])
    .assert_code(2);
    // No --tag and no terminal: cannot pick one interactively.
    let run = mpo(&["create", &name]);
    run.assert_code(2);
    assert!(run.stderr.contains("--tag"), "{run:?}");
    mpo(&["edit", &name, "--scan-interval", "0s"]).assert_code(2);
    mpo(&["renew"]).assert_code(2);
    assert!(!mpo_exists(&name));
}
