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
