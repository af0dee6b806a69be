//! `pca revoke`: revoke a certificate by serial and update the registry.

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::ids::{CaArn, Serial};
use crate::pca::registry::Registry;
use crate::pca::revoke::{parse_reason, revoke};

/// `pca revoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca revoke --serial 4C:1F:0A:9B --reason key-compromise
  hsm-demo pca revoke --serial 4c1f0a9b --reason superseded --ca-arn $CA_ARN")]
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
    let r = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        revoke(&clients, &reg, &serial, a.ca_arn.as_deref(), reason).await
    })??;
    if g.json {
        print_json(&serde_json::to_value(&r).map_err(|e| Error::Other(e.to_string()))?)
    } else if r.changed {
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
