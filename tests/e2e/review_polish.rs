//! Table width, flag values and digest display as a kubectl user expects them
//! (CLI review C7, M4, P4).

use crate::support::*;

/// The lines of the table: everything before the blank line that starts the causes.
fn table_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().take_while(|l| !l.is_empty()).collect()
}

/// Review C7: the default table fits 100 columns; the digests and the source move to
/// `-o wide`; a shortened MESSAGE keeps its end, so different failures differ.
#[test]
fn status_table_fits_100_columns_and_wide_has_the_rest() {
    // A 108-character tag (the review's case) is shortened too.
    let long = unique("long-tag");
    module_with_images(&long, true, &["main"]);
    let tag = format!("feature-{}", "x".repeat(100));
    mpo(&["create", &long, "--tag", &tag, "--force"]).assert_code(0);
    let run = mpo(&["status"]);
    let table = table_lines(&run.stdout);
    assert!(table.len() > 5, "{run:?}");
    for line in &table {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line:?}\n{}",
            line.chars().count(),
            run.stdout
        );
    }
    let header = table[0];
    assert!(
        header.starts_with("NAME") && header.contains("MESSAGE"),
        "{header}"
    );
    assert!(
        !header.contains("CLUSTER") && !header.contains("SOURCE"),
        "{header}"
    );
    let message_of = |name: &str| {
        table
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {}", run.stdout))
            .to_string()
    };
    // The end of each download error is what tells them apart.
    let (bad_creds, missing, no_ca) = (
        message_of("bad-creds-module"),
        message_of("missing-tag"),
        message_of("no-ca-module"),
    );
    assert!(
        ["Not authorized", "401", "authentication required"]
            .iter()
            .any(|reason| bad_creds.contains(reason)),
        "{bad_creds}"
    );
    assert!(missing.contains("manifest unknown"), "{missing}");
    assert!(no_ca.contains("UnknownIssuer"), "{no_ca}");

    let wide = mpo(&["status", "-o", "wide"]);
    let wide_table = table_lines(&wide.stdout);
    for column in [
        "NAME", "TAG", "SYNC", "UPDATED", "MESSAGE", "CLUSTER", "REGISTRY", "SOURCE",
    ] {
        assert!(wide_table[0].contains(column), "{column}: {}", wide.stdout);
    }
    let plain = wide_table
        .iter()
        .find(|l| l.starts_with("plain-module "))
        .expect("plain-module row");
    assert!(plain.contains(" plain"), "the source column: {plain}");
    assert!(wide.stdout.contains(&tag), "the whole tag in -o wide");
    mpo(&["delete", &long, "--yes"]).assert_code(0);
}

