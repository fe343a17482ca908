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
                    "drop" => return,
                    "429" => {
                        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                            .to_string()
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
    crate::support::kubectl_apply(&object).assert_code(0);
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

pub(crate) fn module_without_override(mode: &'static str) -> String {
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
    // The module manager must have given the module its source first.
    // "active source: NAME" (a failing check says "has no active source").
    crate::support::eventually(10, "the module manager", || {
        mpo(&["explain", &name, "--offline"])
            .stdout
            .contains(&format!("active source: {name}"))
    });
    name
}

#[test]
fn wait_timeout_is_honoured() {
    // The controller's registry call stalls, so no verdict arrives within the timeout.
    let name = module_without_override("stall");
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
        ("drop", "GET manifest"),
        ("429", "HTTP 429"),
    ];
    for (mode, expected) in cases {
        let name = module_on(mode);
        let started = Instant::now();
        let run = mpo(&["status", &name, "--registry-timeout", "2s", "-o", "json"]);
        let elapsed = started.elapsed();
        // Every lookup failed: the table is printed, and the exit code says so.
        run.assert_code(3);
        assert!(
            run.stderr.contains("no registry lookup succeeded"),
            "{mode}: {run:?}"
        );
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

/// A proxy to the sandbox's plain-HTTP registry that answers the first registry request
/// (other than the `/v2/` probe) with 429 Too Many Requests.
fn rate_limiting_proxy() -> u16 {
    let upstream = crate::support::state()
        .registry("http")
        .expect("http registry")
        .host
        .clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let limited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { continue };
            let (upstream, limited) = (upstream.clone(), limited.clone());
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 16384];
                let Ok(n) = client.read(&mut buffer) else {
                    return;
                };
                let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                let probe = request.starts_with("GET /v2/ ");
                if !probe && !limited.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    let _ = client.write_all(
                        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    );
                    return;
                }
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = server.write_all(&buffer[..n]);
                let (Ok(mut client_reader), Ok(mut server_writer)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_reader, &mut server_writer);
                });
                let _ = std::io::copy(&mut server, &mut client);
            });
        }
    });
    port
}

