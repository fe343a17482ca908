//! `mpo-sandbox`: seeding, the Deckhouse controller simulator and the registry token
//! service of the local sandbox.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mpo_sandbox::image::{Layer, Pusher, module_files, push_app_image};
use mpo_sandbox::{State, seed, simulator, token_server};

#[derive(Parser)]
#[command(name = "mpo-sandbox", about = "kubectl-mpo test sandbox tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the CRDs, push the seed images and create the seed objects.
    Seed {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        crds: PathBuf,
        /// ModulePullOverride versions to serve: v1alpha2 (current) or v1alpha1 (old cluster)
        #[arg(long, default_value = "v1alpha2")]
        mpo_version: String,
    },
    /// Run the Deckhouse controller simulator until killed.
    Simulate {
        #[arg(long)]
        state: PathBuf,
    },
    /// Serve registry Bearer tokens.
    TokenServer(token_server::Args),
    /// Create COUNT modules with images and Ready overrides (bench-000...), for the benchmark.
    BenchSetup {
        #[arg(long)]
        state: PathBuf,
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Module names are PREFIX-000, PREFIX-001...
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// Modules and images only, no overrides (for timing `create --wait`).
        #[arg(long)]
        without_overrides: bool,
        /// How many modules get images of their own pushed through the registry API;
        /// the others share one image laid out in the registry's storage.
        #[arg(long, default_value_t = 200)]
        pushed: usize,
    },
    /// Push a big module image (about SIZE_MIB MiB of incompressible files in three
    /// layers) in two builds, with an override Ready on the first; prints the digests.
    BenchImage {
        #[arg(long)]
        state: PathBuf,
        #[arg(long, default_value = "bench-big")]
        module: String,
        #[arg(long, default_value_t = 300)]
        size_mib: usize,
    },
    /// Push a module image (standard module files plus a note) and print its digest.
    PushModule {
        #[arg(long)]
        state: PathBuf,
        /// Sandbox registry: tls, token or http.
        #[arg(long, default_value = "tls")]
        registry: String,
        #[arg(long)]
        module: String,
        #[arg(long)]
        tag: String,
        /// Text written into values.yaml, templates and docs so builds differ.
        #[arg(long, default_value = "custom build")]
        note: String,
    },
}

fn load(path: &std::path::Path) -> anyhow::Result<State> {
    let dir = path.parent().context("state path has no directory")?;
    State::load(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed {
            state,
            crds,
            mpo_version,
        } => seed::run(&load(&state)?, &crds, &mpo_version).await,
        Command::Simulate { state } => simulator::run(&load(&state)?).await,
        Command::TokenServer(args) => token_server::run(args).await,
        Command::BenchSetup {
            state,
            count,
            prefix,
            without_overrides,
            pushed,
        } => {
            let state = load(&state)?;
            mpo_sandbox::bench::modules(&state, &prefix, count, pushed, !without_overrides).await
        }
        Command::BenchImage {
            state,
            module,
            size_mib,
        } => mpo_sandbox::bench::big_image(&load(&state)?, &module, size_mib).await,
        Command::PushModule {
            state,
            registry,
            module,
            tag,
            note,
        } => {
            let state = load(&state)?;
            let pusher = Pusher::new(&state, &registry)?;
            let repository = format!("{}/{module}", seed::repo_path(&registry));
            // A new backend build per note; the frontend stays as seeded.
            let revision: String = note.chars().filter(char::is_ascii_alphanumeric).collect();
            let backend = push_app_image(&pusher, &repository, "backend", &revision).await?;
            let frontend = push_app_image(&pusher, &repository, "frontend", "r1").await?;
            let apps = [
                ("backend", backend.as_str()),
                ("frontend", frontend.as_str()),
            ];
            let files = module_files(&module, &tag, &apps, &note);
            let pushed = pusher
                .push_image(&repository, &tag, &[Layer::with_files(files)], "amd64")
                .await?;
            println!("{}", pushed.digest);
            Ok(())
        }
    }
}
