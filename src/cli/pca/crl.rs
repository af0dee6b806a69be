//! `pca crl`: fetch the CA's current CRL from its bucket, verify it, and say whether a serial is in it.

use std::path::PathBuf;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::{check_output_force, write_atomic};
use crate::pca::aws::AwsClients;
use crate::pca::crl::{fetch, CrlInfo};
use crate::pca::ids::{CaArn, Serial};

/// `pca crl`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The CRL is read from the bucket in the CA's RevocationConfiguration
(crl/<ca-id>.crl) and must verify with the CA certificate; a stale CRL (nextUpdate passed) is
reported with a warning.

Examples:
  hsm-demo pca crl --ca-arn $CA_ARN
  hsm-demo pca crl --ca-arn $CA_ARN --serial 4c:1f:0a:9b
  hsm-demo --json pca crl --ca-arn $CA_ARN --out issuing.crl"
)]
pub struct CrlArgs {
    /// The CA whose CRL to read
    #[arg(long, value_name = "ARN")]
    pub ca_arn: String,
    /// Say whether this serial (hex, colons optional) is revoked
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Also write the CRL (DER) to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists
    #[arg(long)]
    pub force: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca crl`.
pub fn run(a: CrlArgs, g: &Global) -> Result<()> {
    let arn = CaArn::parse(&a.ca_arn)?;
    let serial = a.serial.as_deref().map(Serial::parse).transpose()?;
    if let Some(out) = &a.out {
        check_output_force(out, a.force)?;
    }
    let aws = a.aws.clone();
    let (info, der) = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        fetch(&clients, &arn, serial.as_ref()).await
    })??;
    if let Some(out) = &a.out {
        write_atomic(out, &der, a.force)?;
    }
    if info.stale {
        eprintln!(
            "warning: the CRL is stale: its nextUpdate {} has passed (PCA has not published a newer one)",
            info.next_update.as_deref().unwrap_or("?")
        );
    }
    if g.json {
        return print_json(&serde_json::to_value(&info).map_err(|e| Error::Other(e.to_string()))?);
    }
    print_bytes(text(&info).as_bytes())
}

fn text(info: &CrlInfo) -> String {
    let mut s = format!(
        "CRL s3://{}/{} (signature verified with the CA certificate)\n  issuer:      {}\n  CRL number:  {}\n  thisUpdate:  {}\n  nextUpdate:  {}{}\n  revoked:     {}\n",
        info.location.bucket,
        info.location.key,
        info.issuer,
        info.crl_number.as_deref().unwrap_or("(none)"),
        info.this_update,
        info.next_update.as_deref().unwrap_or("(none)"),
        if info.stale { " (stale)" } else { "" },
        info.revoked_count,
    );
    if let Some(st) = &info.serial {
        if st.revoked {
            s.push_str(&format!(
                "serial {}: revoked ({}, {})\n",
                st.serial,
                st.reason.as_deref().unwrap_or("unspecified"),
                st.revocation_date.as_deref().unwrap_or("?")
            ));
        } else {
            s.push_str(&format!("serial {}: not revoked\n", st.serial));
        }
    }
    s
}