#[test]
fn a_rate_limited_lookup_is_retried_within_the_timeout() {
    let port = rate_limiting_proxy();
    let repo = format!(
        "http://127.0.0.1:{port}/{}",
        mpo_sandbox::seed::repo_path("http")
    );
    let started = Instant::now();
    let run = mpo(&[
        "registry",
        "tags",
        "plain-module",
        "-o",
        "name",
        "--registry-repo",
        &repo,
    ]);
    run.assert_code(0);
    assert!(run.stdout.lines().any(|l| l == "main"), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

/// `create NAME --force --wait` with a long timeout, running in the background; returns
/// once the override exists and the command is waiting.
fn waiting_create(name: &str, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "create",
        name,
        "--tag",
        "v1",
        "--force",
        "--wait",
        "--timeout",
        "120s",
    ];
    args.extend_from_slice(extra);
    let mut command = crate::support::command(&args);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("spawn");
    crate::support::eventually(30, "the override to be created", || {
        kubectl(&["get", "modulepulloverrides.deckhouse.io", name]).code == 0
    });
    std::thread::sleep(Duration::from_millis(700));
    child
}

#[test]
fn ctrl_c_during_wait_exits_promptly_and_leaves_the_override_whole() {
    // The controller never answers (its registry stalls), so `--wait` would wait long.
    let name = module_without_override("stall");
    let child = waiting_create(&name, &[]);
    let interrupted = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert!(
        interrupted.elapsed() < Duration::from_secs(3),
        "exits promptly: {:?}",
        interrupted.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        crate::support::mpo_field(&name, ".spec.imageTag"),
        "v1",
        "the override is whole"
    );
}

/// A TCP proxy to the sandbox's API server that can be cut: `cut()` closes every open
/// connection and refuses new ones, as a stopped API server does.
struct ApiServerProxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// New connections wait (accepted, nothing relayed) until `release()`.
    hold: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl ApiServerProxy {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let upstream = crate::support::state()
            .api_server
            .trim_start_matches("https://")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let proxy = ApiServerProxy {
            port,
            cut: Default::default(),
            hold: Default::default(),
            open: Default::default(),
        };
        let (cut, hold, open) = (proxy.cut.clone(), proxy.hold.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let (upstream, hold, open) = (upstream.clone(), hold.clone(), open.clone());
                std::thread::spawn(move || {
                    // A held connection is relayed once released: what the client
                    // sent meanwhile waits in the socket.
                    let (held, released) = &*hold;
                    let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
                    while *held {
                        held = released.wait(held).unwrap_or_else(|p| p.into_inner());
                    }
                    drop(held);
                    relay(client, &upstream, &open);
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_open();
    }

    /// Closes every open connection and holds new ones until [`Self::release`]: the
    /// client's watch breaks, and its attempts to come back wait without failing.
    fn hold(&self) {
        *self.hold.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.close_open();
    }

    fn release(&self) {
        *self.hold.0.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.hold.1.notify_all();
    }

    fn close_open(&self) {
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Starts the plugin with `args` (and `-v`) through the proxy, its output piped;
    /// the kubeconfig file lives as long as the second value. `--request-timeout 0`
    /// (no limit, as kubectl): a connection held by the proxy waits for `release()`
    /// however long the API server takes to come back, instead of timing out.
    fn spawn(&self, args: &[&str]) -> (std::process::Child, tempfile::NamedTempFile) {
        let kubeconfig = self.kubeconfig();
        let path = kubeconfig.path().display().to_string();
        let mut all = args.to_vec();
        all.extend(["-v", "--request-timeout", "0", "--kubeconfig", &path]);
        let child = crate::support::command(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        (child, kubeconfig)
    }

    /// The sandbox's admin kubeconfig, with the server address of the proxy (same
    /// certificate: the proxy only relays bytes); removed when the file is dropped.
    fn kubeconfig(&self) -> tempfile::NamedTempFile {
        let state = crate::support::state();
        let text = std::fs::read_to_string(&state.kubeconfig).expect("kubeconfig");
        let text = text.replace(
            &state.api_server,
            &format!("https://127.0.0.1:{}", self.port),
        );
        crate::support::temp_file("proxy", ".kubeconfig", &text)
    }
}

/// Relays one client connection to the API server at `upstream` until either side
/// closes; both sockets are kept in `open` so that they can be cut.
fn relay(
    mut client: std::net::TcpStream,
    upstream: &str,
    open: &std::sync::Mutex<Vec<std::net::TcpStream>>,
) {
    let Ok(mut server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    if let Ok(mut open) = open.lock() {
        open.extend(client.try_clone().ok());
        open.extend(server.try_clone().ok());
    }
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
    });
    let _ = std::io::copy(&mut server, &mut client);
}

#[test]
fn api_server_lost_during_wait_is_a_runtime_failure_and_the_override_stays_whole() {
    // The controller never answers (its registry stalls), so the wait would last the
    // whole --timeout; the API server then goes away under the running command.
    let name = module_without_override("stall");
    let proxy = ApiServerProxy::start();
    // The file stays until the test ends: the spawned plugin reads it.
    let kubeconfig_file = proxy.kubeconfig();
    let kubeconfig = kubeconfig_file.path().display().to_string();
    let child = waiting_create(&name, &["--kubeconfig", &kubeconfig]);
    let cut = Instant::now();
    proxy.cut();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "runtime failure, not a timeout: {stderr}"
    );
    assert!(
        cut.elapsed() < Duration::from_secs(25),
        "gives up on a lost API server well before --timeout: {:?}",
        cut.elapsed()
    );
    assert!(stderr.contains("lost the API server"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", proxy.port)),
        "says where: {stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        crate::support::mpo_field(&name, ".spec.imageTag"),
        "v1",
        "the override is whole"
    );
    assert_eq!(
        crate::support::mpo_field(&name, ".spec.scanInterval"),
        "15s"
    );
}

/// Stops the sandbox's kube-apiserver and starts it again with the same command line
/// (its watch cache starts empty, so a watch that asks to resume from an older
/// resourceVersion is answered 410 Gone and must list again), then waits until it is
/// ready. Only for tests in tests/e2e/serial.txt: every other test needs the server.
fn restart_api_server() {
    let state = crate::support::state();
    let pid_file = state.dir.join("pids/kube-apiserver.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("kube-apiserver pid");
    let pid = pid.trim();
    let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).expect("its command line");
    let mut words = command_line
        .split(|b| *b == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned());
    let program = words.next().expect("program");
    let args: Vec<String> = words.collect();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, pid])
            .status()
            .expect("kill")
            .success()
    };
    // Killed, as a crashed server: a graceful stop waits a minute for open watches.
    assert!(signal("-KILL"), "stopping kube-apiserver");
    // Gone, or a zombie that nobody reaps (its parent, up.sh, has exited). Whatever
    // happens, it is started again below: the tests after this one need it.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let stopped = Instant::now();
    while running() && stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Clients retrying the dead port (the simulator, the plugin) may briefly hold it as
    // their own source port (a TCP self-connect), and the new server then cannot
    // listen: it exits at once, and is started again until it stays.
    let mut attempts = 0;
    let child = loop {
        attempts += 1;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(state.dir.join("logs/kube-apiserver.log"))
            .expect("its log");
        let mut child = std::process::Command::new("setsid")
            .arg(&program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver");
        std::thread::sleep(Duration::from_secs(2));
        match child.try_wait() {
            Ok(None) => break child,
            _ if attempts < 30 => std::thread::sleep(Duration::from_millis(500)),
            other => panic!("kube-apiserver does not start again: {other:?}"),
        }
    };
    // down.sh stops it by this file; it outlives the test, reaped when it ends.
    std::fs::write(&pid_file, child.id().to_string()).expect("pid file");
    let mut child = child;
    std::thread::spawn(move || child.wait());
    crate::support::eventually(90, "kube-apiserver ready again", || {
        crate::support::kubectl(&["get", "--raw", "/readyz"]).code == 0
    });
}

/// An override that stays after `delete` until the test removes its own finalizer.
fn held_override(prefix: &str) -> String {
    let name = unique(prefix);
    crate::support::quiet_override(&name, &["v1"]);
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"test.kubectl-mpo/hold"}]"#,
    ])
    .assert_code(0);
    name
}

