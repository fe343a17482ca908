//! `kubectl-mpo`: parse the command line, run the command, map the result to an exit code.

use std::process::ExitCode;

use kubectl_mpo::{app, cli, cmd, output};

fn main() -> ExitCode {
    // `kubectl-mpo __complete WORD...`: what the completion helper and scripts call.
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(first) if first == "__complete" => return cmd::complete::run(args.collect()),
        // `kubectl-mpo __man DIR`: the man pages of the release archives.
        Some(first) if first == "__man" => return cmd::man::run(args.collect()),
        _ => {}
    }
    let cli = match cli::Cli::parse_args(cli::kubectl_verbosity(std::env::args_os())) {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // clap quotes the value it refused as typed: control characters in it are
            // escaped, as in every other message, before they reach the terminal.
            let text = err.render().to_string();
            eprint!("{}", output::sanitize(&text, output::Layout::Block));
            return ExitCode::from(2);
        }
        Err(err) => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
    };
    // One process-wide TLS provider (ring) for every HTTPS client, chosen once here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let printer = output::Printer::new(cli.global.no_color, cli.global.verbose);
    output::set_trace(printer.clone());
    match cmd::run(cli, printer.clone()) {
        Ok(app::Outcome::Success) => ExitCode::SUCCESS,
        Ok(app::Outcome::ConditionFailed) => ExitCode::from(1),
        Ok(app::Outcome::Interrupted) => ExitCode::from(130),
        Err(err) => {
            printer.error(&err);
            ExitCode::from(err.kind.exit_code())
        }
    }
}