/// Review M4: boolean flags take `=true|false` as kubectl's do, and
/// `--request-timeout` takes bare seconds.
#[test]
fn boolean_flags_take_values_as_kubectl() {
    mpo(&[
        "status",
        "--offline=true",
        "--watch=false",
        "--request-timeout",
        "5",
    ])
    .assert_code(0);
    mpo(&["status", "plain-module", "--offline=1", "-w=false"]).assert_code(0);
    let missing = unique("no-such-override");
    let delete = mpo(&[
        "delete",
        &missing,
        "--yes=true",
        "--rollback=false",
        "--wait=false",
    ]);
    assert!(
        delete.stderr.contains("not found") && !delete.stderr.contains("unexpected value"),
        "{delete:?}"
    );
    assert_ne!(delete.code, 2, "{delete:?}");
    let bad = mpo(&["create", "plain-module", "--tag", "main", "--wait=maybe"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("invalid boolean \"maybe\""), "{bad:?}");
    // A space does not give a boolean its value, as with kubectl (pflag).
    let spaced = mpo(&["status", "--offline", "false"]);
    assert!(spaced.stderr.contains(r#""false" not found"#), "{spaced:?}");
}

fn full_digests(text: &str) -> usize {
    text.match_indices("sha256:")
        .filter(|(at, _)| {
            let hex = &text[at + 7..];
            hex.len() >= 64 && hex[..64].chars().all(|c| c.is_ascii_hexdigit())
        })
        .count()
}

fn short_digest_of(full: &str) -> String {
    format!("sha256:{}…", &full["sha256:".len().."sha256:".len() + 12])
}

/// Review P4: on a terminal `create --wait` and `diff` show `sha256:` and 12 hex digits
/// as the README does; in a pipe they print whole digests a program can use.
#[test]
fn digests_are_short_on_a_terminal_and_whole_in_a_pipe() {
    let name = unique("short-digest");
    let digests = module_with_images(&name, true, &["main"]);
    let short = short_digest_of(&digests[0]);

    let create = on_terminal(&["create", &name, "--tag", "main", "--wait"], &[]);
    assert!(
        create.stdout.contains(&format!("registry digest {short}")),
        "{create:?}"
    );
    assert!(
        create.stdout.contains(&format!("runs main@{short}")),
        "{create:?}"
    );
    assert_eq!(full_digests(&create.stdout), 0, "{create:?}");

    let diff = on_terminal(&["diff", &name], &[]);
    assert!(
        diff.stdout.contains(&format!("cluster:  {short}")),
        "{diff:?}"
    );
    assert!(
        diff.stdout.contains(&format!("registry: {short}")),
        "{diff:?}"
    );
    assert_eq!(full_digests(&diff.stdout), 0, "{diff:?}");

    let piped = mpo(&["diff", &name]);
    piped.assert_code(0);
    assert!(
        piped.stdout.contains(&format!("cluster:  {}", digests[0]))
            && piped.stdout.contains(&format!("registry: {}", digests[0])),
        "{piped:?}"
    );
    mpo(&["delete", &name, "--yes"]).assert_code(0);
}

/// Review P5: `registry images -o json` is a list document like `status -o json`, and
/// `modules` and `tags` name the repository with the same key.
#[test]
fn registry_json_documents_share_their_shape() {
    let images = mpo(&["registry", "images", "echo:main-patch-03354", "-o", "json"]);
    images.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&images.stdout).expect("JSON");
    assert_eq!(doc["apiVersion"], "kubectl-mpo/v1", "{doc}");
    assert_eq!(doc["kind"], "AppImageList", "{doc}");
    assert_eq!(doc["items"][0]["name"], "backend", "{doc}");

    let modules = mpo(&["registry", "modules", "--source", "test", "-o", "json"]);
    modules.assert_code(0);
    let modules: serde_json::Value = serde_json::from_str(&modules.stdout).expect("JSON");
    let tags = mpo(&["registry", "tags", "echo", "-o", "json"]);
    tags.assert_code(0);
    let tags: serde_json::Value = serde_json::from_str(&tags.stdout).expect("JSON");
    let repository = modules["repository"].as_str().expect("modules repository");
    assert_eq!(
        tags["repository"].as_str(),
        Some(format!("{repository}/echo").as_str()),
        "{modules} {tags}"
    );
    assert!(modules.get("repo").is_none(), "{modules}");
}

/// Review P5: `create --force --wait` prints the failing checks once, not again with the
/// controller's verdict; `--source` on a v1alpha2 cluster is said to be ignored.
#[test]
fn forced_create_prints_its_problem_once_and_source_is_warned() {
    let name = unique("forced-disabled");
    module_with_images(&name, false, &["main"]);
    let run = mpo(&[
        "create",
        &name,
        "--tag",
        "main",
        "--force",
        "--wait",
        "--timeout",
        "60s",
    ]);
    run.assert_code(1);
    assert!(run.stdout.contains("Conflict:"), "{run:?}");
    assert_eq!(
        run.all().matches("spec.enabled: false").count(),
        1,
        "the problem once: {run:?}"
    );
    mpo(&["delete", &name, "--yes"]).assert_code(0);

    let other = unique("source-ignored");
    module_with_images(&other, true, &["main"]);
    let source = mpo(&[
        "create",
        &other,
        "--tag",
        "main",
        "--source",
        "plain",
        "--dry-run=client",
    ]);
    source.assert_code(0);
    assert!(source.stderr.contains("--source is ignored"), "{source:?}");
}

/// Review P5: Ctrl-C during `--wait` clears the spinner line before the message.
#[test]
fn interrupted_wait_clears_the_spinner_line() {
    let name = unique("interrupt-wait");
    quiet_override(&name, &["v1"]);
    // An older controller writes nothing on an unchanged digest, so the wait lasts.
    set_renew_style(&name, "legacy");
    let run = on_terminal(&["renew", &name, "--wait", "--timeout", "60s"], &["\x03"]);
    set_renew_style(&name, "modern");
    let text = run.all();
    let spinner = text
        .rfind(&format!("waiting for {name}: controller re-check"))
        .expect("a spinner was drawn");
    let interrupted = text
        .rfind("interrupted while waiting")
        .expect("interrupted");
    assert!(spinner < interrupted, "{text:?}");
    let between = &text[spinner..interrupted];
    assert!(
        between.contains("\u{1b}[2K") || between.contains("\u{1b}[K"),
        "the spinner line is cleared: {text:?}"
    );
    mpo(&["delete", &name, "--yes"]).assert_code(0);
}

/// Review P8: registry commands say what they chose: the ModuleSource among several,
/// that an embedded module has none, the override's tag.
#[test]
fn registry_commands_say_what_they_chose() {
    let two = mpo(&["registry", "tags", "two-sources"]);
    two.assert_code(0);
    assert!(
        two.stderr.contains("using test") && two.stderr.contains("--source"),
        "{two:?}"
    );

    let embedded = mpo(&["registry", "tags", "ingress-nginx"]);
    assert_ne!(embedded.code, 0, "{embedded:?}");
    assert!(
        embedded.stderr.contains("embedded")
            && !embedded.stderr.contains("several ModuleSources exist"),
        "{embedded:?}"
    );

    let files = mpo(&["registry", "files", "plain-module"]);
    files.assert_code(0);
    assert!(
        files
            .stderr
            .contains("using tag main of override plain-module"),
        "{files:?}"
    );
}
