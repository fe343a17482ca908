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
