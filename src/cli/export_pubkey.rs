//! `hsm-demo export-pubkey --label L [--out FILE]`

use std::path::PathBuf;

use crate::cli::common::{print_bytes, print_json, KeyArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::{check_output_force, out_file, write_atomic};
use crate::hsm::ec;
use crate::hsm::lookup::find_public_key;
use crate::hsm::session::HsmSession;

const AFTER_HELP: &str = "\
Examples:
  hsm-demo export-pubkey --label service-key                 # PEM on stdout
  hsm-demo export-pubkey --label service-key --out pub.pem
  hsm-demo export-pubkey --label service-key --out -         # '-' is stdout
  openssl pkey -pubin -in pub.pem -text -noout
  hsm-demo export-pubkey --uri 'pkcs11:token=demo;object=service-key;type=public'";

/// `export-pubkey` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Which key.
    #[command(flatten)]
    pub key: KeyArgs,

    /// Write the PEM to FILE (atomically; '-' = stdout). FILE must be absent or a regular file
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE if it exists
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// Runs `export-pubkey`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    let (spec, opts) = args.key.resolve(g)?;
    let out = out_file(args.out.as_ref());
    if let Some(out) = out {
        check_output_force(out, args.force)?;
    }
    let mut session = HsmSession::open(&opts)?;
    let (curve, point) = match find_public_key(&session, &spec) {
        Err(Error::KeyNotFound { .. }) if opts.pin.available_without_prompt() => {
            session.login(&opts.pin)?;
            find_public_key(&session, &spec)?
        }
        other => other?,
    };
    let pem = ec::spki_pem(curve, &point)?;
    if let Some(out) = out {
        write_atomic(out, pem.as_bytes(), args.force)?;
        if g.json {
            return print_json(&serde_json::json!({
                "curve": curve.id(), "path": out.display().to_string(),
            }));
        }
        return Ok(());
    }
    if g.json {
        print_json(&serde_json::json!({ "curve": curve.id(), "pem": pem }))
    } else {
        print_bytes(pem.as_bytes())
    }
}
