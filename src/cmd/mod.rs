//! The commands, one module each with a single `run` entry point and its own render
//! functions. Commands use the shared services in `app/` and never each other.

pub mod complete;
mod completion;
mod create;
mod delete;
mod diff;
mod edit;
mod explain;
mod history;
mod logs;
pub mod man;
mod registry;
mod renew;
mod status;
mod undo;
pub mod version;

use crate::app::{Ctx, Outcome};
use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::Printer;

pub fn run(cli: Cli, printer: Printer) -> Result<Outcome> {
    let ctx = Ctx {
        connect: cli.global.connect_options(),
        printer,
    };
    // `version` needs no runtime: keep start-up minimal.
    if let Command::Version(args) = &cli.command {
        return version::run(&ctx, args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| Error::runtime(format!("cannot start the async runtime: {err}")))?;
    runtime.block_on(dispatch(ctx, cli.command))
}

async fn dispatch(ctx: Ctx, command: Command) -> Result<Outcome> {
    match command {
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Edit(args) => edit::run(&ctx, args).await,
        Command::Renew(args) => renew::run(&ctx, args).await,
        Command::Delete(args) => delete::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Explain(args) => explain::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Diff(args) => diff::run(&ctx, args).await,
        Command::Registry(args) => registry::run(&ctx, args).await,
        Command::History(args) => history::run(&ctx, args).await,
        Command::Undo(args) => undo::run(&ctx, args).await,
        Command::Completion(args) => completion::run(&ctx, args),
        Command::Version(args) => version::run(&ctx, &args),
    }
}
