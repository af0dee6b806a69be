//! `hsm-demo generate-key --label L [--curve p256|p384] [--id HEX]`

use cryptoki::context::Function;

use crate::cli::common::{parse_hex, print_bytes, print_json};
use crate::cli::Global;
use crate::error::Result;
use crate::hsm::ec::Curve;
use crate::hsm::keygen::{generate_key, KeygenRequest};
use crate::hsm::retry;
use crate::hsm::session::HsmSession;

const AFTER_HELP: &str = "\
Examples:
  hsm-demo generate-key --label service-key
  hsm-demo generate-key --label root-ca-key --curve p384 --id 0a0b
  hsm-demo --token demo --json generate-key --label device-1

The private key is created with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and CKA_EXTRACTABLE=false:
it never leaves the HSM. An existing label is refused unless --allow-duplicate-label is given.";

/// `generate-key` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Label (CKA_LABEL) of the new key pair
    #[arg(long, value_name = "LABEL")]
    pub label: String,

    /// Curve: p256 (ECDSA P-256, SHA-256) or p384 (ECDSA P-384, SHA-384)
    #[arg(long, default_value = "p256", value_name = "CURVE")]
    pub curve: Curve,

    /// Key id (CKA_ID) in hex [default: 8 random bytes]
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,

    /// Create the key even if another key already has this label (look-ups by label become ambiguous)
    #[arg(long)]
    pub allow_duplicate_label: bool,
}

/// Runs `generate-key`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    // Validate everything before touching the token.
    let curve = args.curve;
    let id = args
        .id
        .as_deref()
        .map(|h| parse_hex("--id", h))
        .transpose()?;
    if args.label.is_empty() {
        return Err(crate::Error::input("--label must not be empty"));
    }
    // A label is echoed back (here, in list-slots, in errors): a newline or an escape sequence in
    // it would forge output lines or drive the terminal.
    if let Some((i, c)) = args.label.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(crate::Error::input(format!(
            "--label must not contain control characters: '{}' at position {}",
            c.escape_default(),
            i + 1
        )));
    }
    if id
        .as_deref()
        .is_some_and(crate::pca::device_key::is_intent_key_id)
    {
        return Err(crate::Error::input(format!(
            "--id may not start with '{}': that prefix marks device keys made under an issuance intent",
            String::from_utf8_lossy(crate::pca::device_key::INTENT_KEY_ID_PREFIX)
        )));
    }
    let req = KeygenRequest {
        allow_duplicate_label: args.allow_duplicate_label,
        id,
        ..KeygenRequest::new(args.label, curve)
    };
    let mut session = HsmSession::connect(&g.connect_options())?;
    let key = match generate_key(&session, &req) {
        Ok(k) => k,
        // SoftHSM2's file store: when another process rewrote the token files under this one,
        // this process's view of the token stays broken (CKR_GENERAL_ERROR, a transient code for
        // hsm::retry) until C_Finalize.
        // generate_key has already removed what the failed call left; a fresh module
        // (C_Finalize + C_Initialize + login) retries it once — the label check runs again
        // under the token lock, so this never makes a second key pair.
        Err(e)
            if e.pkcs11().is_some_and(|(f, rv)| {
                matches!(f, Function::GenerateKeyPair) && retry::is_transient(rv)
            }) =>
        {
            tracing::warn!(
                "C_GenerateKeyPair: {}; retrying once on a fresh module",
                e.ckr().unwrap_or_default()
            );
            drop(session);
            session = HsmSession::connect(&g.connect_options())?;
            generate_key(&session, &req)?
        }
        Err(e) => return Err(e),
    };
    if g.json {
        print_json(&serde_json::json!({
            "label": key.label,
            "id": hex::encode(&key.id),
            "curve": curve.id(),
            "algorithm": curve.algorithm_name(),
            "token": session.token_label(),
            "public_key_sec1": hex::encode(&key.public_point),
        }))
    } else {
        print_bytes(
            format!(
                "Generated ECDSA {} key pair, label: {}\n",
                curve.name(),
                key.label
            )
            .as_bytes(),
        )
    }
}
