//! Command-line definitions. kubectl does not parse a plugin's flags, so the global
//! kubeconfig flags are declared here and accepted before or after the subcommand.
//! Values are parsed into types here ([`ModuleName`], [`Tag`], durations), so a bad
//! value is a usage error naming its flag before any command runs, and each command
//! lists in its help only the `-o` formats it supports.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::names::shown;
pub use crate::names::{
    ImageArg, ModuleName, ScanInterval, Tag, parse_image_arg, parse_module_name,
    parse_scan_interval, parse_source_name, parse_tag,
};
use crate::validate;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mpo",
    bin_name = "kubectl mpo",
    version = crate::VERSION,
    about = "Work with Deckhouse ModulePullOverrides: run a module build from a registry tag, \
             see whether the cluster runs it, and learn why not",
    after_help = "Examples:\n  kubectl mpo create echo --tag main-patch-03354 --wait\n  kubectl mpo status\n  kubectl mpo explain echo\n  kubectl mpo renew echo --wait\n  kubectl mpo diff echo --content\n\nExit codes:\n  0    success, healthy, in sync\n  1    the checked condition does not hold (a difference, a conflict, a --wait that timed out);\n       NotFound or AlreadyExists from the server; a --context or --cluster not in the kubeconfig\n  2    usage or invalid input\n  3    cluster or registry unreachable, 401/403, CRDs missing\n  130  interrupted (Ctrl-C)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the arguments, then holds what the derive cannot express: `--all=false`
    /// counts as present for clap yet names no override, so `renew`/`delete` need
    /// MODULE names or a true `--all`, never both (`echo --all=false` is fine, as in
    /// kubectl).
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        let (name, all, modules) = match &cli.command {
            Command::Renew(args) => ("renew", args.all, args.modules.len()),
            Command::Delete(args) => ("delete", args.all, args.modules.len()),
            _ => return Ok(cli),
        };
        let refused = match (all, modules) {
            (false, 0) => Some((
                clap::error::ErrorKind::MissingRequiredArgument,
                "name one or more MODULEs, or pass --all (--all=false names none)",
            )),
            (true, 1..) => Some((
                clap::error::ErrorKind::ArgumentConflict,
                "MODULE names and --all exclude each other",
            )),
            _ => None,
        };
        if let Some((kind, message)) = refused {
            use clap::CommandFactory;
            let mut command = Self::command();
            command.build();
            let sub = command
                .find_subcommand_mut(name)
                .expect("the subcommand exists");
            return Err(sub.error(kind, message));
        }
        Ok(cli)
    }
}

#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Global flags")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// Time to wait for a single API request (e.g. 10s, 1m, or seconds; 0 means no limit)
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,

    /// Disable color (also: NO_COLOR=1)
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub no_color: bool,

    /// More detail: -v notes, -v=6 each API request (method, URL, status, time), -v=8
    /// also headers (credentials redacted); -vv... or --v=N as in kubectl
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Accepted and ignored: ModulePullOverrides are cluster-scoped (as kubectl does)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The address of the Kubernetes API server (overrides the kubeconfig's)
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for the API server (overrides the kubeconfig user's credentials)
    #[arg(long, global = true, value_name = "TOKEN", hide_default_value = true)]
    pub token: Option<String>,

    /// User to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate (repeat for several)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,

    /// Path to a PEM file with the API server's certificate authority
    #[arg(long, global = true, value_name = "PATH")]
    pub certificate_authority: Option<PathBuf>,

    /// Do not check the API server's certificate (insecure)
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_bool)]
    pub insecure_skip_tls_verify: Option<bool>,
}

