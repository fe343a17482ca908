//! The image-aware workflow: preflight against the image (settings schema,
//! requirements, stage), tags with kind/digest/date, history and undo.

use serde_json::json;

use crate::support::{block_on, kubectl, module_with_images, mpo, mpo_field, state, unique};
use crate::validation::mpo_exists;

fn push(module: &str, tag: &str, files: &[(&str, &str)], created: &str) -> String {
    push_annotated(module, tag, files, created, json!({}))
}

fn push_annotated(
    module: &str,
    tag: &str,
    files: &[(&str, &str)],
    created: &str,
    annotations: serde_json::Value,
) -> String {
    block_on(mpo_sandbox::fixtures::push_module_image(
        state(),
        module,
        tag,
        files,
        created,
        annotations,
    ))
    .unwrap_or_else(|err| panic!("pushing {module}:{tag}: {err:#}"))
}

fn settings(module: &str, value: serde_json::Value) {
    block_on(mpo_sandbox::fixtures::set_module_settings(
        state(),
        module,
        value,
    ))
    .unwrap_or_else(|err| panic!("settings of {module}: {err:#}"));
}

const STRICT: &str = "type: object\nproperties:\n  replicas:\n    type: string\n";

#[test]
fn preflight_refuses_settings_the_image_schema_rejects() {
    let name = unique("img-schema");
    module_with_images(&name, true, &["v1"]);
    push(
        &name,
        "strict",
        &[("openapi/config-values.yaml", STRICT)],
        "2026-01-02T00:00:00Z",
    );
    settings(&name, json!({"replicas": 2}));

    let refused = mpo(&["create", &name, "--tag", "strict"]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("spec.settings.replicas"),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("/properties/replicas/type"),
        "names the schema rule: {refused:?}"
    );
    assert!(
        refused.stderr.contains("kubectl edit moduleconfig"),
        "{refused:?}"
    );
    assert!(!mpo_exists(&name));

    let explain = mpo(&["explain", &name, "--tag", "strict"]);
    explain.assert_code(1);
    assert!(
        explain
            .all()
            .contains("Validation error: spec.settings.replicas"),
        "{explain:?}"
    );

    mpo(&["create", &name, "--tag", "v1"]).assert_code(0);
    let edit = mpo(&["edit", &name, "--tag", "strict"]);
    edit.assert_code(1);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v1");
    mpo(&["edit", &name, "--tag", "strict", "--force"]).assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "strict");
}

#[test]
fn preflight_checks_requirements_and_stage() {
    let name = unique("img-req");
    module_with_images(&name, true, &["v1"]);
    push(
        &name,
        "needs",
        &[(
            "module.yaml",
            "name: x\nrequirements:\n  kubernetes: '>= 99.0'\n  modules:\n    no-such-module: '>= 0.0.0'\n",
        )],
        "2026-01-02T00:00:00Z",
    );
    push(
        &name,
        "exp",
        &[("module.yaml", "name: x\nstage: Experimental\n")],
        "2026-01-03T00:00:00Z",
    );

    let needs = mpo(&["create", &name, "--tag", "needs"]);
    needs.assert_code(1);
    assert!(needs.stderr.contains("Kubernetes >= 99.0"), "{needs:?}");
    assert!(needs.stderr.contains("no-such-module"), "{needs:?}");

    // The Deckhouse version comes from the d8-system/deckhouse Deployment's image tag
    // (the sandbox runs one per generation; deckhouse-real §1).
    push(
        &name,
        "newer-dkp",
        &[(
            "module.yaml",
            "name: x\nrequirements:\n  deckhouse: '>= 9.0'\n",
        )],
        "2026-01-04T00:00:00Z",
    );
    let dkp = mpo(&["create", &name, "--tag", "newer-dkp"]);
    dkp.assert_code(1);
    assert!(
        dkp.stderr
            .contains("needs Deckhouse >= 9.0: the cluster has v1."),
        "{dkp:?}"
    );
    push(
        &name,
        "fits-dkp",
        &[(
            "module.yaml",
            "name: x\nrequirements:\n  deckhouse: '>= 1.60'\n",
        )],
        "2026-01-05T00:00:00Z",
    );
    let fits = mpo(&["create", &name, "--tag", "fits-dkp", "--dry-run=server"]);
    fits.assert_code(0);

    let experimental = mpo(&["create", &name, "--tag", "exp"]);
    experimental.assert_code(1);
    assert!(
        experimental
            .stderr
            .contains("allowExperimentalModules: true"),
        "{experimental:?}"
    );
    assert!(!mpo_exists(&name));
    mpo(&["create", &name, "--tag", "exp", "--force"]).assert_code(0);
}

