//! `kubectl-mpo __complete WORD...`: the candidates for the last word of a command line,
//! one per line (`candidate<TAB>description`), then a directive line as kubectl's own
//! `__complete` prints it (`:4` no file names, `:0` file names allowed). It serves
//! every way of completing: kubectl calls the `kubectl_complete-mpo` helper for
//! `kubectl mpo <TAB>` (the helper runs this), and the scripts of
//! `kubectl-mpo completion bash|zsh|fish` call it for `kubectl-mpo <TAB>`.
//!
//! The words are walked through clap's command tree, so every subcommand and flag is
//! offered as declared in `cli.rs`; values come from the flag's declared values (`-o`
//! lists only what that command prints), the kubeconfig (`--context`, `--cluster`,
//! `--user`), the cluster (module, override and ModuleSource names) and the registry
//! (`--tag`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, CommandFactory};

use crate::cli::{Cli, GlobalArgs};
use crate::cluster::Cluster;

/// cobra's directives (kubectl prints the same numbers).
const NO_FILES: u8 = 4;
const FILES: u8 = 0;

/// What the last word is.
#[derive(Debug, PartialEq)]
enum Want {
    /// A flag name (the word starts with `-`).
    Flag,
    /// The value of a flag; `prefix` is `--flag=` when it was written joined (the
    /// candidates are the bare values then, as kubectl's own `__complete` gives them,
    /// and the shell scripts keep the prefix).
    Value { arg: String, prefix: String },
    /// A subcommand or a positional argument (index among the positionals given).
    Positional { index: usize },
}

/// The command line walked up to the last word.
#[derive(Debug)]
struct Walk {
    /// Subcommand names from the top (`["registry", "tags"]`).
    path: Vec<String>,
    /// Positional words given to the innermost command.
    positionals: Vec<String>,
    /// Kubeconfig flags given, passed on so candidates come from the same cluster.
    global: GlobalArgs,
    /// Flags given with their values (last one wins).
    values: Vec<(String, String)>,
    want: Want,
    current: String,
}

pub fn run(words: Vec<OsString>) -> std::process::ExitCode {
    let words: Vec<String> = words
        .into_iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let (candidates, directive) = complete(&words);
    let mut out = String::new();
    for (candidate, description) in candidates {
        out.push_str(&candidate);
        if !description.is_empty() {
            out.push('\t');
            out.push_str(&description);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
    std::process::ExitCode::SUCCESS
}

fn root() -> clap::Command {
    let mut command = Cli::command();
    // Propagates the global flags to every subcommand.
    command.build();
    command
}

fn find_sub<'a>(command: &'a clap::Command, name: &str) -> Option<&'a clap::Command> {
    command
        .get_subcommands()
        .find(|sub| sub.get_name() == name || sub.get_all_aliases().any(|alias| alias == name))
}

fn command_at<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    let mut command = root;
    for name in path {
        command = find_sub(command, name).expect("walked path");
    }
    command
}

fn by_long<'a>(command: &'a clap::Command, long: &str) -> Option<&'a Arg> {
    command.get_arguments().find(|arg| {
        arg.get_long() == Some(long)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&long))
    })
}

fn by_short(command: &clap::Command, short: char) -> Option<&Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_short() == Some(short))
}

/// Whether the flag takes its value from the next word.
fn takes_next_word(arg: &Arg) -> bool {
    arg.get_action().takes_values()
        && !arg.is_require_equals_set()
        && arg
            .get_num_args()
            .is_none_or(|range| range.min_values() > 0)
}

fn id_of(arg: &Arg) -> String {
    arg.get_id().as_str().to_string()
}

