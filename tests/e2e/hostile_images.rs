//! Hostile images from the registry (issue #19): a gzip bomb, a layer whose size or
//! digest does not match the manifest, 100 000 empty files, file names with newlines and
//! terminal escapes, and hostile tags. Each read ends with a clear error (exit 3) or a
//! correct answer, and the binary's peak RSS, measured with wait4, stays bounded: the
//! layers are streamed, never held whole.

use std::process::Stdio;
use std::sync::OnceLock;

use mpo_sandbox::hostile::{self, Kind};

use crate::support::{Run, block_on, command, quiet_override, state, unique};

/// Peak RSS allowed for any read of a hostile image. The debug binary idles at ~20 MiB;
/// holding the bomb (1 GiB) or its entries would blow far past this.
const RSS_LIMIT_KIB: u64 = 96 * 1024;

/// One run of the binary with its peak resident set size.
struct Measured {
    run: Run,
    max_rss_kib: u64,
}

impl Measured {
    #[track_caller]
    fn assert_bounded(&self, what: &str) -> &Self {
        assert!(
            self.max_rss_kib > 0 && self.max_rss_kib < RSS_LIMIT_KIB,
            "{what}: peak RSS {} KiB, limit {RSS_LIMIT_KIB} KiB\n{:?}",
            self.max_rss_kib,
            self.run
        );
        eprintln!(
            "{what}: exit {}, peak RSS {} KiB",
            self.run.code, self.max_rss_kib
        );
        self
    }

    /// Exit 3, one `error:` line that contains every part of `expected`.
    #[track_caller]
    fn assert_refused(&self, expected: &[&str]) -> &Self {
        self.run.assert_code(3);
        for part in expected {
            assert!(
                self.run.stderr.contains(part),
                "expected {part:?} in the error\n{:?}",
                self.run
            );
        }
        assert!(
            self.run.stderr.starts_with("error: "),
            "one clear error line first: {:?}",
            self.run
        );
        assert!(!self.run.stderr.contains("panicked"), "{:?}", self.run);
        self
    }
}

/// Forks the command from a small process and reports the child's peak RSS from
/// wait4. (Measured from this test process, the child's ru_maxrss would start at this
/// process's own size: Linux carries the pre-exec address space's high-water mark into
/// it.) python3 is a sandbox requirement already.
const MEASURE: &str = r#"
import os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"#;

/// Runs the binary against the sandbox (the environment of `support::command`) and
/// measures its peak RSS.
fn measured(args: &[&str]) -> Measured {
    let report_dir = crate::support::temp_dir("mpo-rss");
    let report = report_dir.path().join("max-rss");
    let template = command(args);
    let mut wrapped = std::process::Command::new("python3");
    wrapped
        .arg("-c")
        .arg(MEASURE)
        .arg(&report)
        .arg(template.get_program())
        .args(template.get_args())
        .stdin(Stdio::null());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    let output = wrapped.output().expect("start python3 and kubectl-mpo");
    let max_rss_kib = std::fs::read_to_string(&report)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS reported for {args:?}: {output:?}"));
    Measured {
        run: Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        max_rss_kib,
    }
}

/// The module (a repository of the `tls` registry, ModuleSource `test`) holding one
/// hostile image per kind, tagged with the kind's name; pushed once per test run.
fn hostile_module() -> &'static str {
    static MODULE: OnceLock<String> = OnceLock::new();
    MODULE.get_or_init(|| {
        let module = unique("hostile");
        for kind in Kind::ALL {
            block_on(hostile::push(state(), &module, kind.name(), kind))
                .unwrap_or_else(|err| panic!("pushing the {} image: {err:#}", kind.name()));
        }
        module
    })
}

fn image(kind: Kind) -> String {
    format!("{}:{}", hostile_module(), kind.name())
}

fn registry(args: &[&str]) -> Measured {
    let mut all = vec!["registry"];
    all.extend_from_slice(args);
    all.extend(["--source", "test"]);
    measured(&all)
}

#[test]
fn hostile_gzip_bomb_stops_at_the_layer_cap_with_bounded_memory() {
    let bomb = image(Kind::Bomb);
    registry(&["files", &bomb])
        .assert_refused(&["unpacks to more than 512Mi", "--max-layer-size"])
        .assert_bounded("registry files (gzip bomb)");
    registry(&["cat", &bomb, "bomb.bin"])
        .assert_refused(&["unpacks to more than 512Mi", "--max-layer-size"])
        .assert_bounded("registry cat (gzip bomb)");
    // Raising the layer cap meets the image cap (1Gi; the bomb is 1 GiB plus its tar
    // framing).
    registry(&["files", &bomb, "--max-layer-size", "2Gi"])
        .assert_refused(&["image unpacks to more than 1Gi", "--max-image-size"])
        .assert_bounded("registry files (gzip bomb, --max-layer-size 2Gi)");
}

