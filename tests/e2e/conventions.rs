//! kubectl's conventions for listing, deleting, output formats and exit codes, on the
//! real binary against the sandbox (the CLI review's B1, B2, B8, C2, C12, M1, M2, M3, M5).

use std::process::Stdio;

use crate::support::{
    command, eventually, kubectl, module_with_images, mpo, mpo_field, on_terminal, quiet_override,
    state, unique,
};
use crate::validation::mpo_exists;

/// A Ready override on `v1` of a fresh module with `v1` and `v2`.
fn ready_override(prefix: &str) -> String {
    let name = unique(prefix);
    quiet_override(&name, &["v1", "v2"]);
    name
}

#[test]
fn missing_and_existing_objects_exit_1_with_kubectls_error() {
    let name = ready_override("conv-codes");
    let ghost = unique("conv-ghost");
    for args in [
        vec!["status", ghost.as_str()],
        vec!["edit", ghost.as_str(), "--tag", "v1"],
        vec!["delete", ghost.as_str(), "--yes"],
        vec!["renew", ghost.as_str()],
        vec!["diff", ghost.as_str()],
    ] {
        let run = mpo(&args);
        run.assert_code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "Error from server (NotFound): modulepulloverrides.deckhouse.io \"{ghost}\" not found"
            )),
            "{args:?}: {run:?}"
        );
    }
    let again = mpo(&["create", &name, "--tag", "v1"]);
    again.assert_code(1);
    assert!(
        again.stderr.starts_with(&format!(
            "Error from server (AlreadyExists): modulepulloverrides.deckhouse.io \"{name}\" already exists"
        )),
        "{again:?}"
    );
    let context = mpo(&["status", "--offline", "--context", "no-such-context"]);
    context.assert_code(1);
    assert!(context.stderr.contains("no-such-context"), "{context:?}");
    // The table is in --help and the README.
    let help = mpo(&["--help"]);
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("NotFound"),
        "{help:?}"
    );
    let readme = include_str!("../../README.md");
    assert!(readme.contains("| 1 |") && readme.contains("NotFound"));
}

#[test]
fn status_shows_the_names_that_exist_then_the_missing_one_with_did_you_mean() {
    let name = ready_override("conv-some");
    let typo = format!("{name}x");
    let run = mpo(&["status", "--offline", &typo, &name]);
    run.assert_code(1);
    assert!(run.stdout.contains(&name), "the others are shown: {run:?}");
    assert!(
        run.stderr.contains("NotFound") && run.stderr.contains(&typo),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "did you mean {name}? see it with: kubectl mpo status {name}"
        )),
        "{run:?}"
    );
    assert!(!run.stderr.contains("kubectl mpo create"), "{run:?}");
}

#[test]
fn delete_takes_several_names_all_ignore_not_found_dry_run_and_o_name() {
    let first = ready_override("conv-del-a");
    let second = ready_override("conv-del-b");
    let ghost = unique("conv-del-ghost");

    let dry = mpo(&["delete", &first, &second, "--dry-run", "-o", "name"]);
    dry.assert_code(0);
    assert_eq!(
        dry.stdout,
        format!(
            "modulepulloverride.deckhouse.io/{first}\nmodulepulloverride.deckhouse.io/{second}\n"
        ),
        "{dry:?}"
    );
    assert!(
        mpo_exists(&first) && mpo_exists(&second),
        "a dry run deletes nothing"
    );
    let server = mpo(&["delete", &first, "--dry-run=server", "--yes"]);
    server.assert_code(0);
    assert!(mpo_exists(&first), "{server:?}");

    let missing = mpo(&["delete", &first, &ghost, "--yes", "-o", "name"]);
    missing.assert_code(1);
    assert_eq!(
        missing.stdout,
        format!("modulepulloverride.deckhouse.io/{first}\n")
    );
    assert!(missing.stderr.contains("NotFound"), "{missing:?}");
    eventually(30, "the first override to go", || !mpo_exists(&first));

    let ignored = mpo(&["delete", &ghost, &second, "--ignore-not-found", "--yes"]);
    ignored.assert_code(0);
    assert!(!ignored.stderr.contains("NotFound"), "{ignored:?}");
    eventually(30, "the second override to go", || !mpo_exists(&second));

    let all = mpo(&["delete", "--all", "--dry-run"]);
    all.assert_code(0);
    assert!(
        all.stdout.lines().count() >= 2 && all.stdout.contains("(dry run)"),
        "{all:?}"
    );
}