fn walk(root: &clap::Command, words: &[String]) -> Walk {
    let (current, before) = match words.split_last() {
        Some((last, before)) => (last.clone(), before),
        None => (String::new(), &[][..]),
    };
    let mut path = Vec::new();
    let mut positionals = Vec::new();
    let mut values: Vec<(String, String)> = Vec::new();
    let mut pending: Option<String> = None;
    let mut only_positionals = false;
    for word in before {
        let command = command_at(root, &path);
        if let Some(id) = pending.take() {
            values.push((id, word.clone()));
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && word.starts_with("--") && word.len() > 2 {
            let (name, value) = match word[2..].split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (&word[2..], None),
            };
            if let Some(arg) = by_long(command, name) {
                match value {
                    Some(value) => values.push((id_of(arg), value.to_string())),
                    None if takes_next_word(arg) => pending = Some(id_of(arg)),
                    None => values.push((id_of(arg), String::new())),
                }
            }
            continue;
        }
        if !only_positionals && word.starts_with('-') && word.len() > 1 {
            // -o json, -ojson, -o=json, -vvv, -y
            for (at, short) in word[1..].char_indices() {
                let Some(arg) = by_short(command, short) else {
                    break;
                };
                if arg.get_action().takes_values() {
                    let rest = word[1 + at + short.len_utf8()..].trim_start_matches('=');
                    if rest.is_empty() && takes_next_word(arg) {
                        pending = Some(id_of(arg));
                    } else {
                        values.push((id_of(arg), rest.to_string()));
                    }
                    break;
                }
                values.push((id_of(arg), String::new()));
            }
            continue;
        }
        if positionals.is_empty()
            && command.has_subcommands()
            && let Some(sub) = find_sub(command, word)
        {
            path.push(sub.get_name().to_string());
            continue;
        }
        positionals.push(word.clone());
    }
    let command = command_at(root, &path);
    let want = if let Some(arg) = pending {
        Want::Value {
            arg,
            prefix: String::new(),
        }
    } else if !only_positionals && current.starts_with("--") && current.contains('=') {
        let (name, _) = current[2..].split_once('=').expect("has =");
        match by_long(command, name) {
            Some(arg) => Want::Value {
                arg: id_of(arg),
                prefix: format!("--{name}="),
            },
            None => Want::Flag,
        }
    } else if !only_positionals && current.starts_with('-') {
        Want::Flag
    } else {
        Want::Positional {
            index: positionals.len(),
        }
    };
    let value = |id: &str| {
        values
            .iter()
            .rev()
            .find(|(name, _)| name == id)
            .map(|(_, v)| v.clone())
    };
    let global = GlobalArgs {
        kubeconfig: value("kubeconfig").map(PathBuf::from),
        context: value("context"),
        cluster: value("cluster"),
        user: value("user"),
        // Completion must stay quick: a slow cluster gives no candidates, not a hang.
        request_timeout: Duration::from_secs(5),
        ..GlobalArgs::default()
    };
    Walk {
        path,
        positionals,
        global,
        values,
        want,
        current,
    }
}

type Candidates = Vec<(String, String)>;

fn complete(words: &[String]) -> (Candidates, u8) {
    let root = root();
    let walk = walk(&root, words);
    let command = command_at(&root, &walk.path);
    let (candidates, directive, prefix) = match &walk.want {
        Want::Flag => (flags(command), NO_FILES, String::new()),
        Want::Value { arg, prefix } => {
            let (candidates, directive) = flag_values(command, arg, &walk);
            (candidates, directive, prefix.clone())
        }
        Want::Positional { index } => {
            let (candidates, directive) = positionals(command, *index, &walk);
            (candidates, directive, String::new())
        }
    };
    let typed = walk.current.strip_prefix(&prefix).unwrap_or(&walk.current);
    let candidates = candidates
        .into_iter()
        .filter(|(value, _)| value.starts_with(typed))
        .collect();
    (candidates, directive)
}

fn first_line(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn flags(command: &clap::Command) -> Candidates {
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        if arg.is_hide_set() || arg.is_positional() {
            continue;
        }
        let help = first_line(arg.get_help());
        if let Some(long) = arg.get_long() {
            out.push((format!("--{long}"), help.clone()));
        }
        if let Some(short) = arg.get_short() {
            out.push((format!("-{short}"), help));
        }
    }
    out
}

