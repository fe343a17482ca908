//! Registries as Deckhouse reads them (docs/deckhouse-real.md §3.1, §3.7-§3.10): the
//! plugin must give the answers the cluster gives, against the sandbox's real
//! registries, its registry front (wrong digest headers, 429/503 with Retry-After) and
//! the controller simulator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{block_on, kubectl, mpo, mpo_field, state, unique};

/// A module `name` of a new ModuleSource `source` with `registry` as its
/// `spec.registry`.
fn module_of_source(name: &str, source: &str, registry: Value) {
    block_on(mpo_sandbox::fixtures::module_of_source(
        state(),
        name,
        source,
        registry,
    ))
    .unwrap_or_else(|err| panic!("preparing module {name} of {source}: {err:#}"));
}

/// Pushes `modules/<name>:<tag>` to the plain-HTTP registry (behind the registry front
/// as `<front>/<mode>/<name>`); returns its digest.
fn push_to_http_registry(name: &str, tag: &str) -> String {
    push_at("http", mpo_sandbox::seed::repo_path("http"), name, tag)
}

/// Pushes `<name>/<name>:<tag>` to the plain-HTTP registry: the repo of a source of the
/// module's own (a source on the shared `modules` repo would offer plain's modules too,
/// §3.14, and make them a Conflict); returns its digest.
fn push_to_own_http_repo(name: &str, tag: &str) -> String {
    push_at("http", name, name, tag)
}

fn push_at(registry: &str, path: &str, name: &str, tag: &str) -> String {
    block_on(mpo_sandbox::fixtures::push_module_at(
        state(),
        registry,
        path,
        name,
        tag,
        "own repo build",
    ))
    .unwrap_or_else(|err| panic!("pushing {path}/{name}:{tag}: {err:#}"))
}

fn status_json(args: &[&str]) -> (crate::support::Run, Value) {
    let mut all = vec!["status", "-o", "json"];
    all.extend_from_slice(args);
    let run = mpo(&all);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("status -o json: {err}: {run:?}"));
    (run, doc)
}

fn front() -> String {
    state()
        .registry("front")
        .expect("registry front")
        .host
        .clone()
}

/// The manifest answers the registry front gave for `path` (e.g. `/v2/busy-429/m/manifests/v1`).
fn front_answers(path: &str) -> Vec<u64> {
    let seen = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/requests", front())])
        .output()
        .expect("curl");
    let requests: Vec<Value> = serde_json::from_slice(&seen.stdout).expect("requests");
    requests
        .iter()
        .filter(|r| r["path"] == path)
        .filter_map(|r| r["status"].as_u64())
        .collect()
}

/// §3.8: a ModuleSource that says `scheme: HTTPS` for a plain-HTTP registry on a
/// loopback address works on Deckhouse (https first, then http); the plugin says so at
/// -v and finds the same digest.
#[test]
fn https_source_on_a_loopback_plain_http_registry_falls_back_to_http() {
    let name = unique("https-on-http");
    let http = state().registry("http").expect("http registry");
    let digest = push_to_own_http_repo(&name, "v1");
    module_of_source(
        &name,
        &name,
        json!({"repo": format!("{}/{name}", http.host), "scheme": "HTTPS"}),
    );
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digest);

    let (run, doc) = status_json(&[&name, "-v"]);
    run.assert_code(0);
    assert_eq!(
        doc["items"][0]["registryDigest"],
        digest.as_str(),
        "{run:?}"
    );
    assert_eq!(doc["items"][0]["sync"], "in-sync", "{run:?}");
    assert!(
        run.stderr.contains("using plain http") && run.stderr.contains("§3.8"),
        "the fallback is said at -v: {run:?}"
    );
    let quiet = mpo(&["status", &name]);
    assert!(!quiet.stderr.contains("plain http"), "{quiet:?}");
    mpo(&["diff", &name]).assert_code(0);
    mpo(&["explain", &name]).assert_code(0);
}

/// §3.10: a `ca` that is not a PEM certificate is ignored by Deckhouse; on a registry
/// that needs no CA the override works, and the plugin warns and works too.
#[test]
fn a_garbage_ca_is_warned_about_and_ignored() {
    let name = unique("garbage-ca");
    let http = state().registry("http").expect("http registry");
    let digest = push_to_own_http_repo(&name, "v1");
    module_of_source(
        &name,
        &name,
        json!({
            "repo": format!("{}/{name}", http.host), "scheme": "HTTP",
            "ca": "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
        }),
    );
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digest);

    let (run, doc) = status_json(&[&name]);
    run.assert_code(0);
    assert_eq!(
        doc["items"][0]["registryDigest"],
        digest.as_str(),
        "{run:?}"
    );
    assert_eq!(doc["items"][0]["sync"], "in-sync", "{run:?}");
    assert!(
        run.stderr.contains("warning:")
            && run.stderr.contains(&format!("ModuleSource {name}"))
            && run
                .stderr
                .contains("spec.registry.ca is not a usable PEM certificate; ignored"),
        "{run:?}"
    );
    let explain = mpo(&["explain", &name]);
    explain.assert_code(0);
    assert!(explain.stderr.contains("spec.registry.ca"), "{explain:?}");
}