impl GlobalArgs {
    /// The connection settings the cluster layer takes (kubectl's `ToRESTConfig`).
    pub fn connect_options(&self) -> crate::cluster::ConnectOptions {
        crate::cluster::ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            request_timeout: self.request_timeout,
            no_color: self.no_color,
            verbose: self.verbose,
            server: self.server.clone(),
            token: self.token.clone(),
            as_user: self.as_user.clone(),
            as_group: self.as_group.clone(),
            certificate_authority: self.certificate_authority.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ModulePullOverride: run MODULE from the registry tag TAG
    #[command(
        after_help = "Examples:\n  kubectl mpo create echo --tag main-patch-03354\n  kubectl mpo create echo --tag pr333 --scan-interval 1m --wait\n  kubectl mpo create echo --tag pr333 --dry-run=client -o yaml"
    )]
    Create(CreateArgs),

    /// Change an existing override (only the fields given)
    #[command(
        after_help = "Examples:\n  kubectl mpo edit echo --tag v1.0.0\n  kubectl mpo edit echo --rollback=true\n  kubectl mpo edit echo            # opens $KUBE_EDITOR/$EDITOR on a terminal; with neither set, the tag picker\n\nAn invalid save reopens the editor on your text with the error on top; saving it unchanged cancels."
    )]
    Edit(EditArgs),

    /// Force an immediate re-check (and redeploy on newer controllers)
    #[command(
        override_usage = "kubectl mpo renew MODULE... [OPTIONS]\n       kubectl mpo renew --all [OPTIONS]",
        after_help = "Examples:\n  kubectl mpo renew echo --wait\n  kubectl mpo renew echo --check-only    # re-check only, never a forced redeploy\n  kubectl mpo renew --all --yes"
    )]
    Renew(RenewArgs),

    /// Delete overrides
    #[command(
        override_usage = "kubectl mpo delete MODULE... [OPTIONS]\n       kubectl mpo delete --all [OPTIONS]",
        after_help = "Examples:\n  kubectl mpo delete echo\n  kubectl mpo delete echo --rollback --yes\n  kubectl mpo delete echo hello-world --yes -o name\n  kubectl mpo delete --all --dry-run"
    )]
    Delete(DeleteArgs),

    /// Show overrides with the cluster's and the registry's digest
    #[command(
        visible_aliases = ["get", "list"],
        after_help = "Examples:\n  kubectl mpo status\n  kubectl mpo status echo -o wide\n  kubectl mpo status --offline -o json"
    )]
    Status(StatusArgs),

    /// Show the deckhouse controller's log lines about a module
    #[command(
        after_help = "Examples:\n  kubectl mpo logs echo\n  kubectl mpo logs echo -f --level error\n  kubectl mpo logs echo --since 10m --tail 50 -o json"
    )]
    Logs(LogsArgs),

    /// Explain why an override is not Ready, and how to fix it
    #[command(visible_aliases = ["why", "doctor"], after_help = "Examples:\n  kubectl mpo explain echo\n  kubectl mpo why echo --tag pr333   # before creating an override")]
    Explain(ExplainArgs),

    /// Compare the deployed digest with the registry's (and the image contents)
    #[command(after_help = "Examples:\n  kubectl mpo diff echo\n  kubectl mpo diff echo --content")]
    Diff(DiffArgs),

    /// Browse the module registry with the ModuleSource's credentials
    #[command(
        visible_alias = "reg",
        subcommand,
        after_help = "Examples:\n  kubectl mpo registry tags echo\n  kubectl mpo registry cat echo:pr333 images_digests.json\n  kubectl mpo reg releases echo"
    )]
    Registry(RegistryCommand),

    /// List the tags the plugin set on an override (kept in an annotation, last 10)
    #[command(
        after_help = "Examples:\n  kubectl mpo history echo\n  kubectl mpo history echo -o json"
    )]
    History(HistoryArgs),

    /// Set an override's earlier tag back (the previous one, or --to-revision N)
    #[command(
        after_help = "Examples:\n  kubectl mpo undo echo\n  kubectl mpo undo echo --to-revision 2 --wait"
    )]
    Undo(UndoArgs),

    /// Print a shell completion script, or install the helper kubectl uses
    #[command(
        after_help = "Examples:\n  source <(kubectl mpo completion bash)      # completes kubectl-mpo ...\n  kubectl mpo completion zsh > \"${fpath[1]}/_kubectl-mpo\"\n  kubectl mpo completion --install-helper   # completes kubectl mpo ... (with kubectl's completion loaded)"
    )]
    Completion(CompletionArgs),

    /// Print the plugin's version and the cluster's: Kubernetes, Deckhouse and its controller generation
    #[command(
        after_help = "Examples:\n  kubectl mpo version\n  kubectl mpo version --client\n  kubectl mpo version -o json"
    )]
    Version(VersionArgs),
}

pub use crate::app::overrides::DryRun;
pub use crate::output::ObjectFormat;

