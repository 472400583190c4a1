//! The `leadroute` binary: parse the command line, set up logging, run the command,
//! map errors to an exit code.

use std::io::{IsTerminal as _, Write as _};

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = leadroute::cli::Cli::parse();
    let filter = EnvFilter::try_new(&cli.global.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: logs to files, cron and CI stay plain.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr closed) is dropped, not reported
        // with `eprintln!`, which would panic.
        .log_internal_errors(false)
        .init();
    match leadroute::cli::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of stdout has gone (`leadroute plan | head`): stop quietly.
        Err(err) if leadroute::cli::out::is_output_closed(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Never panic on a closed stderr.
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
