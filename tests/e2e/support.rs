//! Running the plugin binary against the sandbox.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub use mpo_sandbox::State;

/// The running sandbox; panics (failing the test) when there is none.
pub fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| match State::discover() {
        Ok(state) => state,
        Err(err) => panic!("end-to-end tests need the sandbox: {err:#}"),
    })
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-mpo"))
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertions about what a user sees.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A command for the binary with a clean environment pointing at the sandbox's
/// admin kubeconfig (never ~/.kube/config).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECONFIG", &state().kubeconfig)
        .env("HOME", home_dir())
        .env_remove("NO_COLOR")
        .env_remove("KUBE_EDITOR")
        .env_remove("EDITOR")
        .stdin(Stdio::null());
    command
}

/// Runs the binary with `args` against the sandbox.
pub fn mpo(args: &[&str]) -> Run {
    run(command(args))
}

pub fn run(mut command: Command) -> Run {
    match command.output() {
        Ok(output) => Run::from_output(output),
        Err(err) => panic!("cannot run {}: {err}", binary().display()),
    }
}

/// An empty HOME so that no user file (~/.kube/config, ~/.docker/config.json) leaks in.
///
/// One per test process, shared by its tests, so it lives in a static, and statics are
/// never dropped: a `TempDir` would not be removed either. It is therefore kept in the
/// cargo target dir (`CARGO_TARGET_TMPDIR/e2e-home/PID`, not /tmp), and each run first
/// removes the homes of runs whose process is gone, so at most the last one remains.
pub fn home_dir() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let homes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-home");
        if let Ok(entries) = std::fs::read_dir(&homes) {
            for entry in entries.flatten() {
                let pid = entry.file_name();
                if !Path::new("/proc").join(&pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = homes.join(std::process::id().to_string());
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
    .clone()
}

/// A fresh directory in the system temp dir, removed when the returned value is
/// dropped: bind it to a variable for as long as anything (a spawned process too)
/// uses it.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir()
        .unwrap_or_else(|err| panic!("cannot create a temporary directory {prefix}-*: {err}"))
}

/// A file in the system temp dir holding `contents`, removed when the returned value
/// is dropped (same rule as [`temp_dir`]).
pub fn temp_file(prefix: &str, suffix: &str, contents: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .suffix(suffix)
        .tempfile()
        .unwrap_or_else(|err| panic!("cannot create a temporary file {prefix}-*: {err}"));
    file.write_all(contents.as_bytes())
        .and_then(|()| file.flush())
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", file.path().display()));
    file
}

/// A name unique to this test run, for objects a test creates.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

/// A Tokio runtime for tests that prepare objects through the sandbox fixtures.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(err) => panic!("cannot start a runtime: {err}"),
    }
}

/// Runs kubectl (independent of the plugin) against the sandbox as admin.
pub fn kubectl(args: &[&str]) -> Run {
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .env("KUBECONFIG", &state().kubeconfig)
        .stdin(Stdio::null());
    run(command)
}

/// Runs kubectl (as [`kubectl`]) with `input` on its standard input.
pub fn kubectl_with_stdin(args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &state().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run kubectl: {err}"));
    let mut stdin = child.stdin.take().expect("kubectl stdin");
    // Written from another thread, so that neither side waits on a full pipe.
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("waiting for kubectl: {err}"));
    let run = Run::from_output(output);
    // A kubectl that failed may have stopped reading early; its run says why.
    match writer.join() {
        Ok(Err(err)) if run.code == 0 => panic!("writing kubectl's input: {err}\n{run:?}"),
        Err(_) => panic!("the thread writing kubectl's input panicked"),
        _ => run,
    }
}

/// `kubectl apply -f -` of `object` (one object or a `List`) as admin; no file on disk.
pub fn kubectl_apply(object: &serde_json::Value) -> Run {
    kubectl_with_stdin(&["apply", "-f", "-"], &object.to_string())
}

/// A field of an override, as `kubectl get mpo NAME -o jsonpath={PATH}` prints it
/// (`.spec.imageTag`, `.metadata.annotations.modules\.deckhouse\.io/renew`,
/// `.metadata.finalizers[0]`): a string as it is, any other value as JSON, and nothing
/// for a field or an override that does not exist. Read with the sandbox's own client
/// rather than a kubectl process: the tests poll it, many at once.
pub fn mpo_field(name: &str, jsonpath: &str) -> String {
    let version = if state().generation == "A" {
        "v1alpha1"
    } else {
        "v1alpha2"
    };
    let object = block_on(async {
        let client = mpo_sandbox::client(state()).await?;
        let api = mpo_sandbox::seed::deckhouse_api(
            &client,
            version,
            "ModulePullOverride",
            "modulepulloverrides",
        );
        anyhow::Ok(api.get_opt(name).await?)
    })
    .unwrap_or_else(|err| panic!("reading modulepulloverride {name}: {err:#}"));
    let Some(object) = object else {
        return String::new();
    };
    let object = serde_json::to_value(object).expect("object as JSON");
    match json_field(&object, jsonpath) {
        None => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The value at a kubectl-style path: `.`-separated keys (`\.` is a dot inside a
/// key), each optionally followed by `[N]`.
fn json_field<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut keys = Vec::new();
    let mut key = String::new();
    let mut chars = path.trim_start_matches('.').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                key.push('.');
                chars.next();
            }
            '.' => keys.push(std::mem::take(&mut key)),
            _ => key.push(c),
        }
    }
    keys.push(key);
    let mut at = value;
    for key in keys {
        let (name, index) = match key.split_once('[') {
            Some((name, rest)) => (name.to_string(), rest.trim_end_matches(']').parse().ok()),
            None => (key, None::<usize>),
        };
        at = at.get(&name)?;
        if let Some(index) = index {
            at = at.get(index)?;
        }
    }
    Some(at)
}

