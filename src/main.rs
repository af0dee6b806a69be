//! The hsm-demo binary: parse, run, print `error: <one line>` on failure (exit 1; usage errors 2).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hsm_demo::cli::Cli::parse();
    if cli.global.verbose > 0 {
        let level = if cli.global.verbose > 1 {
            "trace"
        } else {
            "debug"
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("hsm_demo={level}")));
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
    match hsm_demo::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(1)
        }
    }
}