#[test]
fn hostile_gzip_bomb_reads_in_bounded_memory_when_the_caps_allow_it() {
    let bomb = image(Kind::Bomb);
    let raised = ["--max-layer-size", "2Gi", "--max-image-size", "2Gi"];
    let mut args = vec!["files", bomb.as_str(), "-o", "json"];
    args.extend(raised);
    let listed = registry(&args);
    listed.run.assert_code(0);
    listed.assert_bounded("registry files (1 GiB file, caps raised)");
    let doc: serde_json::Value = serde_json::from_str(&listed.run.stdout).expect("JSON");
    assert_eq!(doc["files"][0]["path"], "bomb.bin");
    assert_eq!(doc["files"][0]["size"], hostile::BOMB_BYTES);
    // One file of 1 GiB is over the one-file cap: cat refuses it instead of holding it.
    let mut args = vec!["cat", bomb.as_str(), "bomb.bin"];
    args.extend(raised);
    registry(&args)
        .assert_refused(&["bomb.bin", "over the 16Mi limit", "--max-file-size"])
        .assert_bounded("registry cat (1 GiB file, caps raised)");
}

#[test]
fn hostile_layer_with_a_wrong_declared_size_is_refused() {
    let wrong = image(Kind::SizeMismatch);
    for args in [
        vec!["files", wrong.as_str()],
        vec!["cat", &wrong, "module.yaml"],
    ] {
        registry(&args)
            .assert_refused(&["declares", "refusing"])
            .assert_bounded("size mismatch");
    }
}

#[test]
fn hostile_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let wrong = image(Kind::DigestMismatch);
    for args in [vec!["files", wrong.as_str()], vec!["cat", &wrong, "nonce"]] {
        registry(&args)
            .assert_refused(&["does not match its digest", "refusing"])
            .assert_bounded("digest mismatch");
    }
}

#[test]
fn hostile_100k_files_stop_at_the_entry_cap() {
    let many = image(Kind::ManyFiles);
    registry(&["files", &many])
        .assert_refused(&["more than 50000 entries", "--max-files"])
        .assert_bounded("registry files (100k files)");
    let listed = registry(&["files", &many, "-o", "name", "--max-files", "200000"]);
    listed.run.assert_code(0);
    listed.assert_bounded("registry files (100k files, --max-files 200000)");
    assert_eq!(listed.run.stdout.lines().count(), hostile::MANY_FILES);
}

#[test]
fn hostile_file_names_are_data_not_terminal_input() {
    let named = image(Kind::HostileNames);
    let listed = registry(&["files", &named, "-o", "json"]);
    listed.run.assert_code(0);
    listed.assert_bounded("registry files (hostile names)");
    let doc: serde_json::Value = serde_json::from_str(&listed.run.stdout).expect("JSON");
    let paths: Vec<&str> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for name in hostile::HOSTILE_NAMES {
        let path = format!("hostile/{name}");
        assert!(paths.contains(&path.as_str()), "{path:?} in {paths:?}");
    }
    // JSON carries control characters escaped, never raw.
    assert!(
        !listed.run.stdout.contains('\u{1b}') && !listed.run.stdout.contains('\r'),
        "{:?}",
        listed.run
    );
    let cat = registry(&["cat", &named, "hostile/evil\nname.yaml"]);
    cat.run.assert_code(0);
    assert!(
        cat.run.stdout.starts_with("content of evil\nname.yaml"),
        "{:?}",
        cat.run
    );
}