#[test]
fn status_takes_kubectls_listing_flags_and_formats() {
    let first = ready_override("conv-list-a");
    let second = ready_override("conv-list-b");
    let label = format!("team={first}");
    kubectl(&["label", "modulepulloverrides.deckhouse.io", &first, &label]).assert_code(0);
    mpo(&["edit", &second, "--tag", "v2", "--wait"]).assert_code(0);

    let selected = mpo(&[
        "status",
        "--offline",
        "-n",
        "default",
        "-l",
        &label,
        "--show-labels",
        "--no-headers",
    ]);
    selected.assert_code(0);
    assert_eq!(selected.stdout.lines().count(), 1, "{selected:?}");
    assert!(
        selected.stdout.starts_with(&first) && selected.stdout.contains(&label),
        "{selected:?}"
    );

    let path = mpo(&[
        "status",
        "--offline",
        &second,
        &first,
        "--sort-by",
        ".tag",
        "-o",
        "jsonpath={range .items[*]}{.name}={.tag}{\"\\n\"}{end}",
    ]);
    path.assert_code(0);
    assert_eq!(
        path.stdout,
        format!("{first}=v1\n{second}=v2\n"),
        "{path:?}"
    );

    let filtered = mpo(&[
        "status",
        "--offline",
        &first,
        &second,
        "-o",
        "jsonpath={.items[?(@.tag==\"v2\")].name}",
    ]);
    filtered.assert_code(0);
    assert_eq!(filtered.stdout.trim(), second, "{filtered:?}");

    let columns = mpo(&[
        "status",
        "--offline",
        &first,
        "-o",
        "custom-columns=NAME:.name,TAG:{.tag},NOPE:.nope",
    ]);
    columns.assert_code(0);
    let lines: Vec<Vec<&str>> = columns
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["NAME", "TAG", "NOPE"],
            vec![first.as_str(), "v1", "<none>"]
        ],
        "{columns:?}"
    );

    let bad = mpo(&["status", "--offline", "-o", "jsonpath={.items["]);
    bad.assert_code(2);
}

#[test]
fn field_manager_is_recorded_on_create_and_edit() {
    let name = unique("conv-manager");
    module_with_images(&name, true, &["v1", "v2"]);
    mpo(&[
        "create",
        &name,
        "--tag",
        "v1",
        "--field-manager",
        "ci-pipeline",
    ])
    .assert_code(0);
    mpo(&["edit", &name, "--tag", "v2", "--field-manager", "ci-edit"]).assert_code(0);
    let managers = kubectl(&[
        "get",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers.stdout.contains("ci-pipeline") && managers.stdout.contains("ci-edit"),
        "{managers:?}"
    );
}

#[test]
fn get_and_list_are_status_and_help_is_a_subcommand() {
    let name = ready_override("conv-alias");
    for alias in ["get", "list"] {
        let run = mpo(&[alias, &name, "--offline", "-o", "name"]);
        run.assert_code(0);
        assert_eq!(
            run.stdout,
            format!("modulepulloverride.deckhouse.io/{name}\n")
        );
    }
    let help = mpo(&["help", "delete"]);
    help.assert_code(0);
    assert!(help.stdout.contains("--ignore-not-found"), "{help:?}");
    let human = mpo(&["edit", &name, "--scan-interval", "2h"]);
    human.assert_code(0);
    assert!(
        human
            .stdout
            .starts_with(&format!("modulepulloverride.deckhouse.io/{name} edited")),
        "{human:?}"
    );
}

#[test]
fn edit_refuses_a_tag_that_could_not_become_ready_unless_forced() {
    let name = ready_override("conv-edit-tag");
    let refused = mpo(&["edit", &name, "--tag", "no-such-tag-q"]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("nothing was changed")
            && refused.stderr.contains(&format!(
                "kubectl mpo edit {name} --tag no-such-tag-q --force"
            )),
        "{refused:?}"
    );
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v1");
    let forced = mpo(&["edit", &name, "--tag", "no-such-tag-q", "--force"]);
    forced.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "no-such-tag-q");
}

