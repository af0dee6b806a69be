//! The hsm-demo binary: parse, run, print `error: <one line>` on failure. Every exit status is
//! decided here: 0 success, 1 failure, 2 usage error (clap's, or a manifest/usage error a command
//! found before doing anything), 3 `pca expiring --fail-if-any` found certificates, 130
//! interrupted. The one exception is a second Ctrl-C during `provision --manifest`, which ends
//! the process at once (see `src/cli/provision.rs`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = match hsm_demo::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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
        Err(hsm_demo::Error::Interrupted) => ExitCode::from(130),
        Err(e @ hsm_demo::Error::ExpiringFound(_)) => {
            eprintln!("{}", e.one_line());
            ExitCode::from(3)
        }
        Err(e @ hsm_demo::Error::Usage(_)) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(1)
        }
    }
}

/// A clap error: help and version print as clap prints them; anything else is one `error:` line
/// (clap's first line, plus its suggestion) and a `--help` hint naming the subcommand, exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    let (path, cmd) = command_path();
    let mut line = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let subs: Vec<&str> = cmd.get_subcommands().map(clap::Command::get_name).collect();
            format!("'{path}' needs a command: {}", subs.join(", "))
        }
        ErrorKind::MissingRequiredArgument => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(args)) => {
                format!("missing required arguments: {}", args.join(", "))
            }
            _ => "missing required arguments".to_string(),
        },
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid command line");
            first
                .strip_prefix("error: ")
                .unwrap_or(first)
                .trim()
                .to_string()
        }
    };
    for kind in [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ] {
        let suggestion = match e.get(kind) {
            Some(ContextValue::String(s)) => s.clone(),
            Some(ContextValue::Strings(v)) if !v.is_empty() => v.join("', '"),
            _ => continue,
        };
        line.push_str(&format!(" (did you mean '{suggestion}'?)"));
        break;
    }
    eprintln!("error: {line}");
    eprintln!("For more information, try '{path} --help'.");
    ExitCode::from(2)
}

/// `hsm-demo` followed by the subcommands named on the command line (`hsm-demo pca issue`), and
/// the last of them.
fn command_path() -> (String, clap::Command) {
    let mut cmd = hsm_demo::cli::Cli::command();
    let mut path = vec![cmd.get_name().to_string()];
    for arg in std::env::args().skip(1) {
        let Some(sub) = cmd.find_subcommand(&arg).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    (path.join(" "), cmd)
}
