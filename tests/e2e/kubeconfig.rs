//! Reading kubeconfig like kubectl: flags, multi-file $KUBECONFIG, contexts, users,
//! and clear errors for broken or missing files. `create --dry-run=client --force`
//! is used as the probe: it talks to the API (discovery, reads) but writes nothing.

use std::path::PathBuf;

use crate::support::{self, Run, state, unique};

fn probe(module: &str) -> Vec<String> {
    [
        "create",
        module,
        "--tag",
        "v1.0.0",
        "--dry-run=client",
        "--force",
        "-o",
        "name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_with(env_kubeconfig: Option<&str>, args: &[String]) -> Run {
    let mut command = support::command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    command.env_remove("KUBECONFIG");
    if let Some(value) = env_kubeconfig {
        command.env("KUBECONFIG", value);
    }
    support::run(command)
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let path = support::home_dir().join(format!("{}-{name}", unique("kc")));
    std::fs::write(&path, text).expect("writing a scratch kubeconfig");
    path
}

#[test]
fn kubeconfig_flag_before_and_after_the_subcommand() {
    let kubeconfig = state().kubeconfig.display().to_string();
    let module = unique("kc-flag");
    let mut after = probe(&module);
    after.extend(["--kubeconfig".to_string(), kubeconfig.clone()]);
    let run = run_with(None, &after);
    run.assert_code(0);
    assert_eq!(
        run.stdout.trim(),
        format!("modulepulloverride.deckhouse.io/{module}")
    );

    let mut before = vec![
        "--kubeconfig".to_string(),
        kubeconfig,
        "--context".to_string(),
        "sandbox".to_string(),
    ];
    before.extend(probe(&module));
    run_with(None, &before).assert_code(0);
}

#[test]
fn client_certificate_context_works() {
    let mut args = probe(&unique("kc-cert"));
    args.extend(["--context".to_string(), state().contexts.cert.clone()]);
    run_with(Some(&state().kubeconfig.display().to_string()), &args).assert_code(0);
}

#[test]
fn multi_file_kubeconfig_env_is_merged() {
    // The first file only chooses the context; the second holds everything else.
    let chooser = scratch(
        "chooser",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {}\nclusters: []\ncontexts: []\nusers: []\n",
            state().contexts.cert
        ),
    );
    let joined = format!("{}:{}", chooser.display(), state().kubeconfig.display());
    run_with(Some(&joined), &probe(&unique("kc-multi"))).assert_code(0);
}

#[test]
fn broken_kubeconfigs_give_clear_errors() {
    let garbage = scratch("garbage", "this: [is not: a kubeconfig\n\t");
    let cases: Vec<(Vec<String>, Option<String>, &str)> = vec![
        (
            vec!["--kubeconfig".into(), garbage.display().to_string()],
            None,
            "kubeconfig",
        ),
        (
            vec!["--kubeconfig".into(), "/nonexistent/kubeconfig".into()],
            None,
            "cannot read kubeconfig",
        ),
        (
            vec!["--context".into(), "no-such-context".into()],
            Some(state().kubeconfig.display().to_string()),
            "no-such-context",
        ),
        (vec![], Some(garbage.display().to_string()), "kubeconfig"),
    ];
    for (flags, env, expected) in cases {
        let mut args = probe(&unique("kc-bad"));
        args.extend(flags.clone());
        let run = run_with(env.as_deref(), &args);
        // A context not in the kubeconfig is exit 1, as kubectl; the others are 3.
        let code = if flags.iter().any(|f| f == "--context") {
            1
        } else {
            3
        };
        assert_eq!(run.code, code, "flags {flags:?}: {run:?}");
        assert!(
            run.stderr.starts_with("error: "),
            "flags {flags:?}: {run:?}"
        );
        assert!(
            run.stderr.contains(expected),
            "flags {flags:?}: expected {expected:?} in {run:?}"
        );
        assert!(run.stderr.contains("hint: "), "flags {flags:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
}

#[test]
fn unreachable_api_server_is_reported_with_its_address() {
    let text =
        std::fs::read_to_string(&state().kubeconfig).expect("reading the sandbox kubeconfig");
    let dead = text.replace(&state().api_server, "https://127.0.0.1:1");
    let path = scratch("dead", &dead);
    let mut args = probe(&unique("kc-dead"));
    args.extend([
        "--kubeconfig".to_string(),
        path.display().to_string(),
        "--request-timeout".into(),
        "5s".into(),
    ]);
    let run = run_with(None, &args);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{run:?}");
    assert!(run.stderr.contains("cannot reach"), "{run:?}");
}