#[test]
fn machine_readable_output_stays_parseable_with_wait() {
    let name = unique("conv-wait-json");
    module_with_images(&name, true, &["v1", "v2"]);
    let created = mpo(&["create", &name, "--tag", "v1", "-o", "json", "--wait"]);
    created.assert_code(0);
    let object: serde_json::Value =
        serde_json::from_str(&created.stdout).unwrap_or_else(|err| panic!("{err}: {created:?}"));
    assert_eq!(object["spec"]["imageTag"], "v1");
    assert!(created.stderr.contains("Ready:"), "{created:?}");

    let edited = mpo(&["edit", &name, "--tag", "v2", "-o", "yaml", "--wait"]);
    edited.assert_code(0);
    let object: serde_json::Value =
        serde_saphyr::from_str(&edited.stdout).unwrap_or_else(|err| panic!("{err}: {edited:?}"));
    assert_eq!(object["spec"]["imageTag"], "v2");

    let deleted = mpo(&["delete", &name, "--yes", "-o", "name", "--wait"]);
    deleted.assert_code(0);
    assert_eq!(
        deleted.stdout,
        format!("modulepulloverride.deckhouse.io/{name}\n")
    );
}

/// Sends SIGINT to a process, as Ctrl-C does.
fn interrupt(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

#[test]
fn edit_wait_ignores_the_controllers_late_answer_to_the_previous_tag() {
    let name = ready_override("conv-edit-race");
    let simulator = std::fs::read_to_string(state().dir.join("pids/simulator.pid"))
        .expect("simulator pid")
        .trim()
        .to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &simulator])
            .status()
            .expect("kill")
    };
    // The controller is held, so that its answer to the previous tag can land after
    // the edit's patch, as it does on a busy cluster.
    assert!(signal("-STOP").success());
    let mut edit = command(&["edit", &name, "--tag", "v2", "--wait", "--timeout", "60s"]);
    let child = edit.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let result = std::panic::catch_unwind(|| {
        eventually(20, "the edit's patch", || {
            mpo_field(&name, ".spec.imageTag") == "v2"
        });
        let stale = serde_json::json!({"status": {
            "message": format!("Download error: fetch the image digest 127.0.0.1:5000/modules/{name}:nosuch: manifest unknown"),
            "updatedAt": "2030-01-01T00:00:00Z",
        }});
        kubectl(&[
            "patch",
            "modulepulloverrides.deckhouse.io",
            &name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &stale.to_string(),
        ])
        .assert_code(0);
        std::thread::sleep(std::time::Duration::from_secs(2));
    });
    assert!(signal("-CONT").success());
    result.expect("stale verdict written");
    let output = child.expect("spawn").wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Ready:") && !stdout.contains("Conflict"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn status_watch_streams_json_objects_and_ctrl_c_exits_130() {
    let name = ready_override("conv-watch-json");
    let child = command(&["status", &name, "--offline", "--watch", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_secs(3));
    mpo(&["edit", &name, "--tag", "v2", "--wait"]).assert_code(0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    interrupt(child.id());
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    let objects: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("{err}: {stdout}"));
    assert!(objects.len() >= 2, "{stdout}");
    assert_eq!(objects[0]["tag"], "v1");
    assert_eq!(objects.last().expect("last")["tag"], "v2", "{stdout}");
}

