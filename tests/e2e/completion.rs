//! Shell completion: generated scripts, and the kubectl_complete-mpo helper kubectl calls
//! for `kubectl mpo <TAB>` (subcommands, module names from the cluster, registry tags).

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Run, binary, mpo, run, state};

#[test]
fn completion_scripts_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = mpo(&["completion", shell]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("explain") && run.stdout.contains("renew"),
            "{shell}: {run:?}"
        );
    }
    mpo(&["completion", "tcsh"]).assert_code(2);
}

fn helper(words: &[&str]) -> Run {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kubectl_complete-mpo");
    let bin_dir = binary().parent().expect("binary dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(script);
    command
        .args(words)
        .env("PATH", path)
        .env("KUBECONFIG", &state().kubeconfig);
    run(command)
}

fn candidates(run: &Run) -> Vec<&str> {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&":4"),
        "ends with the no-file directive: {run:?}"
    );
    lines[..lines.len() - 1].to_vec()
}

#[test]
fn helper_completes_subcommands_modules_and_tags() {
    let all = helper(&[""]);
    assert!(candidates(&all).contains(&"create"));
    assert_eq!(candidates(&helper(&["ex"])), ["explain"]);

    let overrides = helper(&["explain", "token"]);
    assert_eq!(candidates(&overrides), ["token-module"]);
    let modules = helper(&["create", "hello"]);
    assert_eq!(candidates(&modules), ["hello-world"]);
    let tags = helper(&["create", "echo", "--tag", "main"]);
    let tags = candidates(&tags);
    assert!(
        tags.contains(&"main-patch-03354") && tags.iter().all(|t| t.starts_with("main")),
        "{tags:?}"
    );
    assert_eq!(candidates(&helper(&["registry", "rel"])), ["releases"]);
    assert_eq!(
        candidates(&helper(&[
            "--context",
            &state().contexts.admin,
            "completion",
            "z"
        ])),
        ["zsh"]
    );
}

#[test]
fn kubectl_plugin_completion_calls_the_helper() {
    // `kubectl __complete` is what kubectl's bash/zsh/fish scripts call on <TAB>.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = binary().parent().expect("binary dir").to_path_buf();
    let path = format!(
        "{}:{}:{}",
        repo.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &[&str]| {
        let mut command = Command::new("kubectl");
        command
            .arg("__complete")
            .arg("mpo")
            .args(words)
            .env("PATH", &path)
            .env("KUBECONFIG", &state().kubeconfig);
        run(command)
    };
    let sub = complete(&["ex"]);
    assert_eq!(candidates(&sub), ["explain"]);
    let names = complete(&["diff", "plain"]);
    assert_eq!(candidates(&names), ["plain-module"]);
}
