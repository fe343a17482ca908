//! `kubectl mpo registry ...` with each ModuleSource's own credentials, CA and scheme.

use crate::support::{mpo, state};

#[test]
fn modules_tags_and_releases() {
    let modules = mpo(&["registry", "modules", "--source", "test", "-o", "name"]);
    modules.assert_code(0);
    assert!(modules.stdout.lines().any(|l| l == "echo"), "{modules:?}");

    let tags = mpo(&["reg", "tags", "echo", "-o", "name"]);
    tags.assert_code(0);
    assert!(
        tags.stdout.lines().any(|l| l == "main-patch-03354"),
        "{tags:?}"
    );
    assert!(
        !tags.stdout.lines().any(|l| l.len() == 64),
        "app-image tags hidden: {tags:?}"
    );
    let all = mpo(&["reg", "tags", "echo", "--all", "-o", "name"]);
    assert!(all.stdout.lines().any(|l| l.len() == 64), "{all:?}");

    let releases = mpo(&["registry", "releases", "echo", "-o", "json"]);
    releases.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&releases.stdout).expect("JSON");
    assert_eq!(doc["channels"]["alpha"], "v1.1.0");
    assert_eq!(doc["channels"]["stable"], "v1.0.0");
}

#[test]
fn files_cat_and_images_read_real_image_content() {
    let files = mpo(&["registry", "files", "echo:whiteout", "-o", "name"]);
    files.assert_code(0);
    assert!(
        files.stdout.lines().any(|l| l == "templates/service.yaml"),
        "{files:?}"
    );
    assert!(
        !files.stdout.contains("docs/README.md"),
        "whiteout applied: {files:?}"
    );

    let cat = mpo(&["registry", "cat", "echo:v1.0.0", "version.json"]);
    cat.assert_code(0);
    assert_eq!(cat.stdout.trim(), r#"{"version":"v1.0.0"}"#);
    let missing = mpo(&["registry", "cat", "echo:v1.0.0", "nope.txt"]);
    missing.assert_code(3);
    assert!(
        missing.stderr.contains("registry files echo:v1.0.0"),
        "{missing:?}"
    );

    let images = mpo(&["registry", "images", "echo:main-patch-03354", "-o", "json"]);
    images.assert_code(0);
    let list: serde_json::Value = serde_json::from_str(&images.stdout).expect("JSON");
    assert_eq!(list[0]["name"], "backend");
    assert!(list[0]["image"].as_str().unwrap().contains("/echo@sha256:"));
}

#[test]
fn token_and_plain_http_sources_work() {
    mpo(&["registry", "tags", "token-module", "-o", "name"]).assert_code(0);
    let plain = mpo(&["registry", "tags", "plain-module", "-o", "name"]);
    plain.assert_code(0);
    assert!(plain.stdout.contains("main"));
}

#[test]
fn registry_failures_are_clear_and_never_leak_credentials() {
    let run = mpo(&[
        "registry",
        "tags",
        "echo",
        "--source",
        "bad-creds",
        "-v",
        "-v",
        "-v",
    ]);
    run.assert_code(3);
    assert!(run.stderr.contains("401"), "{run:?}");
    let tls = state().registry("tls").unwrap();
    assert!(!run.all().contains(tls.password.as_deref().unwrap()));
    assert!(!run.all().contains("not-the-password"));
    let missing = mpo(&["registry", "tags", "echo", "--source", "no-such-source"]);
    missing.assert_code(3);
    assert!(
        missing.stderr.contains("existing ModuleSources"),
        "{missing:?}"
    );
    let bad = mpo(&["registry", "files", "echo:bad tag"]);
    bad.assert_code(2);
}