fn release_finalizer(name: &str) {
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        name,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .assert_code(0);
}

/// `delete --wait` follows the override through a watch. When the watch breaks and the
/// override goes while it is away (the API server restarted meanwhile, so the watch
/// lists again), the list without it ends the wait at once: it is gone.
#[test]
fn delete_wait_sees_an_override_deleted_while_the_api_server_was_away() {
    let name = held_override("gone-in-gap");
    let proxy = ApiServerProxy::start();
    let (child, _kubeconfig) =
        proxy.spawn(&["delete", &name, "--yes", "--wait", "--timeout", "90s"]);
    crate::support::eventually(20, "the delete to be sent", || {
        !crate::support::mpo_field(&name, ".metadata.deletionTimestamp").is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    proxy.hold();
    restart_api_server();
    release_finalizer(&name);
    crate::support::eventually(20, "the override to be gone", || {
        !crate::validation::mpo_exists(&name)
    });
    let released = Instant::now();
    proxy.release();
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{name} is gone")),
        "{stdout}\n{stderr}"
    );
    assert!(
        released.elapsed() < Duration::from_secs(30),
        "answered once the watch came back, not at --timeout: {:?}",
        released.elapsed()
    );
}

/// `status --watch` mirrors the overrides. Changes and deletions made while its watch
/// is away (the API server restarted, so the watch lists again) are shown once it is
/// back, as rows and `(deleted)` lines.
#[test]
fn status_watch_shows_changes_made_while_the_api_server_was_away() {
    let changed = unique("watch-gap-edit");
    crate::support::quiet_override(&changed, &["v1"]);
    let deleted = unique("watch-gap-delete");
    crate::support::quiet_override(&deleted, &["v1"]);
    let proxy = ApiServerProxy::start();
    let (mut child, _kubeconfig) =
        proxy.spawn(&["status", &changed, &deleted, "--watch", "--offline"]);
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let shown = |text: &str| {
        lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(text))
    };
    crate::support::eventually(30, "the first table", || shown(&deleted));
    std::thread::sleep(Duration::from_millis(500));
    proxy.hold();
    restart_api_server();
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &changed,
        "--type=merge",
        "-p",
        r#"{"spec":{"imageTag":"gap2"}}"#,
    ])
    .assert_code(0);
    kubectl(&[
        "delete",
        "modulepulloverrides.deckhouse.io",
        &deleted,
        "--wait=true",
    ])
    .assert_code(0);
    proxy.release();
    crate::support::eventually(40, "the change and the deletion", || {
        shown("gap2") && shown("(deleted)")
    });
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let _ = reader.join();
    let text = lines.lock().expect("lines").join("\n");
    assert!(
        text.lines()
            .any(|l| l.contains(&deleted) && l.contains("(deleted)")),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