/// §3.9: Deckhouse hashes the manifest body and never looks at Docker-Content-Digest.
/// Behind a front that sends a wrong header, the override is Ready with the body's
/// digest, and the plugin agrees, with a warning instead of an error.
#[test]
fn a_wrong_docker_content_digest_header_is_a_warning_and_the_body_counts() {
    let name = unique("digest-lie");
    let digest = push_to_http_registry(&name, "v1");
    module_of_source(
        &name,
        &name,
        json!({"repo": format!("{}/digest-lie", front()), "scheme": "HTTP"}),
    );
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digest);

    let (run, doc) = status_json(&[&name]);
    run.assert_code(0);
    assert_eq!(
        doc["items"][0]["registryDigest"],
        digest.as_str(),
        "{run:?}"
    );
    assert_eq!(doc["items"][0]["sync"], "in-sync", "{run:?}");
    assert!(
        run.stderr.contains("warning:")
            && run.stderr.contains("Docker-Content-Digest")
            && run
                .stderr
                .contains(mpo_sandbox::registry_front::WRONG_DIGEST)
            && run.stderr.contains(&format!("using {digest}")),
        "{run:?}"
    );
    let diff = mpo(&["diff", &name]);
    diff.assert_code(0);
    assert!(diff.stderr.contains("Docker-Content-Digest"), "{diff:?}");
    // Image reads take the same path.
    let files = mpo(&[
        "registry",
        "files",
        &format!("{name}:v1"),
        "--source",
        &name,
        "-o",
        "name",
    ]);
    files.assert_code(0);
    assert!(
        files.stdout.lines().any(|l| l == "module.yaml"),
        "{files:?}"
    );
}

/// An override the controller never looks at the registry for (no Module), listed by
/// `status` through `--registry-repo REPO` on the registry front.
fn override_without_module(name: &str) {
    let object = json!({
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
        "metadata": {"name": name},
        "spec": {"imageTag": "v1", "scanInterval": "1h", "rollback": false},
    });
    crate::support::kubectl_apply(&object).assert_code(0);
}

fn status_through_front(
    name: &str,
    mode: &str,
    timeout: &str,
) -> (crate::support::Run, Value, Duration) {
    let repo = format!("http://{}/{mode}", front());
    let started = Instant::now();
    let (run, doc) = status_json(&[
        name,
        "--registry-repo",
        &repo,
        "--registry-timeout",
        timeout,
        "-v",
    ]);
    (run, doc, started.elapsed())
}

/// A registry that answers 429 or 503 with `Retry-After: 4` for four seconds: asked
/// again when it says, the lookup succeeds within a 7 s timeout (a back-off of 0.5, 1,
/// 2, 4 s would give up), without hammering it meanwhile.
#[test]
fn retry_after_is_honoured_on_429_and_503() {
    for mode in ["busy-429", "busy-503"] {
        let name = unique(mode);
        let digest = push_to_http_registry(&name, "v1");
        override_without_module(&name);
        let (run, doc, took) = status_through_front(&name, mode, "7s");
        run.assert_code(0);
        assert_eq!(
            doc["items"][0]["registryDigest"],
            digest.as_str(),
            "{mode}: {run:?}"
        );
        assert!(
            took >= Duration::from_secs(3),
            "{mode}: came back before the window closed: {took:?} {run:?}"
        );
        assert!(
            run.stderr.contains("Retry-After"),
            "{mode}: said at -v: {run:?}"
        );
        let answers = front_answers(&format!("/v2/{mode}/{name}/manifests/v1"));
        let refused = answers.iter().filter(|s| **s != 200).count();
        assert!(
            (1..=3).contains(&refused) && answers.last() == Some(&200),
            "{mode}: {answers:?}"
        );
    }
}

/// A `Retry-After` beyond the registry timeout ends the lookup at once, saying why
/// (`status` with `--registry-timeout`, `diff` with its fixed 10 s).
#[test]
fn retry_after_beyond_the_registry_timeout_fails_at_once() {
    let name = unique("busy-long");
    push_to_http_registry(&name, "v1");
    override_without_module(&name);
    let (run, doc, took) = status_through_front(&name, "busy-long", "6s");
    run.assert_code(3);
    assert!(took < Duration::from_secs(4), "{took:?} {run:?}");
    assert_eq!(doc["items"][0]["registryDigest"], Value::Null, "{run:?}");

    let repo = format!("http://{}/busy-long", front());
    let started = Instant::now();
    let diff = mpo(&["diff", &name, "--registry-repo", &repo]);
    let took = started.elapsed();
    diff.assert_code(3);
    assert!(took < Duration::from_secs(5), "{took:?} {diff:?}");
    assert!(
        diff.stderr.contains("HTTP 429")
            && diff.stderr.contains("Retry-After")
            && diff.stderr.contains("past the registry timeout (10s)"),
        "{diff:?}"
    );
}