/// `-o` for `status`: the objects, their names, the table with more columns, or
/// kubectl's `jsonpath=TEMPLATE` and `custom-columns=SPEC` over the JSON rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFormat {
    Json,
    Yaml,
    Name,
    Wide,
    JsonPath(String),
    CustomColumns(String),
}

/// Parses `-o` of `status`, and offers its values to `--help` and completion.
#[derive(Debug, Clone, Copy)]
pub struct ListFormatParser;

impl clap::builder::TypedValueParser for ListFormatParser {
    type Value = ListFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ListFormat, clap::Error> {
        let invalid = |message: String| {
            let mut err = clap::Error::raw(clap::error::ErrorKind::InvalidValue, message + "\n");
            err = err.with_cmd(cmd);
            let _ = arg;
            err
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("-o must be text".into()))?;
        let with_value = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('='))
        };
        if let Some(template) = with_value("jsonpath").or_else(|| with_value("jsonpath-as-json")) {
            if template.is_empty() {
                return Err(invalid(
                    "-o jsonpath= needs a template, e.g. -o jsonpath='{.items[*].name}'".into(),
                ));
            }
            return Ok(ListFormat::JsonPath(template.to_string()));
        }
        if let Some(spec) = with_value("custom-columns") {
            if spec.is_empty() {
                return Err(invalid(
                    "-o custom-columns= needs columns, e.g. -o custom-columns=NAME:.name,TAG:.tag"
                        .into(),
                ));
            }
            return Ok(ListFormat::CustomColumns(spec.to_string()));
        }
        match text {
            "json" => Ok(ListFormat::Json),
            "yaml" => Ok(ListFormat::Yaml),
            "name" => Ok(ListFormat::Name),
            "wide" => Ok(ListFormat::Wide),
            other => Err(invalid(format!(
                "invalid value {other:?} for '--output <FORMAT>'\n  [possible values: json, yaml, name, wide, jsonpath=TEMPLATE, custom-columns=SPEC]"
            ))),
        }
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            [
                "json",
                "yaml",
                "name",
                "wide",
                "jsonpath=",
                "custom-columns=",
            ]
            .into_iter()
            .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// `-o` for `delete`: the names of what was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NameFormat {
    Name,
}

/// `-o` for reports that are not Kubernetes objects (explain, diff, version, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Yaml,
}

/// `-o` for registry listings: JSON, YAML, or one name per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NamesFormat {
    Json,
    Yaml,
    Name,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the controller reports the result
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub wait: bool,

    /// How long --wait waits (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// What --wait waits for: the module running (default) or only the override's Ready
    #[arg(long, value_enum, default_value = "module")]
    pub wait_for: WaitFor,
}

impl WaitArgs {
    /// The wait these flags ask for, `None` without `--wait`.
    pub fn plan(&self) -> Option<crate::app::wait::Plan> {
        self.wait.then_some(crate::app::wait::Plan {
            timeout: self.timeout,
            follow_module: self.wait_for == WaitFor::Module,
        })
    }
}

/// `--wait-for`: how far `--wait` follows a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The override's verdict only (Ready = installed).
    Override,
    /// The module runs (deckhouse-real §4 "Runs") or fails.
    Module,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// Keep printing new lines, across Deckhouse restarts
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Only lines newer than this (e.g. 10m, 1h)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub since: Option<Duration>,

    /// Only the last N matching lines
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,

    /// The least severe level shown
    #[arg(long, value_enum, default_value = "info")]
    pub level: crate::app::logs::Level,

    /// Output format (one JSON object per line)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<LogsFormat>,
}

