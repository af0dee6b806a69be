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
pub mod export_pubkey;
pub mod generate_key;
pub mod issue_args;
pub mod key_ceremony;
pub mod list_slots;
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

    /// Log to stderr (-v debug, -vv trace); never logs the PIN
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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

Environment: HSM_DEMO_MODULE, HSM_DEMO_TOKEN, HSM_DEMO_PIN (the PIN is never a flag).";

/// hsm-demo: keys that never leave a PKCS#11 HSM (SoftHSM2 in development).
#[derive(Debug, Parser)]
#[command(name = "hsm-demo", version, about, after_help = MAIN_AFTER_HELP)]
pub struct Cli {
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
    /// Renew device certificates before they expire (one device, a manifest, or all)
    Renew(renew::Args),
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
        Command::Renew(a) => renew::run(a, g),
    }
}
