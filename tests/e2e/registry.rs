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
    // The same image by its digest, as `registry tags` shows it.
    let tags = mpo(&["registry", "tags", "echo", "-o", "json"]);
    let tags: serde_json::Value = serde_json::from_str(&tags.stdout).expect("JSON");
    let digest = tags["details"]
        .as_array()
        .expect("details")
        .iter()
        .find(|d| d["tag"] == "v1.0.0")
        .and_then(|d| d["digest"].as_str())
        .expect("the digest of v1.0.0")
        .to_string();
    let by_digest = mpo(&["registry", "cat", &format!("echo@{digest}"), "version.json"]);
    by_digest.assert_code(0);
    assert_eq!(by_digest.stdout, cat.stdout);
    mpo(&["registry", "cat", "echo@sha256:nope", "version.json"]).assert_code(2);
    let missing = mpo(&["registry", "cat", "echo:v1.0.0", "nope.txt"]);
    missing.assert_code(3);
    assert!(
        missing.stderr.contains("registry files echo:v1.0.0"),
        "{missing:?}"
    );

    let images = mpo(&["registry", "images", "echo:main-patch-03354", "-o", "json"]);
    images.assert_code(0);
    let list: serde_json::Value = serde_json::from_str(&images.stdout).expect("JSON");
    assert_eq!(list["items"][0]["name"], "backend");
    assert!(
        list["items"][0]["image"]
            .as_str()
            .unwrap()
            .contains("/echo@sha256:")
    );
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
    // A repository the registry does not know: the hint lists the modules that exist,
    // not the tags of the same unknown repository again.
    let unknown = mpo(&["registry", "tags", "no-such-module", "--source", "test"]);
    assert_ne!(unknown.code, 0, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("list the modules it holds with: kubectl mpo registry modules --source test"),
        "{unknown:?}"
    );
    assert!(
        !unknown.stderr.contains("hint: list the tags"),
        "{unknown:?}"
    );
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
    let home = crate::support::temp_dir("mpo-docker-home");
    std::fs::create_dir_all(home.path().join(".docker")).expect("home");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{password}",
        tls.username.as_deref().unwrap_or_default()
    ));
    std::fs::write(
        home.path().join(".docker/config.json"),
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
        command.env("HOME", home.path()).env_remove("DOCKER_CONFIG");
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
    let garbage = home.path().join("garbage.json");
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

#[test]
fn status_asks_a_token_service_for_many_repositories_at_once() {
    // 21 overrides whose images sit behind a Bearer token service: the per-repository
    // way asks it 21 times (after 21 `/v2/` probes); batched, 20 scopes go in one request.
    let token = state().registry("token").expect("token registry");
    let prefix = unique("batch");
    let names: Vec<String> = (0..21).map(|i| format!("{prefix}-{i:02}")).collect();
    let digests: Vec<String> = names
        .iter()
        .map(|name| {
            crate::support::block_on(mpo_sandbox::fixtures::push_module_to(
                state(),
                "token",
                name,
                "v1",
                "batch build",
            ))
            .expect("push to the token registry")
        })
        .collect();
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            serde_json::json!({
                "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
                "metadata": {"name": name},
                "spec": {"imageTag": "v1", "scanInterval": "1h", "rollback": false},
            })
        })
        .collect();
    crate::support::kubectl_apply(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    .assert_code(0);

    let status = crate::support::status_through_registry_repo(token, "token", &names);
    status.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    for (name, digest) in names.iter().zip(&digests) {
        let row = doc["items"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}: {status:?}"));
        assert_eq!(row["registryDigest"], digest.as_str(), "{row}");
    }

    let realm = token.token_realm.clone().expect("token realm");
    let seen = std::process::Command::new("curl")
        .args(["-sf", &realm.replace("/token", "/requests")])
        .output()
        .expect("curl");
    let requests: Vec<Vec<String>> = serde_json::from_slice(&seen.stdout).expect("requests");
    // Token requests for pulling this test's repositories (its pushes asked for
    // `pull,push` scopes before).
    let ours: Vec<&Vec<String>> = requests
        .iter()
        .filter(|scopes| {
            scopes
                .iter()
                .any(|s| s.contains(&prefix) && s.ends_with(":pull"))
        })
        .collect();
    let covered: std::collections::BTreeSet<&String> = ours.iter().flat_map(|s| s.iter()).collect();
    assert_eq!(
        covered.len(),
        21,
        "every repository was asked for: {ours:?}"
    );
    assert_eq!(ours.len(), 2, "20 scopes per token request: {ours:?}");
}