/// `-o` for `logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogsFormat {
    Json,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Module name (the override is named after it)
    #[arg(allow_hyphen_values = true, value_parser = parse_module_name)]
    pub module: ModuleName,

    /// Image tag to run (picked interactively on a terminal when omitted)
    #[arg(long, short = 't', allow_hyphen_values = true, value_parser = parse_tag)]
    pub tag: Option<Tag>,

    /// How often the controller re-checks the tag (h/m/s, e.g. 15s, 1m30s)
    #[arg(
        long,
        default_value = "15s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = parse_scan_interval
    )]
    pub scan_interval: ScanInterval,

    /// On deletion, return to the last released version
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub rollback: bool,

    /// ModuleSource name (only for clusters that serve v1alpha1 only)
    #[arg(long, value_name = "NAME", value_parser = parse_source_name)]
    pub source: Option<ModuleName>,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// Create even if the checks say the override could not become Ready
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub force: bool,

    /// Name of the manager recorded for the fields this writes
    #[arg(long, value_name = "NAME", default_value = "kubectl-mpo")]
    pub field_manager: String,
    /// Do not read the image (settings schema, requirements, stage): one registry request less
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub skip_image_checks: bool,

    /// Print the object (client) or have the API server validate it (server) without persisting
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ObjectFormat>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// New image tag
    #[arg(long, short = 't', allow_hyphen_values = true, value_parser = parse_tag)]
    pub tag: Option<Tag>,

    /// New scan interval (h/m/s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_scan_interval)]
    pub scan_interval: Option<ScanInterval>,

    /// New rollback setting
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_bool)]
    pub rollback: Option<bool>,

    /// Change the tag even if the checks say the override could not become Ready with it,
    /// or the image's own checks fail (settings schema, requirements, stage)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub force: bool,

    /// Name of the manager recorded for the fields this writes
    #[arg(long, value_name = "NAME", default_value = "kubectl-mpo")]
    pub field_manager: String,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// Print the result (client) or validate it on the server without persisting
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ObjectFormat>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ReportFormat>,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// The revision to set back (see kubectl mpo history); default: the one before the current
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u32>,

    /// Set it back even if the image checks fail
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub force: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Modules to renew (or --all)
    #[arg(value_parser = parse_module_name)]
    pub modules: Vec<ModuleName>,

    /// Renew every override
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub all: bool,

    /// Renew even if the registry's new image fails the image checks
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub force: bool,

    /// Only wake the controller for a re-check: never force a redeploy (gen D)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub check_only: bool,

    /// Redeploy several unchanged images without asking (gen D restarts Deckhouse for each)
    #[arg(short = 'y', long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub yes: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Modules whose overrides to delete (or --all)
    #[arg(value_parser = parse_module_name)]
    pub modules: Vec<ModuleName>,

    /// Delete every override
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub all: bool,

    /// Treat an override that does not exist as deleted (exit 0)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub ignore_not_found: bool,

    /// Only say what would be deleted (client), or have the API server check it (server)
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Output format: name prints modulepulloverride.deckhouse.io/NAME per deleted override
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<NameFormat>,

    /// Return to the last released version (sets spec.rollback before deleting)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub rollback: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y', value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub yes: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Modules to show (default: all overrides)
    #[arg(value_parser = parse_module_name)]
    pub modules: Vec<ModuleName>,

    /// Output format; jsonpath and custom-columns take kubectl's syntax over the rows of -o json
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ListFormatParser)]
    pub output: Option<ListFormat>,

    /// Only overrides with these labels (kubectl's selector: key=value,key!=value,key)
    #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "modules")]
    pub selector: Option<String>,

    /// Add a LABELS column
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub show_labels: bool,

    /// Print the table without its header line
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub no_headers: bool,

    /// Sort the rows by a JSONPath over the rows of -o json (e.g. .tag, {.updatedAt})
    #[arg(long, value_name = "JSONPATH")]
    pub sort_by: Option<String>,

    /// Redraw the table as overrides change (with -o json|yaml: print each changed row)
    #[arg(long, short = 'w', value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub watch: bool,

    /// Do not contact the registry
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub offline: bool,

    /// Time limit for each registry lookup
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub registry_timeout: Duration,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// Tag to check when no override exists yet
    #[arg(long, short = 't', allow_hyphen_values = true, value_parser = parse_tag)]
    pub tag: Option<Tag>,

    /// Do not contact the registry
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub offline: bool,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ReportFormat>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,

    /// Pull both images and compare their files
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub content: bool,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,

    #[command(flatten)]
    pub limits: ImageLimitArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ReportFormat>,
}

/// Registry access for users who may not read ModuleSources (RBAC): the repo is given
/// explicitly and the credentials come from a docker config.json.
#[derive(Debug, Clone, Args, Default)]
pub struct RegistryFallbackArgs {
    /// When ModuleSources are not readable: the module repo, [http://]HOST[:PORT]/PATH
    #[arg(long, value_name = "REPO", global = true)]
    pub registry_repo: Option<String>,

