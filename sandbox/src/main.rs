//! `mpo-sandbox`: seeding, the Deckhouse controller simulator and the registry token
//! service of the local sandbox.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mpo-sandbox", about = "kubectl-mpo test sandbox tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