fn flag_values(command: &clap::Command, id: &str, walk: &Walk) -> (Candidates, u8) {
    let Some(arg) = command.get_arguments().find(|arg| arg.get_id() == id) else {
        return (Vec::new(), NO_FILES);
    };
    let declared: Candidates = arg
        .get_possible_values()
        .into_iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| {
            (
                value.get_name().to_string(),
                first_line(value.get_help()).to_string(),
            )
        })
        .collect();
    if !declared.is_empty() {
        return (declared, NO_FILES);
    }
    let names = |list: Vec<String>| list.into_iter().map(|n| (n, String::new())).collect();
    match id {
        "kubeconfig" | "registry_config" | "registry_ca" => (Vec::new(), FILES),
        "context" | "cluster" | "user" => (names(kubeconfig_names(&walk.global, id)), NO_FILES),
        "tag" => match walk.positionals.first() {
            Some(module) => (names(registry_tags(walk, module)), NO_FILES),
            None => (Vec::new(), NO_FILES),
        },
        "source" => (names(cluster_names(&walk.global, Names::Sources)), NO_FILES),
        _ => (Vec::new(), NO_FILES),
    }
}

fn positionals(command: &clap::Command, index: usize, walk: &Walk) -> (Candidates, u8) {
    if command.has_subcommands() {
        if index > 0 {
            return (Vec::new(), NO_FILES);
        }
        let subs = command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .flat_map(|sub| {
                let about = first_line(sub.get_about());
                std::iter::once(sub.get_name().to_string())
                    .chain(sub.get_visible_aliases().map(str::to_string))
                    .map(move |name| (name, about.clone()))
            })
            .collect();
        return (subs, NO_FILES);
    }
    let args: Vec<&Arg> = command.get_positionals().collect();
    let multiple = args
        .last()
        .is_some_and(|arg| arg.get_num_args().is_some_and(|n| n.max_values() > 1));
    let Some(arg) = args
        .get(index)
        .or_else(|| if multiple { args.last() } else { None })
    else {
        return (Vec::new(), NO_FILES);
    };
    let declared: Candidates = arg
        .get_possible_values()
        .into_iter()
        .map(|value| (value.get_name().to_string(), String::new()))
        .collect();
    if !declared.is_empty() {
        return (declared, NO_FILES);
    }
    // registry files|images|cat MODULE:TAG
    if walk.path.first().is_some_and(|p| p == "registry")
        && arg.get_id() == "image"
        && let Some((module, _)) = walk.current.split_once(':')
    {
        let tags = registry_tags(walk, module)
            .into_iter()
            .map(|tag| (format!("{module}:{tag}"), String::new()))
            .collect();
        return (tags, NO_FILES);
    }
    let given: BTreeSet<&String> = walk.positionals.iter().collect();
    let leaf = walk.path.last().map(String::as_str).unwrap_or_default();
    let parent = walk.path.first().map(String::as_str).unwrap_or_default();
    let names = match (parent, leaf, arg.get_id().as_str()) {
        // A new override: modules that do not have one yet.
        (_, "create", _) => {
            let modules = cluster_names(&walk.global, Names::Modules);
            let overrides: BTreeSet<String> = cluster_names(&walk.global, Names::Overrides)
                .into_iter()
                .collect();
            modules
                .into_iter()
                .filter(|m| !overrides.contains(m))
                .collect()
        }
        // explain works before an override exists: every module and every override.
        (_, "explain", _) => {
            let mut all: BTreeSet<String> = cluster_names(&walk.global, Names::Modules)
                .into_iter()
                .collect();
            all.extend(cluster_names(&walk.global, Names::Overrides));
            all.into_iter().collect()
        }
        ("registry", _, "module" | "image") => cluster_names(&walk.global, Names::Modules),
        (_, "edit" | "renew" | "delete" | "status" | "diff", _) => {
            cluster_names(&walk.global, Names::Overrides)
        }
        _ => Vec::new(),
    };
    let names = names
        .into_iter()
        .filter(|name| !given.contains(name))
        .map(|name| (name, String::new()))
        .collect();
    (names, NO_FILES)
}