    /// Docker config.json with credentials for --registry-repo
    /// (default: $DOCKER_CONFIG/config.json, then ~/.docker/config.json)
    #[arg(long, value_name = "PATH", global = true)]
    pub registry_config: Option<PathBuf>,

    /// PEM file with the CA of --registry-repo (added to the system roots)
    #[arg(long, value_name = "PATH", global = true)]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryFallbackArgs {
    pub fn spec(&self) -> crate::app::sources::FallbackSpec {
        crate::app::sources::FallbackSpec {
            registry_repo: self.registry_repo.clone(),
            registry_config: self.registry_config.clone(),
            registry_ca: self.registry_ca.clone(),
        }
    }
}

/// Caps on image reads: a hostile or broken image ends with an error naming the flag,
/// never with an exhausted machine. The defaults are `ImageLimits::default()`.
#[derive(Debug, Clone, Args)]
pub struct ImageLimitArgs {
    /// Largest decompressed size of one image layer (e.g. 512Mi, 2Gi)
    #[arg(long, value_name = "SIZE", default_value = "512Mi", value_parser = crate::validate::byte_size)]
    pub max_layer_size: u64,

    /// Largest decompressed size of a whole image, all layers together
    #[arg(long, value_name = "SIZE", default_value = "1Gi", value_parser = crate::validate::byte_size)]
    pub max_image_size: u64,

    /// Most entries (files, directories, links) in one image
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files: u64,

    /// Largest file read into memory: the file `registry cat` prints, a file `diff --content` shows
    #[arg(long, value_name = "SIZE", default_value = "16Mi", value_parser = crate::validate::byte_size)]
    pub max_file_size: u64,

    /// Time limit for reading a whole image (manifests and all layers)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub pull_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// ModuleSource to use (default: the module's source, or the only ModuleSource)
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_source_name)]
    pub source: Option<ModuleName>,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// List the modules in the source's registry
    #[command(
        after_help = "Examples:\n  kubectl mpo registry modules\n  kubectl mpo registry modules --source test -o name"
    )]
    Modules(RegistryModulesArgs),
    /// List a module's tags (module images; --all adds app-image tags)
    #[command(
        after_help = "Examples:\n  kubectl mpo registry tags echo\n  kubectl mpo reg tags echo --all -o json\n  # without ModuleSource access:\n  kubectl mpo registry tags echo --registry-repo registry.example.com/modules"
    )]
    Tags(RegistryTagsArgs),
    /// List the files of a module image
    #[command(
        after_help = "Examples:\n  kubectl mpo registry files echo            # the override's tag\n  kubectl mpo registry files echo:pr333 -o name"
    )]
    Files(RegistryImageArgs),
    /// Print one file of a module image
    #[command(
        after_help = "Examples:\n  kubectl mpo registry cat echo:pr333 values.yaml\n  kubectl mpo registry cat echo:v1.0.0 version.json"
    )]
    Cat(RegistryCatArgs),
    /// Show images_digests.json of a module image
    #[command(
        after_help = "Examples:\n  kubectl mpo registry images echo:main-patch-03354\n  kubectl mpo registry images echo -o json"
    )]
    Images(RegistryImageArgs),
    /// List release tags and the version each channel points to
    #[command(
        after_help = "Examples:\n  kubectl mpo registry releases echo\n  kubectl mpo registry releases echo -o yaml"
    )]
    Releases(RegistryModuleArgs),
}

#[derive(Debug, Args)]
pub struct RegistryModulesArgs {
    #[command(flatten)]
    pub common: RegistryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<NamesFormat>,
}

#[derive(Debug, Args)]
pub struct RegistryModuleArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,
    #[command(flatten)]
    pub common: RegistryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<NamesFormat>,
}

#[derive(Debug, Args)]
pub struct RegistryTagsArgs {
    /// Module name
    #[arg(value_parser = parse_module_name)]
    pub module: ModuleName,
    /// Include application-image (hash) tags
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub all: bool,
    /// Order: newest first (created) or by name
    #[arg(long, value_enum, default_value = "created")]
    pub sort: TagSort,
    /// Only tags matching this regular expression
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub include: Option<regex::Regex>,
    #[command(flatten)]
    pub common: RegistryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<TagsFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TagSort {
    Created,
    Name,
}

/// `-o` for `registry tags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TagsFormat {
    Json,
    Yaml,
    Name,
    Wide,
}