#[test]
fn status_watch_redraws_the_table_on_a_terminal() {
    let name = ready_override("conv-watch-tty");
    let editor = std::thread::spawn({
        let name = name.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_secs(4));
            mpo(&["edit", &name, "--tag", "v2", "--wait"]).assert_code(0);
        }
    });
    // Ctrl-C typed after the edit.
    let run = on_terminal(
        &["status", &name, "--offline", "--watch"],
        &["", "", "", "", "", "", "", "", "", "\u{3}"],
    );
    editor.join().expect("editor");
    let clears = run.stdout.matches("\u{1b}[2J").count();
    assert!(clears >= 2, "the table is redrawn, not appended: {run:?}");
    let last = run.stdout.rsplit("\u{1b}[2J").next().unwrap_or_default();
    assert_eq!(
        last.lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count(),
        1,
        "one row per override after a redraw: {run:?}"
    );
    assert!(last.contains("v2") && last.contains("NAME"), "{run:?}");
    assert_eq!(run.code, 130, "{run:?}");
}

#[test]
fn renew_wait_on_a_blocked_override_ends_at_once_with_the_cause() {
    let name = unique("conv-renew-blocked");
    module_with_images(&name, false, &["v1"]);
    mpo(&["create", &name, "--tag", "v1", "--force"]).assert_code(0);
    let started = std::time::Instant::now();
    let run = mpo(&["renew", &name, "--wait", "--timeout", "90s"]);
    run.assert_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "did not wait out --timeout: {run:?}"
    );
    assert!(
        run.stderr.contains(&format!("{name} is blocked"))
            && run.stderr.contains("spec.enabled: false")
            && run.stderr.contains("not waiting"),
        "{run:?}"
    );
}

/// An editor script that runs `rounds[n]` on its n-th call (0-based) and keeps a copy
/// of what it was shown each time in `dir/shown-N`.
fn scripted_editor(dir: &std::path::Path, rounds: &[&str]) -> String {
    std::fs::create_dir_all(dir).expect("editor dir");
    let mut script = String::from("#!/bin/sh\nset -e\n");
    script.push_str(&format!(
        "n=$(cat '{d}/count' 2>/dev/null || echo 0)\necho $((n + 1)) > '{d}/count'\ncp \"$1\" \"{d}/shown-$n\"\ncase $n in\n",
        d = dir.display()
    ));
    for (index, round) in rounds.iter().enumerate() {
        script.push_str(&format!("  {index}) {round} ;;\n"));
    }
    script.push_str("esac\n");
    let path = dir.join("editor.sh");
    std::fs::write(&path, script).expect("editor script");
    format!("sh {}", path.display())
}

#[test]
fn edit_in_an_editor_reopens_an_invalid_save_on_the_users_text() {
    let name = ready_override("conv-edit-reopen");
    let temp = crate::support::temp_dir("mpo-reopen");
    let dir = temp.path();
    // Round 0 saves broken YAML; round 1 sees it again under the error and fixes it.
    let editor = scripted_editor(
        dir,
        &[
            "sed -i 's/imageTag: v1/imageTag: [oops/' \"$1\"",
            "sed -i 's/imageTag: \\[oops/imageTag: v2/' \"$1\"",
        ],
    );
    let mut edit = command(&["edit", &name]);
    edit.env("EDITOR", &editor);
    let run = crate::support::run(edit);
    run.assert_code(0);
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2", "{run:?}");
    let reopened = std::fs::read_to_string(dir.join("shown-1")).expect("second round");
    assert!(
        reopened.contains("imageTag: [oops")
            && reopened.contains("# error: the edited spec is not valid YAML"),
        "the user's text and the error: {reopened}"
    );
    assert!(
        !run.stderr.contains("error: error:") && !run.stderr.contains(": error:"),
        "{run:?}"
    );
    // The error names the editor's line: the broken value is on line 3 of the file and
    // the parser stops at the line after it (4), not at 2 as when comments were cut.
    let first = std::fs::read_to_string(dir.join("shown-0")).expect("first round");
    let broken_line = first
        .lines()
        .position(|l| l.starts_with("imageTag:"))
        .expect("imageTag line")
        + 1;
    assert!(
        run.stderr.contains(&format!("line {broken_line} "))
            || run.stderr.contains(&format!("line {} ", broken_line + 1)),
        "line {broken_line}: {run:?}"
    );

    // Saving the reopened text unchanged gives up, and nothing is changed.
    let temp = crate::support::temp_dir("mpo-reopen-giveup");
    let editor = scripted_editor(
        temp.path(),
        &["sed -i 's/imageTag: v2/imageTag: [oops/' \"$1\"", "true"],
    );
    let mut edit = command(&["edit", &name]);
    edit.env("EDITOR", &editor);
    let gave_up = crate::support::run(edit);
    gave_up.assert_code(2);
    assert!(
        gave_up
            .stderr
            .contains("Edit cancelled, no valid changes were saved"),
        "{gave_up:?}"
    );
    assert_eq!(mpo_field(&name, ".spec.imageTag"), "v2");
}