#[test]
fn fields_are_read_as_kubectl_reads_them() {
    let object = serde_json::json!({
        "metadata": {"annotations": {"modules.deckhouse.io/renew": "true"}, "finalizers": ["a", "b"]},
        "spec": {"imageTag": "v1", "rollback": true},
    });
    let at = |path| json_field(&object, path).cloned();
    assert_eq!(at(".spec.imageTag"), Some(serde_json::json!("v1")));
    assert_eq!(
        at(".metadata.annotations.modules\\.deckhouse\\.io/renew"),
        Some(serde_json::json!("true"))
    );
    assert_eq!(at(".metadata.finalizers[1]"), Some(serde_json::json!("b")));
    assert_eq!(at(".spec.rollback"), Some(serde_json::json!(true)));
    assert_eq!(at(".status.message"), None);
}

/// A module of source `test`, with images for `tags`; returns their digests.
pub fn module_with_images(name: &str, enabled: bool, tags: &[&str]) -> Vec<String> {
    block_on(mpo_sandbox::fixtures::module_with_images(
        state(),
        name,
        enabled,
        tags,
    ))
    .unwrap_or_else(|err| panic!("preparing module {name}: {err:#}"))
}

/// Pushes new content under an existing tag; returns the new digest.
pub fn push_module(name: &str, tag: &str, note: &str) -> String {
    block_on(mpo_sandbox::fixtures::push_module(state(), name, tag, note))
        .unwrap_or_else(|err| panic!("pushing {name}:{tag}: {err:#}"))
}

/// The renew behaviour the simulator plays for one override (`legacy`, `modern`, or
/// `""` for the generation's own), set on that override alone so that tests running
/// beside it are not touched.
pub fn set_renew_style(name: &str, style: &str) {
    let key = mpo_sandbox::simulator::RENEW_STYLE;
    let change = if style.is_empty() {
        format!("{key}-")
    } else {
        format!("{key}={style}")
    };
    kubectl(&[
        "annotate",
        "--overwrite",
        "modulepulloverrides.deckhouse.io",
        name,
        &change,
    ])
    .assert_code(0);
}

/// How much longer than its bound [`eventually`] waits: the suite runs many tests at
/// once on a small machine, where the controller may answer late. A bound says that a
/// thing happens, not how fast; tests of speed measure with `Instant` instead.
const PATIENCE: u64 = 3;

/// Polls `check` until it returns true or `seconds` (times [`PATIENCE`]) pass.
#[track_caller]
pub fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds * PATIENCE);
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("timed out after {}s waiting for {what}", seconds * PATIENCE);
}

/// Runs the binary on a pseudo-terminal (`script`), typing `keys` once it has started.
pub fn on_terminal(args: &[&str], keys: &[&str]) -> Run {
    use std::io::Write;
    let line = std::iter::once(binary().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", &state().kubeconfig)
        .env("HOME", home_dir())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::sleep(std::time::Duration::from_secs(3));
    for key in keys {
        stdin.write_all(key.as_bytes()).expect("type");
        stdin.flush().expect("flush");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(stdin);
    Run::from_output(child.wait_with_output().expect("wait"))
}

/// A module with images at `tags` and a Ready override at `tags[0]` whose periodic
/// re-check is an hour away, so that only the test itself makes the controller look at
/// the registry again. Returns the digests of `tags`.
pub fn quiet_override(name: &str, tags: &[&str]) -> Vec<String> {
    let digests = module_with_images(name, true, tags);
    mpo(&[
        "create",
        name,
        "--tag",
        tags[0],
        "--scan-interval",
        "1h",
        "--wait",
    ])
    .assert_code(0);
    digests
}

/// `status -o json NAMES --registry-repo` on a sandbox registry (modules laid out as in
/// the sandbox registry `layout`), with the registry's
/// credentials in a docker config.json of a fresh HOME (none from the environment).
pub fn status_through_registry_repo(
    registry: &mpo_sandbox::state::Registry,
    layout: &str,
    names: &[String],
) -> Run {
    let mut args: Vec<&str> = vec!["status", "-o", "json"];
    args.extend(names.iter().map(String::as_str));
    through_registry_repo(registry, layout, &args)
}

/// `ARGS --registry-repo …` on a sandbox registry, with its credentials in the docker
/// config.json of a fresh HOME (none from the environment).
pub fn through_registry_repo(
    registry: &mpo_sandbox::state::Registry,
    layout: &str,
    args: &[&str],
) -> Run {
    let home = temp_dir("mpo-registry-repo-home");
    let config = home.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"auths": {&registry.host: {
            "username": registry.username, "password": registry.password,
        }}})
        .to_string(),
    )
    .expect("docker config");
    let repo = format!("{}/{}", registry.host, mpo_sandbox::seed::repo_path(layout));
    let (config, ca) = (
        config.display().to_string(),
        state().ca_file.display().to_string(),
    );
    let mut args = args.to_vec();
    args.extend([
        "--registry-repo",
        &repo,
        "--registry-config",
        &config,
        "--registry-ca",
        &ca,
    ]);
    let mut command = command(&args);
    command.env("HOME", home.path()).env_remove("DOCKER_CONFIG");
    run(command)
}
