//! The hsm-demo binary: parse, run, print `error: <one line>` on failure. Every exit status is
//! decided here, the same for every command (the table is `hsm_demo::cli::EXIT_STATUS`): 0
//! success; 1 failure; 2 usage (clap's errors, and the command's own checks of its flags, files
//! and configuration before it did anything: `Error::Usage`, `Error::Input`, `Error::Config`,
//! `Error::Uri`); 3 `pca expiring --fail-if-any` found certificates; 130 interrupted. The one
//! exception is a second Ctrl-C during `provision --manifest`, which ends the process at once
//! (see `src/cli/provision.rs`).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::FromArgMatches;

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(Parse::Clap(e)) => return usage_error(&e),
        Err(Parse::Config(e)) => {
            eprintln!("error: {}", e.one_line());
            return ExitCode::from(2);
        }
    };
    init_logging(&cli.global);
    match hsm_demo::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(hsm_demo::Error::Interrupted) => ExitCode::from(130),
        Err(e @ hsm_demo::Error::ExpiringFound(_)) => {
            eprintln!("{}", e.one_line());
            ExitCode::from(3)
        }
        Err(
            e @ (hsm_demo::Error::Usage(_)
            | hsm_demo::Error::Input(_)
            | hsm_demo::Error::Config(_)
            | hsm_demo::Error::Uri(_)),
        ) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr when asked for: `-v` (debug), `-vv` (trace), or a `RUST_LOG` filter (which
/// also overrides the level of `-v`), as text or, with `--log-format json`, one JSON object per line.
fn init_logging(g: &hsm_demo::cli::Global) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    if g.verbose == 0 && rust_log.is_none() {
        return;
    }
    let level = if g.verbose > 1 { "trace" } else { "debug" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("hsm_demo={level}")));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    match g.log_format {
        hsm_demo::cli::LogFormat::Json => builder.json().with_current_span(false).init(),
        hsm_demo::cli::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

enum Parse {
    Clap(clap::Error),
    Config(hsm_demo::Error),
}

/// Parses the command line with the configuration file's values as the defaults of the matching
/// flags (so flags and environment variables keep precedence over the file).
fn parse() -> Result<hsm_demo::cli::Cli, Parse> {
    use hsm_demo::config;
    let args: Vec<OsString> = std::env::args_os().collect();
    let explicit = config_flag(&args);
    let mut file = match config::locate(explicit.as_deref()) {
        Some((p, origin)) => Some(config::load(&p, origin).map_err(Parse::Config)?),
        None => None,
    };
    let mut cmd = hsm_demo::cli::command();
    if let Some(f) = &mut file {
        config::export_sdk_keys(f);
        cmd = config::apply_defaults(cmd, f);
    }
    let matches = cmd.try_get_matches_from(args).map_err(Parse::Clap)?;
    let mut cli = hsm_demo::cli::Cli::from_arg_matches(&matches).map_err(Parse::Clap)?;
    for id in ["module", "token"] {
        if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
            if let Some(v) = matches.get_raw(id).and_then(|mut v| v.next()) {
                cli.global
                    .config_flags
                    .insert(id, v.to_string_lossy().into_owned());
            }
        }
    }
    cli.global.config = file;
    Ok(cli)
}

/// The value of `--config` given before the command, if any (after the command, `--config`
/// belongs to the command: `key-ceremony --config` is the ceremony's file).
fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
        match a.as_ref() {
            "--module" | "--token" | "--pin-file" => {
                it.next();
            }
            "--" => return None,
            _ if a.starts_with('-') => {}
            _ => return None,
        }
    }
    None
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
    let mut cmd = hsm_demo::cli::command();
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
