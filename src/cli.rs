//! Command-line definitions. kubectl does not parse a plugin's flags, so the global
//! kubeconfig flags are declared here and accepted before or after the subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mpo",
    bin_name = "kubectl mpo",
    version,
    about = "Work with Deckhouse ModulePullOverrides: run a module build from a registry tag, \
             see whether the cluster runs it, and learn why not",
    propagate_version = true,
    disable_help_subcommand = true,
    after_help = "Examples:\n  kubectl mpo create echo --tag main-patch-03354 --wait\n  kubectl mpo status\n  kubectl mpo explain echo\n  kubectl mpo renew echo --wait\n  kubectl mpo diff echo --content"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args, Default)]
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

    /// Time to wait for a single API request (e.g. 10s, 1m; 0 means no limit)
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s")]
    pub request_timeout: String,

    /// Disable colour (also: NO_COLOR=1)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// More detail on errors and progress (repeat for more)
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
        after_help = "Examples:\n  kubectl mpo edit echo --tag v1.0.0\n  kubectl mpo edit echo --rollback=true\n  kubectl mpo edit echo            # opens $KUBE_EDITOR/$EDITOR on a terminal"
    )]
    Edit(EditArgs),

    /// Force an immediate re-check (and redeploy on newer controllers)
    #[command(after_help = "Examples:\n  kubectl mpo renew echo --wait\n  kubectl mpo renew --all")]
    Renew(RenewArgs),

    /// Delete an override
    #[command(
        after_help = "Examples:\n  kubectl mpo delete echo\n  kubectl mpo delete echo --rollback --yes"
    )]
    Delete(DeleteArgs),

    /// Show overrides with the cluster's and the registry's digest
    #[command(
        after_help = "Examples:\n  kubectl mpo status\n  kubectl mpo status echo -o wide\n  kubectl mpo status --offline -o json"
    )]
    Status(StatusArgs),

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

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  source <(kubectl mpo completion bash)\n  kubectl mpo completion zsh > \"${fpath[1]}/_kubectl-mpo\""
    )]
    Completion(CompletionArgs),

    /// Print the version
    #[command(after_help = "Examples:\n  kubectl mpo version\n  kubectl mpo version -o json")]
    Version(VersionArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
    Name,
    Wide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the controller reports the result
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "3m")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Module name (the override is named after it)
    #[arg(allow_hyphen_values = true)]
    pub module: String,

    /// Image tag to run (picked interactively on a terminal when omitted)
    #[arg(long, short = 't', allow_hyphen_values = true)]
    pub tag: Option<String>,

    /// How often the controller re-checks the tag (h/m/s, e.g. 15s, 1m30s)
    #[arg(
        long,
        default_value = "15s",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub scan_interval: String,

    /// On deletion, return to the last released version
    #[arg(long)]
    pub rollback: bool,

    /// ModuleSource name (only for clusters that serve v1alpha1 only)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// Create even if the checks say the override could not become Ready
    #[arg(long)]
    pub force: bool,

    /// Print the object (client) or have the API server validate it (server) without persisting
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// Module name
    pub module: String,

    /// New image tag
    #[arg(long, short = 't', allow_hyphen_values = true)]
    pub tag: Option<String>,

    /// New scan interval (h/m/s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub scan_interval: Option<String>,

    /// New rollback setting
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub rollback: Option<bool>,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// Print the result (client) or validate it on the server without persisting
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Modules to renew
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub modules: Vec<String>,

    /// Renew every override
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Module name
    pub module: String,

    /// Return to the last released version (sets spec.rollback before deleting)
    #[arg(long)]
    pub rollback: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Modules to show (default: all overrides)
    pub modules: Vec<String>,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,

    /// Keep the table updated as overrides change
    #[arg(long, short = 'w')]
    pub watch: bool,

    /// Do not contact the registry
    #[arg(long)]
    pub offline: bool,

    /// Time limit for each registry lookup
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub registry_timeout: String,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Module name
    pub module: String,

    /// Tag to check when no override exists yet
    #[arg(long, short = 't', allow_hyphen_values = true)]
    pub tag: Option<String>,

    /// Do not contact the registry
    #[arg(long)]
    pub offline: bool,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Module name
    pub module: String,

    /// Pull both images and compare their files
    #[arg(long)]
    pub content: bool,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,

    #[command(flatten)]
    pub limits: ImageLimitArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
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
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub pull_timeout: String,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// ModuleSource to use (default: the module's source, or the only ModuleSource)
    #[arg(long, global = true, value_name = "NAME")]
    pub source: Option<String>,

    #[command(flatten)]
    pub fallback: RegistryFallbackArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, global = true)]
    pub output: Option<OutputFormat>,
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
        after_help = "Examples:\n  kubectl mpo registry tags echo\n  kubectl mpo reg tags echo --all -o json\n  kubectl mpo registry tags echo --registry-repo registry.example.com/modules   # without ModuleSource access"
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
}

#[derive(Debug, Args)]
pub struct RegistryModuleArgs {
    /// Module name
    pub module: String,
    #[command(flatten)]
    pub common: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RegistryTagsArgs {
    /// Module name
    pub module: String,
    /// Include application-image (hash) tags
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub common: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RegistryImageArgs {
    /// MODULE or MODULE:TAG (default tag: the override's tag)
    pub image: String,
    #[command(flatten)]
    pub common: RegistryArgs,
    #[command(flatten)]
    pub limits: ImageLimitArgs,
}

#[derive(Debug, Args)]
pub struct RegistryCatArgs {
    /// MODULE or MODULE:TAG
    pub image: String,
    /// Path inside the image
    pub path: String,
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
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}
