//! `mpo-sandbox`: seeding, the Deckhouse controller simulator and the registry token
//! service of the local sandbox.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mpo_sandbox::{State, hostile, kubelet, seed, simulator, token_server};

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
        /// ModulePullOverride versions to serve: v1alpha2 (current) or v1alpha1 (old
        /// cluster); implied by --generation when not given
        #[arg(long)]
        mpo_version: Option<String>,
        /// Controller generation (docs/deckhouse-real.md §1): A, B, C or D
        #[arg(long, default_value = "C")]
        generation: String,
        /// Which digest of a multi-arch tag the controller records: child or index (§3.1)
        #[arg(long, default_value = "child")]
        digest_rule: String,
    },
    /// Switch a running sandbox (MPO v1alpha2) to another controller generation in place:
    /// the simulator settings, the deckhouse Deployment's version and state.json.
    /// Restart the simulator afterwards (sandbox/scripts/set-generation.sh does both).
    SetGeneration {
        #[arg(long)]
        state: PathBuf,
        /// B, C or D (A serves MPO v1alpha1 only: a sandbox of its own)
        #[arg(long)]
        generation: String,
        /// child or index (§3.1)
        #[arg(long, default_value = "child")]
        digest_rule: String,
    },
    /// Run the Deckhouse controller simulator until killed.
    Simulate {
        #[arg(long)]
        state: PathBuf,
    },
    /// Serve registry Bearer tokens.
    TokenServer(token_server::Args),
    /// Serve container logs as a kubelet does, for the API server's pods/log.
    Kubelet(kubelet::Args),
    /// Serve the ModuleConfig validating admission webhook over HTTPS.
    Webhook(mpo_sandbox::webhook::Args),
    /// Plain HTTP in front of the plain-HTTP registry: wrong digest headers, 429/503
    /// with Retry-After (sandbox/src/registry_front.rs).
    RegistryFront(mpo_sandbox::registry_front::Args),
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
    /// Push the hostile images (gzip bomb, wrong size, wrong digest, 100k files, hostile
    /// names) to the tls registry as MODULE:<kind>, and try the hostile tags.
    PushHostile {
        #[arg(long)]
        state: PathBuf,
        #[arg(long, default_value = "hostile")]
        module: String,
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
            generation,
            digest_rule,
        } => {
            let generation = simulator::Generation::parse(&generation)
                .context("--generation must be A, B, C or D")?;
            anyhow::ensure!(
                matches!(digest_rule.as_str(), "child" | "index"),
                "--digest-rule must be child or index"
            );
            let mpo_version = mpo_version.unwrap_or_else(|| {
                if generation == simulator::Generation::A {
                    "v1alpha1"
                } else {
                    "v1alpha2"
                }
                .to_string()
            });
            let generation = if mpo_version == "v1alpha1" {
                simulator::Generation::A
            } else {
                generation
            };
            seed::run(
                &load(&state)?,
                &crds,
                &mpo_version,
                generation,
                &digest_rule,
            )
            .await
        }
        Command::SetGeneration {
            state,
            generation,
            digest_rule,
        } => {
            let generation = simulator::Generation::parse(&generation)
                .filter(|g| *g != simulator::Generation::A)
                .context("--generation must be B, C or D (gen A needs a sandbox of its own)")?;
            anyhow::ensure!(
                matches!(digest_rule.as_str(), "child" | "index"),
                "--digest-rule must be child or index"
            );
            seed::set_generation(&load(&state)?, generation, &digest_rule).await
        }
        Command::Simulate { state } => simulator::run(&load(&state)?).await,
        Command::TokenServer(args) => token_server::run(args).await,
        Command::Kubelet(args) => kubelet::run(args).await,
        Command::Webhook(args) => mpo_sandbox::webhook::run(args).await,
        Command::RegistryFront(args) => mpo_sandbox::registry_front::run(args).await,
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
            let digest = mpo_sandbox::fixtures::push_module_to(
                &load(&state)?,
                &registry,
                &module,
                &tag,
                &note,
            )
            .await?;
            println!("{digest}");
            Ok(())
        }
        Command::PushHostile { state, module } => {
            let state = load(&state)?;
            for kind in hostile::Kind::ALL {
                let pushed = hostile::push(&state, &module, kind.name(), kind).await?;
                println!("{module}:{} {}", kind.name(), pushed.digest);
            }
            for attempt in hostile::push_hostile_tags(&state, &module).await? {
                match attempt.refused {
                    None => println!("tag {:?}: accepted", attempt.tag),
                    Some(why) => println!("tag {:?}: refused: {why}", attempt.tag),
                }
            }
            Ok(())
        }
    }
}
