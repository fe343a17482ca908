//! Shell completion, through bash itself: kubectl's own completion script with the
//! plugin's helper on PATH for `kubectl mpo <TAB>`, and the script of
//! `kubectl-mpo completion bash` for `kubectl-mpo <TAB>`. The driver builds COMP_WORDS
//! as bash does (word-break characters such as `=` and `:` are words of their own),
//! calls the registered completion function, and prints COMPREPLY: the words bash
//! would offer. Candidates come from the real cluster, kubeconfig and registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{
    Run, binary, home_dir, module_with_images, mpo, quiet_override, run, state, unique,
};

/// bash-completion's functions, which kubectl's bash script calls.
fn bash_completion_file() -> PathBuf {
    std::env::var_os("MPO_BASH_COMPLETION")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/bash-completion/bash_completion"))
}

const DRIVER: &str = r#"
set +e
source "$MPO_BASH_COMPLETION_FILE" || exit 90
source <(kubectl completion bash) || exit 91
source <(kubectl-mpo completion bash) || exit 92
# COMP_WORDS as bash builds them from the line (COMP_WORDBREAKS without blanks/quotes).
breaks='=:><;|&('
line=$1
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=()
word=""
in_break=0
for ((i = 0; i < ${#line}; i++)); do
  ch=${line:i:1}
  if [[ $ch == " " ]]; then
    [[ -n $word ]] && COMP_WORDS+=("$word")
    word=""; in_break=0
  elif [[ $breaks == *"$ch"* ]]; then
    if ((in_break)); then word+=$ch; else [[ -n $word ]] && COMP_WORDS+=("$word"); word=$ch; in_break=1; fi
  else
    if ((in_break)); then COMP_WORDS+=("$word"); word=""; in_break=0; fi
    word+=$ch
  fi
done
[[ -n $word ]] && COMP_WORDS+=("$word")
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
spec=$(complete -p "${COMP_WORDS[0]}") || exit 93
function=${spec##*-F }
function=${function%% *}
COMPREPLY=()
"$function" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
"#;

/// A directory on PATH with kubectl-mpo (a link to the built binary) and, when
/// `helper`, the completion helper that `completion --install-helper` puts there;
/// removed when the returned value is dropped.
fn plugin_dir(helper: bool) -> tempfile::TempDir {
    let temp = crate::support::temp_dir("mpo-completion-path");
    let dir = temp.path();
    std::os::unix::fs::symlink(binary(), dir.join("kubectl-mpo")).expect("link");
    if helper {
        let mut install = Command::new(dir.join("kubectl-mpo"));
        install
            .args(["completion", "--install-helper"])
            .env("PATH", path_with(dir));
        let run = run(install);
        run.assert_code(0);
        assert!(run.stdout.contains("kubectl_complete-mpo"), "{run:?}");
        assert!(dir.join("kubectl_complete-mpo").is_file(), "{run:?}");
    }
    temp
}

/// `dir`, then PATH without any other kubectl-mpo or helper.
fn path_with(dir: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let rest = std::env::split_paths(&path).filter(|entry| {
        !entry.join("kubectl-mpo").exists() && !entry.join("kubectl_complete-mpo").exists()
    });
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(rest))
        .expect("PATH")
        .to_string_lossy()
        .into_owned()
}

/// What bash offers for `line` (ending in a space: a new word).
fn bash_complete(dir: &Path, line: &str) -> Vec<String> {
    let mut command = Command::new("bash");
    command
        .args(["--norc", "--noprofile", "-c", DRIVER, "driver", line])
        .env("PATH", path_with(dir))
        .env("MPO_BASH_COMPLETION_FILE", bash_completion_file())
        .env("KUBECONFIG", &state().kubeconfig)
        .env("HOME", home_dir())
        .stdin(Stdio::null());
    let run = run(command);
    assert_eq!(run.code, 0, "bash driver for {line:?}: {run:?}");
    let mut words: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    words.sort();
    words
}

fn sorted(words: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    words.sort();
    words
}

#[test]
fn kubectl_mpo_tab_completes_through_bash_with_the_installed_helper() {
    let without = plugin_dir(false);
    // Without the helper, kubectl cannot complete below `mpo`.
    assert!(
        !bash_complete(without.path(), "kubectl mpo st").contains(&"status".to_string()),
        "completed without the helper"
    );
    let temp = plugin_dir(true);
    let dir = temp.path();
    let complete = |line: &str| bash_complete(dir, line);

    assert!(complete("kubectl mpo ").contains(&"explain".to_string()));
    assert_eq!(complete("kubectl mpo ex"), ["explain"]);
    // Flags of the subcommand, global ones included.
    let flags = complete("kubectl mpo create hello-world --");
    for flag in ["--tag", "--wait", "--force", "--context", "--kubeconfig"] {
        assert!(flags.contains(&flag.to_string()), "{flag}: {flags:?}");
    }
    assert_eq!(complete("kubectl mpo status --of"), ["--offline"]);
    // -o lists what the command prints, and nothing else.
    assert_eq!(
        complete("kubectl mpo status -o "),
        sorted(&[
            "json",
            "yaml",
            "name",
            "wide",
            "jsonpath=",
            "custom-columns="
        ])
    );
    assert_eq!(
        complete("kubectl mpo explain echo -o "),
        sorted(&["json", "yaml"])
    );
    assert_eq!(
        complete("kubectl mpo status --output="),
        sorted(&[
            "json",
            "yaml",
            "name",
            "wide",
            "jsonpath=",
            "custom-columns="
        ])
    );
    // Kubeconfig names.
    let contexts = complete("kubectl mpo --context ");
    assert!(
        contexts.contains(&state().contexts.admin) && contexts.contains(&state().contexts.readonly),
        "{contexts:?}"
    );
    assert_eq!(complete("kubectl mpo status --user adm"), ["admin"]);
    assert_eq!(complete("kubectl mpo status --cluster "), ["sandbox"]);

    // Module and override names: create offers modules without an override, explain
    // offers every module, the others offer overrides.
    let bare = unique("cmp-bare");
    module_with_images(&bare, true, &["main", "multiarch-a", "multiarch-b"]);
    let taken = unique("cmp-taken");
    quiet_override(&taken, &["main"]);
    let create = complete("kubectl mpo create cmp-");
    assert!(
        create.contains(&bare) && !create.contains(&taken),
        "{create:?}"
    );
    let explain = complete("kubectl mpo explain cmp-");
    assert!(
        explain.contains(&bare) && explain.contains(&taken),
        "{explain:?}"
    );
    let delete = complete("kubectl mpo delete cmp-");
    assert!(
        delete.contains(&taken) && !delete.contains(&bare),
        "{delete:?}"
    );
    // Registry tags, after --tag and --tag=.
    assert_eq!(
        complete(&format!("kubectl mpo create {bare} --tag multi")),
        sorted(&["multiarch-a", "multiarch-b"])
    );
    assert_eq!(
        complete(&format!("kubectl mpo edit {taken} --tag=ma")),
        ["main"]
    );
    assert_eq!(
        complete(&format!("kubectl mpo registry files {bare}:multiarch-")),
        sorted(&["multiarch-a", "multiarch-b"])
    );
}

#[test]
fn kubectl_mpo_completion_bash_completes_below_the_top_level() {
    let temp = plugin_dir(false);
    let dir = temp.path();
    let complete = |line: &str| bash_complete(dir, line);
    assert_eq!(complete("kubectl-mpo ren"), ["renew"]);
    assert_eq!(
        complete("kubectl-mpo status -o "),
        sorted(&[
            "json",
            "yaml",
            "name",
            "wide",
            "jsonpath=",
            "custom-columns="
        ])
    );
    assert_eq!(complete("kubectl-mpo status --of"), ["--offline"]);
    assert_eq!(complete("kubectl-mpo registry rel"), ["releases"]);
    assert_eq!(
        complete("kubectl-mpo --context sandbox-r"),
        [state().contexts.readonly.clone()]
    );
    assert_eq!(complete("kubectl-mpo completion z"), ["zsh"]);
    let bare = unique("cmp-own");
    module_with_images(&bare, true, &["main", "pr-1"]);
    assert_eq!(
        complete(&format!("kubectl-mpo create {bare} --tag=p")),
        ["pr-1"]
    );
    assert_eq!(
        complete(&format!("kubectl-mpo explain {bare} -t ")),
        sorted(&["main", "pr-1"])
    );
    assert_eq!(complete(&format!("kubectl-mpo create {bare}")), [bare]);
}

#[test]
fn completion_scripts_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = mpo(&["completion", shell]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("kubectl-mpo") && run.stdout.contains("__complete"),
            "{shell}: {run:?}"
        );
    }
    mpo(&["completion", "powershell"]).assert_code(0);
    mpo(&["completion", "tcsh"]).assert_code(2);
    // Syntax of the bash script.
    let mut check = Command::new("bash");
    check
        .args(["-n", "-c", &mpo(&["completion", "bash"]).stdout])
        .stdin(Stdio::null());
    run(check).assert_code(0);
}

#[test]
fn the_helper_is_installed_next_to_the_binary_on_path() {
    let temp = plugin_dir(true);
    let dir = temp.path();
    // A second run changes nothing.
    let mut again = Command::new(dir.join("kubectl-mpo"));
    again
        .args(["completion", "--install-helper"])
        .env("PATH", path_with(dir));
    let again = run(again);
    again.assert_code(0);
    assert!(again.stdout.contains("already installed"), "{again:?}");
    // A directory that cannot be written: an error naming it and the way out.
    let run = mpo(&[
        "completion",
        "--install-helper",
        "--helper-dir",
        "/nonexistent/bin",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/bin/kubectl_complete-mpo"),
        "{run:?}"
    );
    assert!(run.stderr.contains("--helper-dir"), "{run:?}");
}

fn helper(words: &[&str]) -> Run {
    let temp = plugin_dir(true);
    let dir = temp.path();
    let mut command = Command::new(dir.join("kubectl_complete-mpo"));
    command
        .args(words)
        .env("PATH", "/usr/bin:/bin")
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
    lines[..lines.len() - 1]
        .iter()
        .map(|line| line.split('\t').next().unwrap_or_default())
        .collect()
}

#[test]
fn helper_runs_the_binary_next_to_it() {
    // PATH holds no kubectl-mpo: the helper finds the one in its own directory.
    assert_eq!(candidates(&helper(&["registry", "rel"])), ["releases"]);
    let tags = helper(&["create", "echo", "--tag", "main"]);
    let tags = candidates(&tags);
    assert!(
        tags.contains(&"main-patch-03354") && tags.iter().all(|t| t.starts_with("main")),
        "{tags:?}"
    );
    let kubeconfig = helper(&["--kubeconfig", ""]);
    assert_eq!(
        kubeconfig.stdout.lines().last(),
        Some(":0"),
        "file names: {kubeconfig:?}"
    );
}

/// zsh and fish run their scripts from `kubectl-mpo completion zsh|fish`. fish
/// completes a whole line itself (`complete -C`); zsh's matching needs a terminal, so
/// `_describe` is replaced by a function that prints the candidates it is given.
#[test]
fn zsh_and_fish_scripts_complete_below_the_top_level() {
    let temp = plugin_dir(false);
    let dir = temp.path();
    let shell = |program: &str, script: &str| {
        let mut command = Command::new(program);
        command
            .args(["-c", script])
            .env("PATH", path_with(dir))
            .env("KUBECONFIG", &state().kubeconfig)
            .env("HOME", home_dir())
            .stdin(Stdio::null());
        let run = run(command);
        run.assert_code(0);
        let mut words: Vec<String> = run
            .stdout
            .lines()
            .map(|line| line.split('\t').next().unwrap_or_default().to_string())
            .filter(|word| !word.is_empty())
            .collect();
        words.sort();
        words
    };
    let fish = |line: &str| {
        shell(
            "fish",
            &format!("kubectl-mpo completion fish | source; complete -C'{line}'"),
        )
    };
    assert_eq!(fish("kubectl-mpo status --of"), ["--offline"]);
    assert_eq!(
        fish("kubectl-mpo status -o "),
        sorted(&[
            "json",
            "yaml",
            "name",
            "wide",
            "jsonpath=",
            "custom-columns="
        ])
    );
    let bare = unique("cmp-shells");
    module_with_images(&bare, true, &["main", "pr-2"]);
    assert_eq!(
        fish(&format!("kubectl-mpo create {bare} --tag=p")),
        ["--tag=pr-2"]
    );

    let zsh = |words: &[&str]| {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        shell(
            "zsh",
            &format!(
                "autoload -U compinit; compinit -u; source <(kubectl-mpo completion zsh); \
                 _describe() {{ shift 3; print -l -- ${{(P)1}}; }}; compset() {{ :; }}; \
                 words=({}); CURRENT={}; _kubectl_mpo",
                quoted.join(" "),
                words.len()
            ),
        )
    };
    assert_eq!(
        zsh(&["kubectl-mpo", "status", "-o", ""]),
        sorted(&[
            "json",
            "yaml",
            "name",
            "wide",
            "jsonpath=",
            "custom-columns="
        ])
    );
    assert_eq!(
        zsh(&["kubectl-mpo", "create", &bare, "--tag", ""]),
        sorted(&["main", "pr-2"])
    );
    let flags = zsh(&["kubectl-mpo", "status", "--"]);
    assert!(
        flags.iter().any(|f| f.starts_with("--offline")),
        "{flags:?}"
    );
}
