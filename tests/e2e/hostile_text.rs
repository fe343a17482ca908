//! Text from the cluster is written by someone else: a status message, a condition's
//! message. On a terminal, with colour on, none of its control or escape sequences may
//! reach the screen raw (CVE-2021-25743's class); the text still reads, escaped.

use std::process::{Command, Stdio};

use crate::support::{binary, eventually, home_dir, kubectl, mpo, mpo_field, state, unique};

/// Sequences a hostile status carries: a window-title OSC, clear screen, a colour
/// change, a DCS string, a carriage return that overwrites the line, a backspace, and
/// a bidirectional override that reorders what is shown.
const HOSTILE: &str = "The module not found\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mRED\u{1b}P1$r\u{1b}\\\rOK\u{8}\u{202e}txt.exe";

/// What must never appear raw in what the terminal receives.
const RAW: [&str; 6] = [
    "\u{1b}]0;pwned",
    "\u{7}",
    "\u{1b}[2J",
    "\u{1b}[31mRED",
    "\u{1b}P",
    "\u{202e}",
];

/// Runs the plugin on a pseudo-terminal with colour on (TERM=xterm, no NO_COLOR), so
/// that the plugin's own colours are there too; returns what the terminal received.
pub fn on_colour_terminal(args: &[&str]) -> (i32, String) {
    let line = std::iter::once(binary().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", &state().kubeconfig)
        .env("HOME", home_dir())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn assert_neutralized(what: &str, screen: &str, whole: bool) {
    for raw in RAW {
        assert!(
            !screen.contains(raw),
            "{what}: {raw:?} reached the terminal raw:\n{screen:?}"
        );
    }
    // The text still reads: the message is there, its escapes shown visibly (the
    // default table shortens it).
    if whole {
        assert!(
            screen.contains("The module not found"),
            "{what}: {screen:?}"
        );
        assert!(screen.contains("\\x1b]0;pwned\\x07"), "{what}: {screen:?}");
    }
}

#[test]
fn hostile_status_messages_are_shown_escaped_on_a_terminal() {
    let name = unique("hostile-ghost");
    mpo(&["create", &name, "--tag", "v1", "--force"]).assert_code(0);
    // The controller's own verdict first, so that it does not overwrite the patch.
    eventually(60, "the controller's verdict", || {
        mpo_field(&name, ".status.message") == "The module not found"
    });
    let patch = serde_json::json!({"status": {"message": HOSTILE}}).to_string();
    kubectl(&[
        "patch",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .assert_code(0);

    for (args, whole) in [
        (vec!["status", name.as_str(), "--offline"], false),
        (
            vec!["status", name.as_str(), "--offline", "-o", "wide"],
            true,
        ),
        (vec!["explain", name.as_str(), "--offline"], true),
    ] {
        let (code, screen) = on_colour_terminal(&args);
        assert!(code == 0 || code == 1, "{args:?}: exit {code}: {screen}");
        assert_neutralized(&args.join(" "), &screen, whole);
        // The plugin's own colours still work on this terminal.
        assert!(
            screen.contains("\u{1b}[1m") || screen.contains("\u{1b}[3"),
            "{args:?}: no colour at all: {screen:?}"
        );
    }

    // Machine-readable output stays exact: the encoder escapes, the value round-trips.
    let run = mpo(&["status", &name, "--offline", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["items"][0]["message"], HOSTILE);
    kubectl(&[
        "delete",
        "modulepulloverrides.deckhouse.io",
        &name,
        "--wait=false",
    ]);
}
