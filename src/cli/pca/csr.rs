//! `pca csr`: a CSR signed by an HSM key.

use std::path::PathBuf;

use crate::cli::common::{print_bytes, print_json, KeyArgs};
use crate::cli::issue_args::SubjectArgs;
use crate::cli::Global;
use crate::error::Result;
use crate::fsutil::{check_output_force, out_file, write_atomic};
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::csr::{build_csr, Csr};

/// `pca csr`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca csr --label device-42 --cn device-42 --out d42.csr
  hsm-demo pca csr --label device-42 --san-uri spiffe://example.org/device/42   # empty subject, critical SAN
  openssl req -in d42.csr -noout -verify")]
pub struct CsrArgs {
    /// The HSM key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Subject.
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Write the PEM CSR to FILE (atomically; '-' = stdout). FILE must be absent or a regular file
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite FILE if it exists
    #[arg(long, requires = "out")]
    pub force: bool,
}

fn csr_json(csr: &Csr) -> serde_json::Value {
    serde_json::json!({
        "pem": csr.pem,
        "subject": csr.subject,
        "sans": csr.sans,
        "public_key_sha256": crate::pca::token::sha256_hex(&csr.spki),
    })
}

/// Runs `pca csr`.
pub fn run(a: CsrArgs, g: &Global) -> Result<()> {
    let req = a.subject.request(None);
    req.validate()?;
    let (spec, opts) = a.key.resolve(g)?;
    let out = out_file(a.out.as_ref());
    if let Some(out) = out {
        check_output_force(out, a.force)?;
    }
    let session = HsmSession::connect(&opts)?;
    let signer = HsmSigner::new(&session, &spec)?;
    let csr = build_csr(&req, &signer)?;
    if let Some(out) = out {
        write_atomic(out, csr.pem.as_bytes(), a.force)?;
    }
    if g.json {
        let mut v = csr_json(&csr);
        if let Some(out) = out {
            v["file"] = serde_json::json!(out);
        }
        print_json(&v)
    } else if let Some(out) = out {
        print_bytes(
            format!(
                "CSR written to {} (subject '{}')\n",
                out.display(),
                csr.subject
            )
            .as_bytes(),
        )
    } else {
        print_bytes(csr.pem.as_bytes())
    }
}
