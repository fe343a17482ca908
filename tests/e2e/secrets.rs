//! No secret reaches stdout or stderr, at the highest verbosity, on success and error
//! paths: registry passwords, the dockerCfg, registry tokens, kubeconfig tokens.

use crate::support::{kubectl, module_with_images, mpo, state, unique};

fn secrets() -> Vec<String> {
    let mut found = Vec::new();
    for registry in state().registries.values() {
        found.extend(registry.password.clone());
    }
    let kubeconfig = std::fs::read_to_string(&state().kubeconfig).expect("kubeconfig");
    found.extend(
        kubeconfig
            .lines()
            .filter_map(|l| l.trim().strip_prefix("token: ").map(str::to_string)),
    );
    for source in ["test", "token", "bad-creds", "wrong-host"] {
        let cfg = kubectl(&[
            "get",
            "modulesources.deckhouse.io",
            source,
            "-o",
            "jsonpath={.spec.registry.dockerCfg}",
        ]);
        found.push(cfg.stdout.trim().to_string());
    }
    found.push("not-the-password".into());
    found.retain(|s| s.len() >= 8);
    assert!(
        found.len() >= 8,
        "collected the sandbox's secrets: {found:?}"
    );
    found
}

#[test]
fn no_secret_in_any_output_at_any_verbosity() {
    let name = unique("secret");
    module_with_images(&name, true, &["v1"]);
    let commands: Vec<Vec<&str>> = vec![
        vec!["create", &name, "--tag", "v1", "--wait"],
        vec!["status", "-o", "json"],
        vec!["status", "-o", "wide"],
        vec!["explain", "bad-creds-module"],
        vec!["explain", "wrong-host-module", "-o", "yaml"],
        vec!["explain", "token-module", "-o", "json"],
        vec!["diff", &name, "--content"],
        vec!["renew", &name, "--wait"],
        vec!["edit", &name, "--scan-interval", "1m"],
        vec!["registry", "tags", "echo", "--source", "bad-creds"],
        vec!["registry", "tags", "token-module", "--source", "token"],
        vec!["registry", "files", "echo:v1.0.0"],
        vec!["create", "echo", "--tag", "nope-tag-x"],
        vec!["--context", "sandbox-readonly", "renew", &name],
        vec!["delete", &name, "--yes", "--wait"],
    ];
    let secrets = secrets();
    for args in commands {
        let mut with_verbosity = args.clone();
        with_verbosity.extend(["-v", "-v", "-v", "-v"]);
        let run = mpo(&with_verbosity);
        let all = run.all();
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{args:?} printed a secret: {run:?}"
            );
        }
    }
}