/// Context, cluster or user names of the kubeconfig (all files of `$KUBECONFIG`).
fn kubeconfig_names(global: &GlobalArgs, kind: &str) -> Vec<String> {
    let paths = crate::auth::kubeconfig_paths(global.kubeconfig.as_deref());
    let mut names = BTreeSet::new();
    for path in paths {
        let Ok(config) = kube::config::Kubeconfig::read_from(&path) else {
            continue;
        };
        match kind {
            "context" => names.extend(config.contexts.into_iter().map(|c| c.name)),
            "cluster" => names.extend(config.clusters.into_iter().map(|c| c.name)),
            _ => names.extend(config.auth_infos.into_iter().map(|u| u.name)),
        }
    }
    names.into_iter().collect()
}

enum Names {
    Modules,
    Overrides,
    Sources,
}

/// Names from the cluster; none when it cannot be reached (completion never fails).
fn cluster_names(global: &GlobalArgs, what: Names) -> Vec<String> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        let Ok(cluster) = Cluster::connect(&global.connect_options()).await else {
            return Vec::new();
        };
        let params = kube::api::ListParams::default();
        fn names_of<K: Clone>(
            list: kube::Result<kube::api::ObjectList<kube::core::PartialObjectMeta<K>>>,
        ) -> Vec<String> {
            list.map(|list| {
                list.items
                    .into_iter()
                    .filter_map(|item| item.metadata.name)
                    .collect()
            })
            .unwrap_or_default()
        }
        let mut names = match what {
            Names::Modules => names_of(cluster.modules().list_metadata(&params).await),
            Names::Sources => names_of(cluster.module_sources().list_metadata(&params).await),
            Names::Overrides => match cluster.mpo_version().await {
                Ok(version) => names_of(cluster.mpo_api(version).list_metadata(&params).await),
                Err(_) => return Vec::new(),
            },
        };
        names.sort();
        names
    })
}

/// The module's tags, as `registry tags MODULE -o name` lists them (same flags).
fn registry_tags(walk: &Walk, module: &str) -> Vec<String> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let mut command = std::process::Command::new(exe);
    command.args([
        "registry",
        "tags",
        module,
        "-o",
        "name",
        "--request-timeout",
        "5s",
    ]);
    for (id, flag) in [
        ("kubeconfig", "--kubeconfig"),
        ("context", "--context"),
        ("cluster", "--cluster"),
        ("user", "--user"),
        ("source", "--source"),
        ("registry_repo", "--registry-repo"),
        ("registry_config", "--registry-config"),
        ("registry_ca", "--registry-ca"),
    ] {
        if let Some((_, value)) = walk.values.iter().rev().find(|(name, _)| name == id) {
            command.arg(format!("{flag}={value}"));
        }
    }
    command
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match command.output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
        if words == [""] {
            words = vec![String::new()];
        }
        words
    }

    fn offline(text: &str) -> Vec<String> {
        complete(&words(text))
            .0
            .into_iter()
            .map(|(value, _)| value)
            .collect()
    }

    #[test]
    fn subcommands_flags_and_declared_values() {
        assert!(offline("").contains(&"create".to_string()));
        assert_eq!(offline("ex"), ["explain"]);
        assert_eq!(offline("registry rel"), ["releases"]);
        assert_eq!(
            offline("status -o "),
            [
                "json",
                "yaml",
                "name",
                "wide",
                "jsonpath=",
                "custom-columns="
            ]
        );
        assert_eq!(offline("explain echo -o "), ["json", "yaml"]);
        assert_eq!(
            offline("status --output="),
            [
                "json",
                "yaml",
                "name",
                "wide",
                "jsonpath=",
                "custom-columns="
            ]
        );
        assert_eq!(offline("create echo --dry-run=c"), ["client"]);
        assert_eq!(offline("completion z"), ["zsh"]);
        assert_eq!(offline("--context x completion f"), ["fish"]);
        let flags = offline("create echo --");
        for flag in ["--tag", "--wait", "--context", "--kubeconfig", "--dry-run"] {
            assert!(flags.contains(&flag.to_string()), "{flag} in {flags:?}");
        }
        assert!(offline("status -").contains(&"-o".to_string()));
        // A value is not taken for the subcommand.
        assert_eq!(offline("--context x status --off"), ["--offline"]);
        assert_eq!(offline("--request-timeout 5s ren"), ["renew"]);
    }
}
