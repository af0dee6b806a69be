//! `hsm-demo verify (--label L | --id HEX | --uri URI | --pubkey FILE.pem) --data … --sig HEX`

use std::path::PathBuf;

use crate::cli::common::{
    parse_hex, print_bytes, print_json, read_file, KeyArgs, MessageArgs, MAX_PUBKEY_FILE_BYTES,
    MAX_SIG_FILE_BYTES,
};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;
use crate::hsm::verify::{verify_with_pem, verify_with_token};

const AFTER_HELP: &str = "\
Examples:
  SIG=$(hsm-demo sign --label service-key --data 'hello cert world' | awk '/Signature:/ {print $2}')
  hsm-demo verify --label service-key --data 'hello cert world' --sig $SIG
  hsm-demo verify --label service-key --data 'tampered data' --sig $SIG    # exits 1
  hsm-demo verify --pubkey pub.pem --in msg.txt --sig-file sig.der         # no HSM at all

The public key is read from the token (CKA_EC_POINT) or from a PEM file and the ECDSA check runs
in software. Signatures may be DER ECDSA-Sig-Value or raw r||s.";

/// `verify` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Which key in the token.
    #[command(flatten)]
    pub key: KeyArgs,

    /// Verify with this PEM public key (SubjectPublicKeyInfo) instead of the token
    #[arg(long, value_name = "FILE.pem", conflicts_with_all = ["label", "id", "uri"])]
    pub pubkey: Option<PathBuf>,

    /// The message.
    #[command(flatten)]
    pub message: MessageArgs,

    /// The signature in hex (DER or raw r||s)
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "sig_file",
        conflicts_with = "sig_file"
    )]
    pub sig: Option<String>,

    /// Read the signature bytes (DER or raw r||s) from FILE
    #[arg(long, value_name = "FILE")]
    pub sig_file: Option<PathBuf>,
}

/// Runs `verify`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    let sig = match (&args.sig, &args.sig_file) {
        (Some(h), _) => parse_hex("--sig", h)?,
        (None, Some(p)) => read_file("signature file", p, MAX_SIG_FILE_BYTES)?,
        (None, None) => return Err(Error::input("give --sig HEX or --sig-file FILE")),
    };
    let (curve, source) = if let Some(p) = &args.pubkey {
        let pem_bytes = read_file("public key file", p, MAX_PUBKEY_FILE_BYTES)?;
        let pem_text = String::from_utf8(pem_bytes)
            .map_err(|_| Error::input(format!("{} is not a PEM text file", p.display())))?;
        let msg = args.message.read()?;
        (
            verify_with_pem(&pem_text, &msg, &sig)?,
            p.display().to_string(),
        )
    } else {
        let (spec, opts) = args.key.resolve(g)?;
        let msg = args.message.read()?;
        // Public keys are public objects: no login unless the key is not visible without one.
        let mut session = HsmSession::open(&opts)?;
        let curve = match verify_with_token(&session, &spec, &msg, &sig) {
            Err(Error::KeyNotFound { .. }) if opts.pin.available_without_prompt() => {
                session.login(&opts.pin)?;
                verify_with_token(&session, &spec, &msg, &sig)?
            }
            other => other?,
        };
        (curve, format!("token '{}'", session.token_label()))
    };
    if g.json {
        print_json(&serde_json::json!({
            "verified": true,
            "algorithm": curve.algorithm_name(),
            "key": source,
        }))
    } else {
        print_bytes(b"Signature verified OK\n")
    }
}