#[test]
fn an_image_without_the_files_passes_and_says_so() {
    let name = unique("img-bare");
    module_with_images(&name, true, &["v1"]);
    push(
        &name,
        "bare",
        &[("openapi/config-values.yaml", ""), ("module.yaml", "")],
        "2026-01-02T00:00:00Z",
    );
    settings(&name, json!({"anything": true}));
    let run = mpo(&["create", &name, "--tag", "bare"]);
    run.assert_code(0);
    assert!(run.stderr.contains("settings not checked"), "{run:?}");
    assert!(
        run.stderr.contains("requirements and stage not checked"),
        "{run:?}"
    );
}

#[test]
fn registry_tags_show_kind_digest_creation_and_size_newest_first() {
    let name = unique("img-tags");
    module_with_images(&name, true, &[]);
    let older = push(&name, "older", &[], "2026-01-01T00:00:00Z");
    let newer = push_annotated(
        &name,
        "newer",
        &[],
        "2026-03-01T00:00:00Z",
        json!({"org.opencontainers.image.revision": "abcdef1234567890", "org.opencontainers.image.source": "https://git.example.com/m"}),
    );
    push(&name, "v1.2.3", &[], "2026-02-01T00:00:00Z");
    mpo(&["create", &name, "--tag", "older"]).assert_code(0);

    let run = mpo(&["registry", "tags", &name, "-o", "json"]);
    run.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let order: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(order, ["newer", "v1.2.3", "older"], "{run:?}");
    let details = doc["details"].as_array().expect("details");
    assert_eq!(details[0]["digest"], newer);
    assert_eq!(details[0]["kind"], "build");
    assert_eq!(details[0]["created"], "2026-03-01T00:00:00Z");
    assert_eq!(details[0]["provenance"]["revision"], "abcdef1234567890");
    assert!(details[0]["size"].as_u64().unwrap_or(0) > 0);
    assert_eq!(details[1]["kind"], "release");
    assert_eq!(details[2]["digest"], older);
    assert_eq!(details[2]["current"], true);

    let by_name = mpo(&["registry", "tags", &name, "--sort", "name", "-o", "name"]);
    assert_eq!(
        by_name.stdout.lines().collect::<Vec<_>>(),
        ["newer", "older", "v1.2.3"]
    );
    let only = mpo(&["registry", "tags", &name, "--include", "^new"]);
    only.assert_code(0);
    assert!(
        only.stdout.contains("newer") && !only.stdout.contains("older"),
        "{only:?}"
    );
    assert!(
        only.stdout.contains("CREATED") && only.stdout.contains("SIZE"),
        "{only:?}"
    );
    let table = mpo(&["registry", "tags", &name]);
    assert!(table.stdout.contains("older (current)"), "{table:?}");
    let wide = mpo(&["registry", "tags", &name, "-o", "wide"]);
    assert!(
        wide.stdout.contains("abcdef1234567890") && wide.stdout.contains(&newer),
        "{wide:?}"
    );
    let all = mpo(&["registry", "tags", &name, "--all", "-o", "json"]);
    assert!(all.stdout.contains("\"app-image\""), "{all:?}");
    mpo(&["registry", "tags", &name, "--include", "("]).assert_code(2);
}

#[test]
fn history_records_changes_and_undo_sets_them_back() {
    let name = unique("img-undo");
    let digests = module_with_images(&name, true, &["v1", "v2", "v3"]);
    mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "60s"]).assert_code(0);
    mpo(&["edit", &name, "--tag", "v2"]).assert_code(0);
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"imageTag":"v3"}}"#,
    ])
    .assert_code(0);

    let history = mpo(&["history", &name, "-o", "json"]);
    history.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&history.stdout).expect("JSON");
    let revisions = doc["revisions"].as_array().expect("revisions");
    let tags: Vec<&str> = revisions.iter().filter_map(|r| r["tag"].as_str()).collect();
    assert_eq!(tags, ["v1", "v2", "v3"], "{history:?}");
    assert_eq!(revisions[0]["by"], "create");
    assert_eq!(revisions[0]["digest"], digests[0]);
    assert_eq!(revisions[2]["by"], "changed outside kubectl mpo");
    let table = mpo(&["history", &name]);
    assert!(
        table.stdout.contains("changed outside kubectl mpo"),
        "{table:?}"
    );

    let undo = mpo(&["undo", &name]);
    undo.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");

    // v1 now points to another build than the one recorded.
    crate::support::push_module(&name, "v1", "rebuilt");
    let back = mpo(&[
        "undo",
        &name,
        "--to-revision",
        "1",
        "--wait",
        "--timeout",
        "60s",
    ]);
    back.assert_code(0);
    assert!(back.stderr.contains("now points to"), "{back:?}");
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v1");
    let after = mpo(&["history", &name, "-o", "json"]);
    assert!(after.stdout.contains("\"undo\""), "{after:?}");
    mpo(&["undo", &name, "--to-revision", "99"]).assert_code(2);
}

