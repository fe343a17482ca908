//! The `edit` buffer (issue #19): created 0600 in a private 0700 directory, holding no
//! secret, and removed on every way out: the editor saving nothing, the editor failing,
//! and Ctrl-C on a terminal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Run, binary, command, home_dir, quiet_override, run, state, unique};

/// A fake editor that records what it was given into `record`, then does `then`.
fn fake_editor(record: &Path, then: &str) -> PathBuf {
    std::fs::create_dir_all(record).expect("record dir");
    let script = record.join("editor.sh");
    let text = format!(
        "#!/bin/sh\n\
         rec='{rec}'\n\
         printf '%s' \"$1\" > \"$rec/path\"\n\
         stat -c %a \"$1\" > \"$rec/file_mode\"\n\
         stat -c %a \"$(dirname \"$1\")\" > \"$rec/dir_mode\"\n\
         ls -A \"$(dirname \"$1\")\" > \"$rec/dir_listing\"\n\
         cp \"$1\" \"$rec/content\"\n\
         touch \"$rec/started\"\n\
         {then}\n",
        rec = record.display()
    );
    std::fs::write(&script, text).expect("editor script");
    let mut permissions = std::fs::metadata(&script).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    script
}

fn read(record: &Path, name: &str) -> String {
    std::fs::read_to_string(record.join(name))
        .unwrap_or_else(|err| panic!("the editor did not record {name}: {err}"))
        .trim_end()
        .to_string()
}

/// Checks what the editor saw, and that the buffer and its directory are gone.
#[track_caller]
fn assert_private_and_removed(record: &Path, run: &Run) {
    let buffer = PathBuf::from(read(record, "path"));
    assert_eq!(read(record, "file_mode"), "600", "{run:?}");
    assert_eq!(read(record, "dir_mode"), "700", "{run:?}");
    let file_name = buffer
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        read(record, "dir_listing"),
        file_name,
        "alone in its directory"
    );
    let content = read(record, "content");
    assert!(content.contains("imageTag:"), "{content}");
    for registry in state().registries.values() {
        if let Some(password) = &registry.password {
            assert!(
                !content.contains(password.as_str()),
                "a secret in the buffer"
            );
        }
    }
    assert!(!content.contains("dockerCfg"), "{content}");
    assert!(
        !buffer.exists(),
        "{} left behind: {run:?}",
        buffer.display()
    );
    let dir = buffer.parent().expect("buffer directory");
    assert!(!dir.exists(), "{} left behind: {run:?}", dir.display());
}

#[test]
fn edit_buffer_is_private_and_removed_after_the_editor() {
    let name = unique("tmpedit");
    quiet_override(&name, &["v1"]);
    let temp = crate::support::temp_dir("mpo-editor-record");
    let record = temp.path();

    // The editor changes nothing: the edit is cancelled.
    let editor = fake_editor(&record.join("unchanged"), "exit 0");
    let mut unchanged = command(&["edit", &name]);
    unchanged.env("EDITOR", &editor);
    let unchanged = run(unchanged);
    unchanged.assert_code(0);
    assert!(unchanged.all().contains("Edit cancelled"), "{unchanged:?}");
    assert_private_and_removed(&record.join("unchanged"), &unchanged);

    // The editor fails.
    let editor = fake_editor(&record.join("failing"), "exit 1");
    let mut failing = command(&["edit", &name]);
    failing.env("KUBE_EDITOR", &editor);
    let failing = run(failing);
    failing.assert_code(3);
    assert_private_and_removed(&record.join("failing"), &failing);

    crate::support::mpo(&["delete", &name, "--yes"]);
}

#[test]
fn edit_buffer_is_removed_after_ctrl_c_on_a_terminal() {
    let name = unique("tmpedit-int");
    quiet_override(&name, &["v1"]);
    let temp = crate::support::temp_dir("mpo-editor-record");
    let record = temp.path();
    let editor = fake_editor(record, "sleep 30");
    let line = format!("{} edit {name}", binary().display());
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", &state().kubeconfig)
        .env("HOME", home_dir())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("KUBE_EDITOR")
        .env("EDITOR", &editor)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !record.join("started").exists() {
        assert!(Instant::now() < deadline, "the editor never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\x03").expect("type Ctrl-C");
    stdin.flush().expect("flush");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "Ctrl-C ended the edit, not the editor's sleep: {run:?}"
    );
    run.assert_code(130);
    assert!(run.all().contains("interrupted"), "{run:?}");
    assert_private_and_removed(record, &run);
    crate::support::mpo(&["delete", &name, "--yes"]);
}
