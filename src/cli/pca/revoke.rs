//! `pca revoke`: revoke a certificate by serial and update the registry; with `--wait-crl`, wait
//! until the CA's CRL lists it.

use std::time::Duration;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::crl;
use crate::pca::ids::{CaArn, Serial};
use crate::pca::registry::Registry;
use crate::pca::revoke::{find_marker, parse_reason, revoke, Revoked};

/// `pca revoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca revoke --serial 4C:1F:0A:9B --reason key-compromise
  hsm-demo pca revoke --serial 4c1f0a9b --reason superseded --ca-arn $CA_ARN
  hsm-demo pca revoke --serial 4c1f0a9b --reason key-compromise --wait-crl      # until the CRL lists it

--wait-crl [SECS] (default 2400) then reads the CA's CRL from its bucket, as pca crl does, until
it lists the serial: PCA updates a CRL about 30 minutes after a revocation, and relying parties
see it only at their next fetch. A CA without a CRL is refused before anything is revoked. When
the time runs out the revocation stands and the command fails saying so.")]
pub struct RevokeArgs {
    /// Certificate serial in hex (colons optional)
    #[arg(long, value_name = "HEX")]
    pub serial: String,
    /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn, aa-compromise
    #[arg(long, value_name = "REASON")]
    pub reason: String,
    /// The issuing CA, when several CAs issued the same serial
    #[arg(long, value_name = "ARN")]
    pub ca_arn: Option<String>,
    /// After revoking, wait until the CA's CRL lists the serial (up to SECS, default 2400)
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2400",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait_crl: Option<u64>,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca revoke`.
pub fn run(a: RevokeArgs, g: &Global) -> Result<()> {
    let serial = Serial::parse(&a.serial)?;
    let reason = parse_reason(&a.reason)?;
    if let Some(ca) = &a.ca_arn {
        CaArn::parse(ca)?;
    }
    let json = g.json;
    block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        // With --wait-crl the CA must publish a CRL: checked before anything is revoked.
        let wait = match a.wait_crl {
            Some(secs) => {
                let m = find_marker(&reg, &serial, a.ca_arn.as_deref()).await?;
                let ca = CaArn::parse(&m.ca_arn)?;
                crl::locate(&clients, &ca).await?;
                Some((ca, Duration::from_secs(secs)))
            }
            None => None,
        };
        let r = revoke(&clients, &reg, &serial, a.ca_arn.as_deref(), reason).await?;
        if !json {
            print_revoked(&r)?;
        }
        let listed = match wait {
            Some((ca, t)) => Some(wait_crl(&clients, &ca, &serial, t).await?),
            None => None,
        };
        if let (false, Some(info)) = (json, &listed) {
            print_listed(info)?;
        }
        if json {
            let mut v = serde_json::to_value(&r).map_err(|e| Error::Other(e.to_string()))?;
            if let Some(info) = listed {
                v["crl"] = serde_json::to_value(info).map_err(|e| Error::Other(e.to_string()))?;
            }
            print_json(&v)?;
        }
        Ok(())
    })?
}

fn print_revoked(r: &Revoked) -> Result<()> {
    if r.changed {
        print_bytes(
            format!(
                "revoked serial {} of device {} ({})\n",
                r.serial.serial, r.serial.device_id, r.reason
            )
            .as_bytes(),
        )
    } else {
        print_bytes(format!("serial {} was already revoked\n", r.serial.serial).as_bytes())
    }
}

/// `--wait-crl`: progress on stderr; the CRL that lists the serial.
async fn wait_crl(
    clients: &AwsClients,
    ca: &CaArn,
    serial: &Serial,
    timeout: Duration,
) -> Result<crl::CrlInfo> {
    eprintln!(
        "waiting up to {} s for the CRL of {ca} to list serial {serial}",
        timeout.as_secs()
    );
    let info = crl::wait_listed(clients, ca, serial, timeout, |i| {
        eprintln!(
            "  CRL number {} (thisUpdate {}) does not list it yet",
            i.crl_number.as_deref().unwrap_or("none"),
            i.this_update
        );
    })
    .await?;
    Ok(info)
}

fn print_listed(info: &crl::CrlInfo) -> Result<()> {
    let st = info.serial.as_ref();
    print_bytes(
        format!(
            "CRL number {} lists serial {}: revoked ({}, {})\n",
            info.crl_number.as_deref().unwrap_or("none"),
            st.map_or("", |s| s.serial.as_str()),
            st.and_then(|s| s.reason.as_deref())
                .unwrap_or("unspecified"),
            st.and_then(|s| s.revocation_date.as_deref()).unwrap_or("?")
        )
        .as_bytes(),
    )
}