#[test]
fn status_and_explain_flag_a_tag_deleted_from_the_registry() {
    let name = unique("img-gone");
    module_with_images(&name, true, &["v1"]);
    let digest = push(&name, "ci-build", &[], "2026-01-02T00:00:00Z");
    mpo(&[
        "create",
        &name,
        "--tag",
        "ci-build",
        "--wait",
        "--timeout",
        "60s",
    ])
    .assert_code(0);
    block_on(mpo_sandbox::fixtures::delete_manifest(
        state(),
        &name,
        &digest,
    ))
    .unwrap_or_else(|err| panic!("deleting {name}@{digest}: {err:#}"));

    let status = mpo(&["status", &name]);
    assert!(
        status.all().contains("no longer exists in the registry"),
        "{status:?}"
    );
    assert!(status.all().contains("Download error"), "{status:?}");
    assert!(
        status
            .all()
            .contains(&format!("keeps imageDigest {digest}")),
        "{status:?}"
    );

    let explain = mpo(&["explain", &name]);
    explain.assert_code(1);
    assert!(
        explain.all().contains("is gone from the registry"),
        "{explain:?}"
    );
    assert!(
        explain.all().contains(&format!("kubectl mpo undo {name}")),
        "{explain:?}"
    );
}

#[test]
fn explain_diff_and_status_wide_show_which_commit_runs_and_which_is_pushed() {
    let name = unique("img-prov");
    module_with_images(&name, true, &[]);
    let revision = |r: &str| json!({"org.opencontainers.image.revision": r, "org.opencontainers.image.source": "https://git.example.com/m"});
    push_annotated(
        &name,
        "main",
        &[],
        "2026-01-01T00:00:00Z",
        revision("aaaaaaaaaaaa1111"),
    );
    mpo(&[
        "create",
        &name,
        "--tag",
        "main",
        "--wait",
        "--timeout",
        "60s",
    ])
    .assert_code(0);
    push_annotated(
        &name,
        "main",
        &[],
        "2026-01-02T00:00:00Z",
        revision("bbbbbbbbbbbb2222"),
    );

    let explain = mpo(&["explain", &name]);
    assert!(
        explain
            .stdout
            .contains("cluster runs:  https://git.example.com/m@aaaaaaaaaaaa"),
        "{explain:?}"
    );
    assert!(
        explain
            .stdout
            .contains("registry has:  https://git.example.com/m@bbbbbbbbbbbb"),
        "{explain:?}"
    );
    // The new build is dated long before the last scan: still Ready on the old image
    // reads as a deploy that may be failing silently (deckhouse-real §3.11).
    assert!(
        explain.stdout.contains("still runs the old one")
            && explain
                .stdout
                .contains(&format!("kubectl mpo logs {name} --level error")),
        "{explain:?}"
    );
    let diff = mpo(&["diff", &name, "-o", "json"]);
    diff.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&diff.stdout).expect("JSON");
    assert_eq!(
        doc["provenance"]["cluster"]["revision"], "aaaaaaaaaaaa1111",
        "{diff:?}"
    );
    assert_eq!(
        doc["provenance"]["registry"]["revision"], "bbbbbbbbbbbb2222",
        "{diff:?}"
    );
    let status = mpo(&["status", &name, "-o", "wide"]);
    assert!(
        status.stdout.contains("aaaaaaaaaaaa -> bbbbbbbbbbbb"),
        "{status:?}"
    );
    let plain = mpo(&["status", &name]);
    assert!(!plain.stdout.contains("aaaaaaaaaaaa"), "{plain:?}");
}