/// §3.7: dockerCfg given as raw JSON (not base64) with its key written as a URL
/// (`https://host:port/v2/`): Deckhouse matches host:port and the override is Ready; the
/// plugin reads the registry with the same credentials.
#[test]
fn raw_json_docker_cfg_with_a_url_key_is_matched_by_host_and_port() {
    use base64::Engine;
    let name = unique("raw-cfg");
    let tls = state().registry("tls").expect("tls registry");
    let source = format!("{name}-src");
    let path = format!("catalog-tests/{source}");
    let digests = [push_at("tls", &path, &name, "v1")];
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        tls.username.as_deref().unwrap_or_default(),
        tls.password.as_deref().unwrap_or_default()
    ));
    let ca = std::fs::read_to_string(&state().ca_file).expect("CA");
    let docker_cfg =
        json!({"auths": {format!("https://{}/v2/", tls.host): {"auth": auth}}}).to_string();
    module_of_source(
        &name,
        &source,
        json!({
            "repo": format!("{}/{path}", tls.host),
            "scheme": "HTTPS", "ca": ca, "dockerCfg": docker_cfg,
        }),
    );
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), digests[0]);
    let (run, doc) = status_json(&[&name]);
    run.assert_code(0);
    assert_eq!(
        doc["items"][0]["registryDigest"],
        digests[0].as_str(),
        "{run:?}"
    );
    assert_eq!(doc["items"][0]["source"], source.as_str(), "{run:?}");
    assert!(
        !run.all().contains(&auth) && !run.all().contains(tls.password.as_deref().unwrap_or("-"))
    );
    let tags = mpo(&["registry", "tags", &name, "--source", &source, "-o", "name"]);
    tags.assert_code(0);
    assert!(tags.stdout.lines().any(|l| l == "v1"), "{tags:?}");
}

/// §3.1: a multi-arch tag is in sync whether the cluster runs its linux/amd64 image or
/// the index digest itself (controllers differ); status, its JSON and diff say which.
#[test]
fn in_sync_with_the_amd64_child_or_the_index_says_which() {
    let name = unique("multiarch");
    crate::support::module_with_images(&name, true, &["v1"]);
    let (index, amd64) = block_on(mpo_sandbox::fixtures::push_multiarch(
        state(),
        &name,
        "multi",
    ))
    .expect("push index");
    mpo(&[
        "create",
        &name,
        "--tag",
        "multi",
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), amd64);

    let (run, doc) = status_json(&[&name]);
    run.assert_code(0);
    let row = &doc["items"][0];
    assert_eq!(row["sync"], "in-sync", "{run:?}");
    assert_eq!(row["matchedDigest"], "amd64Child", "{run:?}");
    assert_eq!(row["indexDigest"], index.as_str(), "{run:?}");
    let table = mpo(&["status", &name, "-o", "wide"]);
    assert!(table.stdout.contains("in sync (amd64)"), "{table:?}");
    let diff = mpo(&["diff", &name]);
    diff.assert_code(0);
    assert!(diff.stdout.contains("linux/amd64 image"), "{diff:?}");

    // A controller that takes the tag's own digest writes the index digest.
    let patch = json!({"status": {"imageDigest": index}}).to_string();
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .assert_code(0);
    assert_eq!(mpo_field(&name, ".status.imageDigest"), index);
    let (run, doc) = status_json(&[&name]);
    run.assert_code(0);
    assert_eq!(doc["items"][0]["sync"], "in-sync", "{run:?}");
    assert_eq!(doc["items"][0]["matchedDigest"], "index", "{run:?}");
    let table = mpo(&["status", &name, "-o", "wide"]);
    assert!(table.stdout.contains("in sync (index)"), "{table:?}");
    let diff = mpo(&["diff", &name, "-o", "json"]);
    diff.assert_code(0);
    let report: Value = serde_json::from_str(&diff.stdout).expect("JSON");
    assert_eq!(report["same"], true, "{diff:?}");
    assert_eq!(report["matchedDigest"], "index", "{diff:?}");
    let human = mpo(&["diff", &name]);
    human.assert_code(0);
    assert!(
        human.stdout.contains("the index digest itself"),
        "{human:?}"
    );
    let explain = mpo(&["explain", &name]);
    explain.assert_code(0);
}
