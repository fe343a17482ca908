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

/// The same sweep for DKP logins: an oidc auth-provider user (through a refresh, and
/// with a revoked refresh token) and exec plugin users. Neither the client secret nor
/// any id-token or refresh-token, old or new, nor a plugin's environment is printed.
#[test]
fn no_login_secret_in_any_output_at_any_verbosity() {
    use crate::login::{login, mpo_with, tokens, wait_until_expired};

    let oidc = mpo_sandbox::oidc::settings(state()).expect("oidc");
    let client_secret = std::fs::read_to_string(&oidc.client_secret_file).expect("secret");
    let password = std::fs::read_to_string(&oidc.password_file).expect("password");
    let refreshed = login("secret-oidc");
    let revoked = login("secret-revoked");
    let mut secrets = vec![
        client_secret.trim().to_string(),
        password.trim().to_string(),
    ];
    let (id_token, refresh_token) = tokens(&refreshed);
    secrets.extend([id_token, refresh_token]);
    let (revoked_id, revoked_refresh) = tokens(&revoked);
    mpo_sandbox::oidc::revoke(state(), &revoked_refresh).expect("revoke");
    secrets.extend([revoked_id, revoked_refresh]);
    wait_until_expired(&refreshed);
    wait_until_expired(&revoked);

    let verbose = ["-v", "-v", "-v", "-v"];
    let mut runs = vec![mpo_with(&refreshed, &verbose)];
    runs.push(mpo_with(
        &refreshed,
        &["-o", "json", "-v", "-v", "-v", "-v"],
    ));
    let revoked_run = mpo_with(&revoked, &verbose);
    assert_eq!(revoked_run.code, 3, "{revoked_run:?}");
    runs.push(revoked_run);
    // Exec plugin users: a working login and a failing one, at the highest verbosity.
    let cache = crate::login::token_cache("secret-exec");
    let (exec_id, exec_refresh) = crate::login::cache_tokens(&cache);
    let working = crate::login::exec_kubeconfig(
        "secret-exec",
        crate::login::get_token_exec("client.authentication.k8s.io/v1", &cache, &[]),
    );
    let failing = crate::login::exec_kubeconfig(
        "secret-exec-fail",
        crate::login::get_token_exec(
            "client.authentication.k8s.io/v1",
            &cache.with_extension("missing"),
            &[],
        ),
    );
    for (path, code) in [(working, 0), (failing, 3)] {
        let kubeconfig = path.display().to_string();
        let run = crate::support::mpo(&[
            "--kubeconfig",
            &kubeconfig,
            "status",
            "--offline",
            "-v",
            "-v",
            "-v",
            "-v",
        ]);
        assert_eq!(run.code, code, "{run:?}");
        runs.push(run);
    }
    let (cache_id, cache_refresh) = crate::login::cache_tokens(&cache);
    secrets.extend([exec_id, exec_refresh, cache_id, cache_refresh]);
    let (new_id, new_refresh) = tokens(&refreshed);
    secrets.extend([new_id, new_refresh]);
    secrets.push("sentinel-exec-env-value".into());
    secrets.retain(|s| s.len() >= 8);
    assert!(secrets.len() >= 8, "collected the login secrets");
    for run in runs {
        for secret in &secrets {
            assert!(
                !run.all().contains(secret.as_str()),
                "printed a secret: {run:?}"
            );
        }
    }
}