#[test]
fn hostile_tags_are_refused_by_the_registry_and_listed_safely() {
    let module = unique("hostile-tags");
    let attempts = block_on(hostile::push_hostile_tags(state(), &module)).expect("push tags");
    let accepted: Vec<&str> = attempts
        .iter()
        .filter(|a| a.refused.is_none())
        .map(|a| a.tag.as_str())
        .collect();
    // Distribution checks tags against the OCI grammar; the legal 128-character one
    // gets in.
    let long = format!("_{}", "x".repeat(127));
    assert!(accepted.contains(&long.as_str()), "{attempts:?}");
    let tags = measured(&[
        "registry", "tags", &module, "--source", "test", "-o", "json",
    ]);
    tags.run.assert_code(0);
    tags.assert_bounded("registry tags (hostile tags)");
    let doc: serde_json::Value = serde_json::from_str(&tags.run.stdout).expect("JSON");
    let listed: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    eprintln!("hostile tags: {attempts:?}; listed: {listed:?}");
    assert!(listed.contains(&long.as_str()), "{listed:?}");
    assert!(listed.contains(&"base"), "{listed:?}");
    // Whatever got in (a URL parser drops a raw newline, for one), what is listed
    // follows the OCI tag grammar.
    for tag in &listed {
        let mut chars = tag.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        assert!(
            first_ok
                && tag.len() <= 128
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
            "{tag:?}"
        );
    }
    assert!(!tags.run.stdout.contains('\u{1b}'), "{:?}", tags.run);
}

#[test]
fn hostile_images_end_diff_content_with_a_clear_error() {
    let name = unique("hostile-diff");
    quiet_override(&name, &["v1"]);
    let cases = [
        (
            Kind::Bomb,
            vec!["unpacks to more than 512Mi", "--max-layer-size"],
        ),
        (Kind::SizeMismatch, vec!["declares", "refusing"]),
        (Kind::DigestMismatch, vec!["does not match its digest"]),
        (
            Kind::ManyFiles,
            vec!["more than 50000 entries", "--max-files"],
        ),
    ];
    for (kind, expected) in cases {
        // The override keeps the deployed v1 (its re-check is an hour away) while v1
        // in the registry becomes the hostile image.
        block_on(hostile::push(state(), &name, "v1", kind))
            .unwrap_or_else(|err| panic!("pushing {}: {err:#}", kind.name()));
        measured(&["diff", &name, "--content"])
            .assert_refused(&expected)
            .assert_bounded(&format!("diff --content ({})", kind.name()));
    }
    crate::support::mpo(&["delete", &name, "--yes"]);
}

#[test]
fn hostile_reads_end_at_the_pull_timeout() {
    let bomb = image(Kind::Bomb);
    let args = [
        "files",
        bomb.as_str(),
        "--max-layer-size",
        "2Gi",
        "--max-image-size",
        "2Gi",
        "--pull-timeout",
        "1ms",
    ];
    registry(&args)
        .assert_refused(&["took longer than 1ms", "--pull-timeout"])
        .assert_bounded("registry files (--pull-timeout 1ms)");
}

#[test]
fn hostile_cap_flags_are_checked_before_any_request() {
    for bad in [
        vec![
            "registry",
            "files",
            "echo:v1.0.0",
            "--max-layer-size",
            "lots",
        ],
        vec![
            "registry",
            "cat",
            "echo:v1.0.0",
            "x",
            "--max-file-size",
            "0",
        ],
        vec!["registry", "files", "echo:v1.0.0", "--max-files", "0"],
        vec!["diff", "echo", "--content", "--pull-timeout", "soon"],
    ] {
        let run = measured(&bad).run;
        run.assert_code(2);
    }
}

#[test]
fn hostile_file_names_reach_a_terminal_escaped() {
    let named = image(Kind::HostileNames);
    for args in [
        vec!["registry", "files", named.as_str(), "--source", "test"],
        vec![
            "registry",
            "files",
            named.as_str(),
            "--source",
            "test",
            "-o",
            "name",
        ],
        vec![
            "registry",
            "cat",
            named.as_str(),
            "hostile/evil\nname.yaml",
            "--source",
            "test",
        ],
    ] {
        let (code, screen) = crate::hostile_text::on_colour_terminal(&args);
        assert_eq!(code, 0, "{args:?}: {screen}");
        for raw in [
            "\u{1b}[2J",
            "\u{1b}]0;pwned",
            "\u{7}",
            "\u{202e}",
            "\u{7f}",
            "\u{9b}",
        ] {
            assert!(
                !screen.contains(raw),
                "{args:?}: {raw:?} reached the terminal raw: {screen:?}"
            );
        }
    }
    let (_, listing) = crate::hostile_text::on_colour_terminal(&[
        "registry",
        "files",
        named.as_str(),
        "--source",
        "test",
        "-o",
        "name",
    ]);
    // Names still read, with their control characters shown.
    assert!(
        listing.contains("hostile/\\x1b]0;pwned\\x07title.txt"),
        "{listing:?}"
    );
    assert!(listing.contains("hostile/evil\\nname.yaml"), "{listing:?}");
}
