//! Global behaviour that needs no cluster objects: version, usage errors, kubeconfig.

use crate::support::{self, mpo};

#[test]
fn version_prints_the_crate_version() {
    let run = support::run(support::command(&["version"]));
    run.assert_code(0);
    assert!(
        run.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        run.stdout
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    mpo(&["status", "--no-such-flag"]).assert_code(2);
}

#[test]
fn every_command_help_has_examples() {
    let commands: [&[&str]; 16] = [
        &[],
        &["create"],
        &["edit"],
        &["renew"],
        &["status"],
        &["explain"],
        &["diff"],
        &["delete"],
        &["registry"],
        &["registry", "modules"],
        &["registry", "tags"],
        &["registry", "files"],
        &["registry", "cat"],
        &["registry", "images"],
        &["registry", "releases"],
        &["completion"],
    ];
    for command in commands.iter().chain([&["version"][..]].iter()) {
        let mut args = command.to_vec();
        args.push("--help");
        let run = mpo(&args);
        run.assert_code(0);
        assert!(
            run.stdout
                .split_once("Examples:\n")
                .is_some_and(|(_, examples)| examples.contains("kubectl mpo ")),
            "{command:?} --help has no examples: {}",
            run.stdout
        );
    }
}

/// Review C6: each command takes, and its help lists, only the `-o` formats it prints;
/// anything else is a usage error before any request.
#[test]
fn each_command_takes_only_the_output_formats_it_prints() {
    for (args, listed) in [
        (
            vec!["explain", "echo", "-o", "name"],
            "[possible values: json, yaml]",
        ),
        (
            vec!["diff", "echo", "-o", "wide"],
            "[possible values: json, yaml]",
        ),
        (
            vec!["version", "-o", "name"],
            "[possible values: json, yaml]",
        ),
        (
            vec!["create", "hello-world", "--tag", "main", "-o", "wide"],
            "[possible values: json, yaml, name]",
        ),
    ] {
        // An unreachable server: the refusal comes before any request.
        let mut all = args.clone();
        all.extend(["--server", "https://127.0.0.1:1", "--request-timeout", "2s"]);
        let run = mpo(&all);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(listed), "{args:?}: {run:?}");
        assert!(!run.stderr.contains("127.0.0.1:1"), "{args:?}: {run:?}");
    }
    let cat = mpo(&[
        "registry",
        "cat",
        "echo:v1.0.0",
        "values.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(cat.code, 2, "{cat:?}");
    // clap wraps the help text; the words are what counts.
    let help = mpo(&["status", "--help"])
        .stdout
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("[possible values: json, yaml, name, wide, jsonpath=, custom-columns=]"),
        "{help}"
    );
    let help = mpo(&["explain", "--help"]).stdout;
    assert!(help.contains("[possible values: json, yaml]"), "{help}");
}

/// Review C8: `status -o name` prints the singular resource name as kubectl and the
/// other commands do, and needs no registry (a dead one does not slow it down).
#[test]
fn status_names_are_singular_and_ask_no_registry() {
    let started = std::time::Instant::now();
    let run = mpo(&[
        "status",
        "-o",
        "name",
        "--registry-repo",
        "127.0.0.1:1/nothing",
        "--registry-timeout",
        "30s",
    ]);
    run.assert_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!run.stdout.trim().is_empty(), "{run:?}");
    for line in run.stdout.lines() {
        assert!(
            line.starts_with("modulepulloverride.deckhouse.io/"),
            "{line:?} in {run:?}"
        );
    }
}
