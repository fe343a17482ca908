//! `kubectl mpo registry ...` with each ModuleSource's own credentials, CA and scheme.

use crate::support::{mpo, state, unique};

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

#[test]
fn users_who_cannot_read_module_sources_use_their_docker_config() {
    use base64::Engine;
    let developer = state()
        .contexts
        .developer
        .clone()
        .expect("developer context");
    let tls = state().registry("tls").expect("tls registry");
    let password = tls.password.clone().expect("password");
    let repo = format!("{}/{}", tls.host, mpo_sandbox::seed::repo_path("tls"));
    let ca = state().ca_file.display().to_string();

    let refused = mpo(&["--context", &developer, "registry", "tags", "echo"]);
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("modulesources") && refused.stderr.contains("--registry-repo"),
        "{refused:?}"
    );

    // Credentials from ~/.docker/config.json, keyed the way `docker login` writes them.
    let home = std::env::temp_dir().join(unique("mpo-docker-home"));
    std::fs::create_dir_all(home.join(".docker")).expect("home");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{password}",
        tls.username.as_deref().unwrap_or_default()
    ));
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}}}}}}"#,
            tls.host
        ),
    )
    .expect("docker config");
    let as_developer = |args: &[&str]| {
        let mut full = vec!["--context", developer.as_str()];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--registry-repo", &repo, "--registry-ca", &ca]);
        let mut command = crate::support::command(&full);
        command.env("HOME", &home).env_remove("DOCKER_CONFIG");
        crate::support::run(command)
    };
    let tags = as_developer(&["registry", "tags", "echo", "-o", "name"]);
    tags.assert_code(0);
    assert!(
        tags.stdout.lines().any(|l| l == "main-patch-03354"),
        "{tags:?}"
    );
    assert!(
        tags.stderr
            .contains("note: registry access through --registry-repo")
            && tags.stderr.contains("config.json"),
        "the fallback is announced: {tags:?}"
    );
    assert!(!tags.all().contains(&password) && !tags.all().contains(&auth));

    let name = unique("fallback");
    let digests = crate::support::module_with_images(&name, true, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--wait"]).assert_code(0);
    let status = as_developer(&["status", &name, "-o", "json"]);
    status.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(
        doc["items"][0]["registryDigest"],
        digests[0].as_str(),
        "{status:?}"
    );
    assert_eq!(doc["items"][0]["sync"], "in-sync", "{status:?}");
    as_developer(&["diff", &name]).assert_code(0);

    // A broken config file is bad input: exit 2, and its content is never echoed.
    let garbage = home.join("garbage.json");
    std::fs::write(&garbage, "not-json secret-garbage-4711").expect("garbage");
    let garbage_path = garbage.display().to_string();
    let bad = as_developer(&[
        "registry",
        "tags",
        "echo",
        "--registry-config",
        &garbage_path,
    ]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("garbage.json") && !bad.all().contains("secret-garbage-4711"));
    let missing = as_developer(&[
        "registry",
        "tags",
        "echo",
        "--registry-config",
        "/nonexistent/config.json",
    ]);
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("cannot read --registry-config"),
        "{missing:?}"
    );
    let both = mpo(&[
        "registry",
        "tags",
        "echo",
        "--source",
        "test",
        "--registry-repo",
        &repo,
    ]);
    both.assert_code(2);
    assert!(both.stderr.contains("exclude each other"), "{both:?}");
    // Checked before any request: an unreachable cluster does not hide the usage error.
    for command in [
        &["registry", "tags", "echo"][..],
        &["status"][..],
        &["diff", "echo"][..],
    ] {
        let mut args = command.to_vec();
        args.extend_from_slice(&[
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--registry-repo",
            "no-path",
        ]);
        let bad_repo = mpo(&args);
        bad_repo.assert_code(2);
        assert!(
            bad_repo.stderr.contains("--registry-repo"),
            "{command:?}: {bad_repo:?}"
        );
    }
}
