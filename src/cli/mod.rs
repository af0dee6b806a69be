//! The command line: global options, the command enum, and one file per command.
//!
//! Each command file exposes `pub struct Args` (clap) and `pub fn run(args: Args, g: &Global) ->
//! crate::Result<()>`. `src/main.rs` only parses, calls [`run`] and prints `error: <one line>`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::hsm::pin::PinSource;
use crate::hsm::session::ConnectOptions;

pub mod aws_args;
pub mod common;
pub mod completions;
pub mod config;
pub mod doctor;
pub mod export_pubkey;
pub mod generate_key;
pub mod issue_args;
pub mod key_ceremony;
pub mod key_ceremony_crl;
pub mod list_slots;
pub mod man;
pub mod pca;
pub mod provision;
pub mod renew;
pub mod sign;
pub mod verify;

/// Options every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// PKCS#11 module (.so) to load [default: the standard SoftHSM2 paths]
    #[arg(long, global = true, env = "HSM_DEMO_MODULE", value_name = "PATH")]
    pub module: Option<PathBuf>,

    /// Token to use, by label or serial [default: the single initialised token]
    #[arg(
        long,
        global = true,
        env = "HSM_DEMO_TOKEN",
        value_name = "LABEL|SERIAL"
    )]
    pub token: Option<String>,

    /// Read the user PIN from the first line of FILE (else HSM_DEMO_PIN, else a terminal prompt)
    #[arg(long, global = true, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,

    /// Print the result as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Log to stderr (-v debug, -vv trace; RUST_LOG=<filter> overrides the level); never logs the PIN
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log line format on stderr: text, or json (one object per line)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// The configuration file read for this run, if any (see [`crate::config`]).
    #[arg(skip)]
    pub config: Option<crate::config::ConfigFile>,

    /// Configuration keys given as flags on the command line (for `config show`).
    #[arg(skip)]
    pub config_flags: std::collections::BTreeMap<&'static str, String>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, message and the event's fields).
    Json,
}

impl Global {
    /// Module, token and PIN source from the global options.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            module: self.module.clone(),
            token: self.token.clone(),
            pin: PinSource::new(self.pin_file.clone()),
        }
    }
}

const MAIN_AFTER_HELP: &str = "\
Set-up (SoftHSM2 in a project-local directory, never the system one):
  export SOFTHSM2_CONF=$PWD/.run/softhsm2.conf   # directories.tokendir = $PWD/.tokens
  softhsm2-util --init-token --free --label demo --so-pin 12345678 --pin 123456
  export HSM_DEMO_PIN=123456

Examples:
  hsm-demo list-slots
  hsm-demo generate-key --label service-key
  hsm-demo sign --label service-key --data 'hello cert world'
  hsm-demo verify --label service-key --data 'hello cert world' --sig <HEX>
  hsm-demo export-pubkey --label service-key --out pub.pem

Environment: HSM_DEMO_MODULE, HSM_DEMO_TOKEN, HSM_DEMO_PIN (the PIN is never a flag).
Configuration file: --config FILE (before the command), HSM_DEMO_CONFIG, or
$XDG_CONFIG_HOME/hsm-demo/config.toml; `hsm-demo config show` prints every effective value and its
source (flag > environment > file > default).";

/// hsm-demo: keys that never leave a PKCS#11 HSM (SoftHSM2 in development).
#[derive(Debug, Parser)]
#[command(name = "hsm-demo", version, about, after_help = MAIN_AFTER_HELP)]
pub struct Cli {
    /// Configuration file (before the command) [default: HSM_DEMO_CONFIG, else $XDG_CONFIG_HOME/hsm-demo/config.toml when it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Global options.
    #[command(flatten)]
    pub global: Global,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List PKCS#11 slots and token info (and key objects with --objects)
    ListSlots(list_slots::Args),
    /// Generate an ECDSA key pair (P-256 or P-384) in the token
    GenerateKey(generate_key::Args),
    /// Sign data with an HSM-bound private key (SHA-256/384 + CKM_ECDSA, DER signature)
    Sign(sign::Args),
    /// Verify a signature with the token's public key or a PEM public key
    Verify(verify::Args),
    /// Export a public key from the token as PEM SubjectPublicKeyInfo
    ExportPubkey(export_pubkey::Args),
    /// Simulate the offline root CA key ceremony
    KeyCeremony(key_ceremony::Args),
    /// AWS Private CA: HSM-backed CSRs, idempotent issuance, the DynamoDB serial registry
    Pca(pca::Args),
    /// Provision one device end to end: HSM key, CSR, IssueCertificate, record, files
    Provision(provision::Args),
    /// Check every link a provisioning run needs: module, token, PIN, AWS credentials, endpoint, clock, CA, table
    Doctor(doctor::Args),
    /// Show the effective configuration: every key's value and where it comes from
    Config(config::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completions(completions::Args),
    /// Write one manual page per command into a directory
    Man(man::Args),
    /// Renew device certificates before they expire (one device, a manifest, or all)
    Renew(renew::Args),
}

/// The exit status of every command, printed at the end of every `--help` (and in the README).
pub const EXIT_STATUS: &str = "\
Exit status (every command):
  0    success
  1    failure: the command ran and did not do everything asked (provision/renew --manifest: some
       devices failed; verify: the signature does not verify; doctor: a check failed;
       verify-transcript: the transcript does not verify; pca audit-reconcile: discrepancies)
  2    usage: the command line, a file it names or the configuration is invalid; one line
       `error: ...` (plus a --help hint for a command-line error); nothing was done
  3    pca expiring --fail-if-any: some device is listed
  130  interrupted (Ctrl-C): rerun the same command to resume";

/// The clap definition with [`EXIT_STATUS`] after every command's help: the parser `main` uses,
/// and the source of the completion scripts and manual pages.
pub fn command() -> clap::Command {
    fn add(cmd: clap::Command) -> clap::Command {
        let text = match cmd.get_after_help() {
            Some(h) => format!("{h}\n\n{EXIT_STATUS}"),
            None => EXIT_STATUS.to_string(),
        };
        let mut cmd = cmd.after_help(text);
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        for sub in subs {
            cmd = cmd.mut_subcommand(sub, add);
        }
        cmd
    }
    add(<Cli as clap::CommandFactory>::command())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> crate::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::ListSlots(a) => list_slots::run(a, g),
        Command::GenerateKey(a) => generate_key::run(a, g),
        Command::Sign(a) => sign::run(a, g),
        Command::Verify(a) => verify::run(a, g),
        Command::ExportPubkey(a) => export_pubkey::run(a, g),
        Command::KeyCeremony(a) => key_ceremony::run(a, g),
        Command::Pca(a) => pca::run(a, g),
        Command::Provision(a) => provision::run(a, g),
        Command::Doctor(a) => doctor::run(a, g),
        Command::Config(a) => config::run(a, g),
        Command::Completions(a) => completions::run(a, g),
        Command::Man(a) => man::run(a, g),
        Command::Renew(a) => renew::run(a, g),
    }
}
