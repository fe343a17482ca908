//! Registries that misbehave: refused connections, a server that never answers, HTTP
//! 500, and garbage instead of a manifest. Every case ends with a clear message within
//! the timeout; `status` still prints its table.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{kubectl, mpo, unique};

/// A fake registry on 127.0.0.1 that answers every request according to `mode`.
fn fault_server(mode: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    if mode == "refused" {
        drop(listener);
        return port;
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let response = match mode {
                    "stall" => {
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    "500" => {
                        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 5\r\n\r\noops\n"
                            .to_string()
                    }
                    _ => {
                        let body = "<html>this is not a manifest</html>";
                        format!(
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    port
}

fn apply(object: serde_json::Value) {
    let file = std::env::temp_dir().join(format!("{}.json", unique("fault")));
    std::fs::write(&file, object.to_string()).expect("write");
    kubectl(&["apply", "-f", &file.display().to_string()]).assert_code(0);
}

/// A module whose ModuleSource points at a fault server, with an override; returns the
/// module name.
fn module_on(mode: &'static str) -> String {
    let name = module_without_override(mode);
    apply(serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride", "metadata": {"name": name},
        "spec": {"imageTag": "v1", "scanInterval": "15s", "rollback": false},
    }));
    name
}

fn module_without_override(mode: &'static str) -> String {
    let port = fault_server(mode);
    let name = unique(&format!("fault-{mode}"));
    apply(serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": name},
        "spec": {"registry": {"repo": format!("127.0.0.1:{port}/modules"), "scheme": "HTTP"}},
    }));
    apply(serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "Module", "metadata": {"name": name},
        "properties": {"availableSources": [name]},
    }));
    apply(serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name},
        "spec": {"enabled": true},
    }));
    name
}

#[test]
fn wait_timeout_is_honoured() {
    // The controller's registry call stalls, so no verdict arrives within the timeout.
    let name = module_without_override("stall");
    crate::support::eventually(10, "the module manager", || {
        mpo(&["explain", &name, "--offline"])
            .stdout
            .contains("active source")
    });
    let started = Instant::now();
    let run = mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--force",
        "--wait",
        "--timeout",
        "2s",
    ]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("timed out") || run.stderr.contains("timeout"),
        "{run:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "preflight lookup and wait are bounded"
    );
}

#[test]
fn bad_registries_give_clear_errors_and_never_hang() {
    let cases = [
        ("refused", "Connect"),
        ("500", "500"),
        ("garbage", "not a JSON manifest"),
        ("stall", "no answer within 2s"),
    ];
    for (mode, expected) in cases {
        let name = module_on(mode);
        crate::support::eventually(10, "the module manager", || {
            mpo(&["explain", &name, "--offline"])
                .stdout
                .contains("active source")
        });
        let started = Instant::now();
        let run = mpo(&["status", &name, "--registry-timeout", "2s", "-o", "json"]);
        let elapsed = started.elapsed();
        run.assert_code(0);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        let row = &doc["items"][0];
        assert_eq!(row["sync"], "unknown", "{mode}: {run:?}");
        let cause = row["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(expected), "{mode}: cause {cause:?}");
        assert!(elapsed < Duration::from_secs(8), "{mode}: took {elapsed:?}");
    }
}

#[test]
fn one_dead_registry_does_not_fail_the_table() {
    let dead = module_on("refused");
    let run = mpo(&["status", "--registry-timeout", "2s", "--no-color"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&dead) && run.stdout.contains("token-module"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("in sync"),
        "healthy rows still resolved: {run:?}"
    );
}