fn parse_regex(text: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(text).map_err(|err| format!("not a regular expression: {err}"))
}

#[derive(Debug, Args)]
pub struct RegistryImageArgs {
    /// MODULE, MODULE:TAG or MODULE@sha256:DIGEST (default: the override's tag)
    #[arg(value_parser = parse_image_arg)]
    pub image: ImageArg,
    #[command(flatten)]
    pub common: RegistryArgs,
    #[command(flatten)]
    pub limits: ImageLimitArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<NamesFormat>,
}

#[derive(Debug, Args)]
pub struct RegistryCatArgs {
    /// MODULE, MODULE:TAG or MODULE@sha256:DIGEST
    #[arg(value_parser = parse_image_arg)]
    pub image: ImageArg,
    /// Path inside the image
    pub path: String,
    /// Write the file's bytes as they are, even to a terminal (by default control
    /// characters are shown escaped there)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub raw: bool,
    #[command(flatten)]
    pub common: RegistryArgs,
    #[command(flatten)]
    pub limits: ImageLimitArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// Shell to generate the script for
    #[arg(value_enum, required_unless_present = "install_helper")]
    pub shell: Option<Shell>,

    /// Put the kubectl_complete-mpo helper next to kubectl-mpo on PATH, so that
    /// `kubectl mpo <TAB>` completes (kubectl runs it; krew cannot put it there)
    #[arg(long, conflicts_with = "shell", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub install_helper: bool,

    /// Directory for --install-helper (default: the directory of kubectl-mpo on PATH)
    #[arg(long, value_name = "DIR", requires = "install_helper")]
    pub helper_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ReportFormat>,
    /// Only the plugin's own version: do not ask the cluster
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, hide_default_value = true, hide_possible_values = true, action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub client: bool,
}

impl From<&ImageLimitArgs> for crate::registry::ImageLimits {
    fn from(args: &ImageLimitArgs) -> Self {
        crate::registry::ImageLimits {
            max_layer_bytes: args.max_layer_size,
            max_image_bytes: args.max_image_size,
            max_entries: args.max_files,
            max_file_bytes: args.max_file_size,
            timeout: args.pull_timeout,
        }
    }
}

/// kubectl's verbosity forms, `-v=6`, `--v=6`, `-v 6`, `--v 6` and `--verbose=6`,
/// become six `-v` (clap counts them); `-v`, `-vv`... stay as they are. Words after
/// `--` are left alone.
pub fn kubectl_verbosity(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter().peekable();
    let level = |text: &str| text.parse::<u8>().ok().filter(|n| *n <= 10);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let joined = ["-v=", "--v=", "--verbose="]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix));
        let n = match joined {
            Some(value) => level(value),
            None if text == "-v" || text == "--v" => {
                match args.peek().and_then(|next| level(&next.to_string_lossy())) {
                    Some(n) => {
                        args.next();
                        Some(n)
                    }
                    None if text == "--v" => Some(1),
                    None => None,
                }
            }
            None => None,
        };
        match n {
            Some(n) => out.extend((0..n).map(|_| std::ffi::OsString::from("-v"))),
            None => out.push(arg),
        }
    }
    out
}

/// A positive duration (`--timeout`, `--registry-timeout`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    validate::duration(text, false).map_err(shown)
}

/// A boolean flag's value, as kubectl (Go's strconv.ParseBool) reads it: `--wait`,
/// `--wait=true`, `--wait=1`, `--wait=false`, `--wait=F`...
fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {text:?}; use true or false")),
    }
}