/// The `kubectl mpo …` commands in a run's output, placeholders filled.
fn printed_commands(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|line| line.split_once("kubectl mpo ").map(|(_, rest)| rest))
        .map(|rest| {
            let rest = rest.split('#').next().unwrap_or_default();
            let rest = rest.split(" (").next().unwrap_or_default();
            rest.split_whitespace()
                .map(|w| w.trim_end_matches([')', ',', ';']))
                .map(|w| {
                    if w == "TAG" {
                        "v1".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect()
        })
        .filter(|words: &Vec<String>| !words.is_empty())
        .collect()
}

/// Runs each printed command (writes as client-side dry runs): none is a usage error.
#[track_caller]
fn run_each_hint(from: &crate::support::Run) -> usize {
    let commands = printed_commands(&from.all());
    for words in &commands {
        let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
        if matches!(args[0], "create" | "edit" | "delete" | "renew") {
            if args[0] == "renew" || args[0] == "delete" {
                continue;
            }
            args.push("--dry-run=client");
        }
        let run = mpo(&args);
        assert_ne!(
            run.code,
            2,
            "hint `kubectl mpo {}` from {from:?}: {run:?}",
            words.join(" ")
        );
    }
    commands.len()
}

#[test]
fn hints_name_commands_and_flags_that_exist_and_work() {
    let ghost = unique("conv-ghost-mod");
    let diff = mpo(&["diff", &ghost]);
    diff.assert_code(1);
    assert!(
        diff.stderr.contains("NotFound") && !diff.stderr.contains("--source"),
        "diff has no --source: {diff:?}"
    );
    assert!(run_each_hint(&diff) >= 1);

    let create = mpo(&["create", &ghost, "--tag", "v1"]);
    create.assert_code(1);
    assert!(
        create
            .stderr
            .contains("kubectl mpo registry modules --source test"),
        "several sources: registry modules needs --source: {create:?}"
    );
    assert!(run_each_hint(&create) >= 3);

    let name = unique("conv-hint-tag");
    module_with_images(&name, true, &["v1"]);
    let missing_tag = mpo(&["create", &name, "--tag", "no-such-tag-h"]);
    missing_tag.assert_code(1);
    assert!(
        missing_tag
            .stderr
            .contains(&format!("kubectl mpo create {name} --tag TAG"))
            && !missing_tag.stderr.contains("kubectl mpo edit"),
        "no override exists yet, so the fix is a create: {missing_tag:?}"
    );
    assert!(run_each_hint(&missing_tag) >= 2);

    let typo = mpo(&["explain", "ehco"]);
    assert!(
        typo.stdout
            .contains("kubectl mpo explain echo    # did you mean echo?"),
        "{typo:?}"
    );
    run_each_hint(&typo);
}

#[test]
fn delete_and_diff_say_what_really_runs() {
    let name = ready_override("conv-runs");
    mpo(&["edit", &name, "--tag", "no-such-tag-r", "--force"]).assert_code(0);
    eventually(30, "the controller's refusal", || {
        mpo_field(&name, ".status.message").contains("no-such-tag-r")
    });
    let delete = mpo(&["delete", &name, "--dry-run"]);
    delete.assert_code(0);
    assert!(
        delete.stderr.contains("tag no-such-tag-r was not deployed")
            && !delete.stderr.contains("dev build (no-such-tag-r)"),
        "{delete:?}"
    );

    let blocked = unique("conv-runs-off");
    module_with_images(&blocked, false, &["v1"]);
    mpo(&["create", &blocked, "--tag", "v1", "--force"]).assert_code(0);
    let diff = mpo(&["diff", &blocked]);
    diff.assert_code(1);
    assert!(
        diff.stdout.contains("runs no build")
            && diff
                .stdout
                .contains(&format!("kubectl mpo explain {blocked}"))
            && !diff.stdout.contains("--content"),
        "{diff:?}"
    );
    let delete = mpo(&["delete", &blocked, "--dry-run"]);
    assert!(
        delete.stderr.contains("changes nothing that runs"),
        "{delete:?}"
    );
}

#[test]
fn explain_with_another_tag_judges_that_tag() {
    let name = ready_override("conv-explain-tag");
    let good = mpo(&["explain", &name, "--tag", "v2"]);
    good.assert_code(0);
    assert!(
        good.stdout.contains(&format!(
            "OK: tag v2 would become Ready (the override runs v1 now): kubectl mpo edit {name} --tag v2"
        )),
        "{good:?}"
    );
    let bad = mpo(&["explain", &name, "--tag", "no-such-tag-e"]);
    bad.assert_code(1);
    assert!(
        bad.stdout
            .contains("with tag no-such-tag-e the override would get")
            && !bad.stdout.contains("OK:")
            && !bad.stdout.contains("kubectl mpo renew"),
        "the override's own Ready status is not called stale: {bad:?}"
    );
}

#[test]
fn status_for_a_user_who_may_not_read_module_sources_keeps_each_rows_cause() {
    let developer = state()
        .contexts
        .developer
        .clone()
        .expect("the sandbox has a developer context");
    let run = mpo(&[
        "status",
        "--context",
        &developer,
        "lost-source",
        "missing-tag",
    ]);
    assert!(
        run.stderr.contains("you may not read ModuleSources"),
        "said once, on stderr: {run:?}"
    );
    assert!(
        !run.stdout.contains("may not read ModuleSources"),
        "not repeated as each row's cause: {run:?}"
    );
    assert!(
        run.stdout.contains("lost-source: The source not found"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("missing-tag: Download error"),
        "{run:?}"
    );
}

#[test]
fn help_keeps_global_flags_apart_and_errors_escape_like_the_rest() {
    let help = mpo(&["create", "--help"]);
    help.assert_code(0);
    let (own, global) = help
        .stdout
        .split_once("Global flags:")
        .unwrap_or_else(|| panic!("{help:?}"));
    assert!(
        own.contains("--tag") && !own.contains("--kubeconfig"),
        "{help:?}"
    );
    let global = global.split("Examples:").next().unwrap_or_default();
    assert!(
        global.contains("--kubeconfig") && !global.contains("--tag"),
        "{help:?}"
    );
    assert!(!mpo(&["status", "--help"]).stdout.contains("--version"));

    let hostile = mpo(&["status", "x\u{1b}[31mRED\u{7}"]);
    hostile.assert_code(2);
    assert!(
        hostile
            .stderr
            .contains("invalid module name \"x\\x1b[31mRED\\x07\"")
            && !hostile.stderr.contains("\\u{1b}"),
        "{hostile:?}"
    );
}

#[test]
fn create_says_when_the_registry_check_was_skipped() {
    let name = unique("conv-dev-create");
    module_with_images(&name, true, &["v1"]);
    let developer = state()
        .contexts
        .developer
        .clone()
        .expect("the sandbox has a developer context");
    let run = mpo(&[
        "--context",
        &developer,
        "create",
        &name,
        "--tag",
        "no-such-tag-d",
        "--dry-run=client",
    ]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("you may not read ModuleSources, so tag no-such-tag-d was not checked"),
        "{run:?}"
    );
}