#[test]
fn the_tag_picker_lists_newest_first_marks_the_current_tag_and_cancels_quietly() {
    let name = unique("img-pick");
    module_with_images(&name, true, &[]);
    push(&name, "alpha-old", &[], "2026-01-01T00:00:00Z");
    push(&name, "zulu-new", &[], "2026-03-01T00:00:00Z");
    mpo(&["create", &name, "--tag", "alpha-old"]).assert_code(0);

    let cancelled = crate::support::on_terminal(&["edit", &name], &["\x1b"]);
    assert_eq!(cancelled.code, 130, "{cancelled:?}");
    assert!(
        cancelled.all().contains("Esc cancel"),
        "key help: {cancelled:?}"
    );
    assert!(cancelled.all().contains("(current)"), "{cancelled:?}");
    assert!(
        !cancelled.all().contains("error:"),
        "a quiet cancel: {cancelled:?}"
    );
    assert!(
        cancelled.all().contains("nothing was changed"),
        "{cancelled:?}"
    );

    let interrupted = crate::support::on_terminal(&["edit", &name], &["\x03"]);
    assert_eq!(interrupted.code, 130, "{interrupted:?}");
    assert!(
        interrupted.all().contains("\x1b8\x1b[J"),
        "clears the picker: {interrupted:?}"
    );
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "alpha-old");

    // Enter takes the first line: the newest build, not the alphabetically first.
    let chosen = crate::support::on_terminal(&["edit", &name], &["\r"]);
    assert!(chosen.all().contains("zulu-new"), "{chosen:?}");
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "zulu-new");
}

#[test]
fn the_sandbox_seeds_the_image_workflow() {
    let tags = mpo(&["registry", "tags", "preflight-demo", "--all", "-o", "json"]);
    tags.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&tags.stdout).expect("JSON");
    let details = doc["details"].as_array().expect("details");
    assert_eq!(details[0]["tag"], "main-2", "{tags:?}");
    assert_eq!(
        details[0]["provenance"]["revision"],
        "2222222222222222222222222222222222222222"
    );
    // Application images are told by the digest a build lists in images_digests.json,
    // with their name there; the app image of the build CI deleted is listed by none.
    let app_images: Vec<&serde_json::Value> = details
        .iter()
        .filter(|d| d["kind"] == "app-image")
        .collect();
    assert!(!app_images.is_empty(), "{tags:?}");
    for image in &app_images {
        assert_eq!(image["image"], "backend", "{image}");
        let build = image["listedBy"][0].as_str().expect("listedBy");
        let listed = mpo(&[
            "registry",
            "images",
            &format!("preflight-demo:{build}"),
            "-o",
            "json",
        ]);
        assert!(
            listed
                .stdout
                .contains(image["digest"].as_str().expect("digest")),
            "{build} lists {image}: {listed:?}"
        );
    }
    let unlisted: Vec<&serde_json::Value> =
        details.iter().filter(|d| d["kind"] == "unlisted").collect();
    assert_eq!(
        unlisted.len(),
        1,
        "the deleted build's backend only: {tags:?}"
    );
    assert!(unlisted[0].get("image").is_none(), "{tags:?}");
    assert!(!details.iter().any(|d| d["tag"] == "cleaned"), "{tags:?}");
    let table = mpo(&["registry", "tags", "preflight-demo", "--all"]);
    assert!(table.stdout.contains("app-image (backend)"), "{table:?}");

    mpo(&["explain", "preflight-demo", "--tag", "strict-schema"]).assert_code(1);
    let needs = mpo(&["explain", "preflight-demo", "--tag", "needs-newer-cluster"]);
    assert!(needs.stdout.contains("Kubernetes >= 99.0"), "{needs:?}");
    let experimental = mpo(&["explain", "preflight-demo", "--tag", "experimental"]);
    assert!(
        experimental.stdout.contains("allowExperimentalModules"),
        "{experimental:?}"
    );
    let status = mpo(&["status", "preflight-demo"]);
    assert!(
        status.all().contains("no longer exists in the registry"),
        "{status:?}"
    );
}

#[test]
fn renew_checks_a_new_image_before_asking_for_it_and_records_it() {
    let name = unique("img-renew");
    module_with_images(&name, true, &["v1"]);
    settings(&name, json!({"replicas": 2}));
    mpo(&["create", &name, "--tag", "v1", "--wait", "--timeout", "60s"]).assert_code(0);
    // CI pushed a build under the same tag whose schema rejects the settings.
    push(
        &name,
        "v1",
        &[("openapi/config-values.yaml", STRICT)],
        "2026-01-02T00:00:00Z",
    );

    let refused = mpo(&["renew", &name]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("spec.settings.replicas"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("not renewed"), "{refused:?}");
    assert_eq!(
        mpo_field(
            &name,
            ".metadata.annotations.modules\\.deckhouse\\.io/renew"
        ),
        "",
        "nothing was asked of the controller"
    );

    mpo(&["renew", &name, "--force"]).assert_code(0);
    let history = mpo(&["history", &name, "-o", "json"]);
    assert!(history.stdout.contains("\"renew\""), "{history:?}");
}