/// `--request-timeout`: a duration, bare seconds as kubectl accepts, or 0 for none.
fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    validate::duration(text, true).map_err(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_are_typed_at_parse_time() {
        let cli = Cli::try_parse_from([
            "kubectl-mpo",
            "create",
            "echo",
            "--tag",
            "v1",
            "--timeout",
            "90s",
        ])
        .expect("parses");
        let Command::Create(args) = cli.command else {
            panic!("create expected");
        };
        assert_eq!(&*args.module, "echo");
        assert_eq!(args.wait.timeout, Duration::from_secs(90));
        assert_eq!(args.scan_interval.text, "15s");
        for bad in [
            vec!["kubectl-mpo", "create", "Echo", "--tag", "v1"],
            vec!["kubectl-mpo", "create", "echo", "--tag", ".v1"],
            vec![
                "kubectl-mpo",
                "create",
                "echo",
                "--tag",
                "v1",
                "--timeout",
                "soon",
            ],
            vec!["kubectl-mpo", "status", "--request-timeout", "-1s"],
            vec!["kubectl-mpo", "explain", "echo", "-o", "wide"],
            vec!["kubectl-mpo", "registry", "files", "echo:.bad"],
        ] {
            let err = Cli::try_parse_from(&bad).expect_err(&bad.join(" "));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn images_are_named_by_tag_or_by_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let image = parse_image_arg(&format!("echo@{digest}")).expect("a digest");
        assert_eq!(
            (image.tag.clone(), image.reference()),
            (None, Some(digest.clone()))
        );
        let image = parse_image_arg("echo:v1").expect("a tag");
        assert_eq!(image.reference().as_deref(), Some("v1"));
        assert_eq!(parse_image_arg("echo").expect("bare").reference(), None);
        for bad in [
            "echo@sha256:xyz".to_string(),
            format!("echo@sha512:{}", "ab".repeat(32)),
            format!("echo@sha256:{}", "AB".repeat(32)),
            format!("Echo@{digest}"),
        ] {
            assert!(parse_image_arg(&bad).is_err(), "{bad}");
        }
        let cli = Cli::parse_args([
            "kubectl-mpo",
            "registry",
            "files",
            &format!("echo@{digest}"),
        ]);
        assert!(cli.is_ok(), "{cli:?}");
    }

    #[test]
    fn all_false_names_no_override() {
        for command in ["renew", "delete"] {
            let err = Cli::parse_args(["kubectl-mpo", command, "--all=false"])
                .expect_err("--all=false alone names nothing");
            assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("--all=false names none"), "{err}");
            let err = Cli::parse_args(["kubectl-mpo", command, "echo", "--all"])
                .expect_err("names and --all");
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
            for fine in [
                &["--all"][..],
                &["--all=true"],
                &["echo"],
                &["echo", "--all=false"],
            ] {
                let args = ["kubectl-mpo", command]
                    .into_iter()
                    .chain(fine.iter().copied());
                assert!(Cli::parse_args(args).is_ok(), "{command} {fine:?}");
            }
        }
    }

    #[test]
    fn each_command_offers_only_the_formats_it_prints() {
        let help = |path: &[&str]| {
            let mut command = Cli::command();
            let mut current = &mut command;
            for name in path {
                current = current.find_subcommand_mut(name).expect("subcommand");
            }
            current.render_long_help().to_string()
        };
        assert!(help(&["status"]).contains("wide"));
        assert!(!help(&["explain"]).contains("wide"));
        assert!(!help(&["explain"]).contains("[possible values: json, yaml, name"));
        assert!(!help(&["registry", "cat"]).contains("--output"));
    }

    #[test]
    fn kubectl_verbosity_forms_are_counted() {
        let level = |args: &[&str]| {
            let args = std::iter::once("kubectl-mpo")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from);
            Cli::try_parse_from(kubectl_verbosity(args))
                .expect("parses")
                .global
                .verbose
        };
        assert_eq!(level(&["status", "-v=6"]), 6);
        assert_eq!(level(&["--v=8", "status"]), 8);
        assert_eq!(level(&["status", "-v", "6", "echo"]), 6);
        assert_eq!(level(&["status", "--v", "7"]), 7);
        assert_eq!(level(&["status", "-vv"]), 2);
        assert_eq!(level(&["status", "-v", "echo"]), 1);
        assert_eq!(level(&["status", "--verbose=3"]), 3);
    }

    #[test]
    fn request_timeout_takes_bare_seconds_and_zero() {
        let cli = Cli::try_parse_from(["kubectl-mpo", "status", "--request-timeout", "5"])
            .expect("parses");
        assert_eq!(cli.global.request_timeout, Duration::from_secs(5));
        let cli = Cli::try_parse_from(["kubectl-mpo", "status", "--request-timeout", "0"])
            .expect("parses");
        assert_eq!(cli.global.request_timeout, Duration::ZERO);
    }

    #[test]
    fn every_command_has_examples() {
        let mut all = vec![Cli::command()];
        while let Some(command) = all.pop() {
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.split_once("Examples:\n")
                    .is_some_and(|(_, examples)| examples.contains("kubectl mpo ")),
                "{} has no examples",
                command.get_name()
            );
            all.extend(command.get_subcommands().cloned());
        }
    }

    fn limits_of(args: &[&str]) -> crate::registry::ImageLimits {
        let cli = Cli::try_parse_from(args).expect("parses");
        let Command::Registry(RegistryCommand::Files(files)) = cli.command else {
            panic!("registry files expected");
        };
        (&files.limits).into()
    }

    #[test]
    fn image_cap_flags_default_to_the_library_defaults_and_raise_them() {
        use crate::registry::ImageLimits;
        assert_eq!(
            limits_of(&["kubectl-mpo", "registry", "files", "echo"]),
            ImageLimits::default()
        );
        let raised = limits_of(&[
            "kubectl-mpo",
            "registry",
            "files",
            "echo",
            "--max-layer-size",
            "2Gi",
            "--max-image-size",
            "4Gi",
            "--max-files",
            "200000",
            "--max-file-size",
            "64Mi",
            "--pull-timeout",
            "10m",
        ]);
        assert_eq!(
            raised,
            ImageLimits {
                max_layer_bytes: 2 << 30,
                max_image_bytes: 4 << 30,
                max_entries: 200_000,
                max_file_bytes: 64 << 20,
                timeout: Duration::from_secs(600),
            }
        );
    }
}

/// Every `kubectl mpo …` command the code can print (hints, fixes, notes, examples) is
/// one the command tree accepts: a hint never names a command or flag that does not
/// exist. The commands are read from the sources, with their `{placeholders}` and
/// upper-case placeholders (TAG, MODULE) filled with valid values.
#[cfg(test)]
mod printed_commands {
    use super::Cli;
    use clap::Parser;

    fn fill(word: &str) -> String {
        if word == "{revision}" {
            return "1".into();
        }
        if word.starts_with('{') {
            return "echo".into();
        }
        // `modules{flags}`: the placeholder adds flags checked elsewhere.
        if let Some((before, _)) = word.split_once('{') {
            return before.to_string();
        }
        match word {
            "TAG" | "T" | "<tag>" => "v1".into(),
            "MODULE" | "NAME" | "MODULES..." | "MODULE..." => "echo".into(),
            "HOST/PATH" | "REPO" => "reg.example/modules".into(),
            "DURATION" => "1m".into(),
            "PATH" => "/tmp/x".into(),
            other => other.to_string(),
        }
    }

    /// The commands printed in one source file: the text after `kubectl mpo ` in a
    /// string literal, up to the literal's end, a comment (`#`) or prose.
    fn commands_in(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for piece in line.split("kubectl mpo ").skip(1) {
                let piece = piece.split("\\n").next().unwrap_or_default();
                let end = piece
                    .find(['"', '#', '`', ';', '(', ')'])
                    .unwrap_or(piece.len());
                let command = piece[..end]
                    .split(" > ")
                    .next()
                    .unwrap_or_default()
                    .split(" shows ")
                    .next()
                    .unwrap_or_default()
                    .split(" or ")
                    .next()
                    .unwrap_or_default()
                    .split(", ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches(['.', ',', ':']);
                if command.is_empty() || command.contains("...") && command.contains(" | ") {
                    continue;
                }
                out.push(command.to_string());
            }
        }
        out
    }

    #[test]
    fn every_printed_command_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root];
        let mut failures = Vec::new();
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(
                    std::fs::read_dir(&path)
                        .expect("src")
                        .map(|e| e.expect("entry").path()),
                );
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            // Tests print what they like.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for command in commands_in(text) {
                let words: Vec<String> = std::iter::once("kubectl-mpo".to_string())
                    .chain(
                        command
                            .split_whitespace()
                            .filter(|w| *w != "[OPTIONS]")
                            .map(fill),
                    )
                    .collect();
                checked += 1;
                if let Err(err) = Cli::try_parse_from(&words)
                    && err.kind() != clap::error::ErrorKind::DisplayHelp
                {
                    failures.push(format!(
                        "{}: kubectl mpo {command}: {}",
                        path.display(),
                        err.kind()
                    ));
                }
            }
        }
        assert!(checked > 40, "only {checked} commands found");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
