//! `pca decommission`: revoke the device's certificate, destroy its HSM key pair, mark it
//! DECOMMISSIONED (see [`crate::pca::decommission`] for the order of the steps).

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;
use crate::pca::aws::AwsClients;
use crate::pca::decommission::{decommission, destroy_device_key, KeyFate};
use crate::pca::ids::DeviceId;
use crate::pca::registry::Registry;
use crate::pca::revoke::parse_reason;

/// `pca decommission`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Steps: mark the device DECOMMISSIONING (provision refuses it from now on) →
revoke its current certificate → destroy its HSM key pair (label device-<id>) if the token holds
the certified key → mark it DECOMMISSIONED. A rerun after a crash or failure finishes what is left;
a rerun after success does nothing. The HSM is opened only when a module is configured
(--module / HSM_DEMO_MODULE); a device-generated key stays on the device.
`provision --recommission` provisions the device again.

Examples:
  hsm-demo pca decommission --device-id device-42
  hsm-demo --json pca decommission --device-id device-43 --reason key-compromise"
)]
pub struct DecommissionArgs {
    /// The device
    #[arg(long, value_name = "ID")]
    pub device_id: String,
    /// Revocation reason: cessation-of-operation, key-compromise, affiliation-changed, superseded, privilege-withdrawn, unspecified
    #[arg(long, value_name = "REASON", default_value = "cessation-of-operation")]
    pub reason: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca decommission`.
pub fn run(a: DecommissionArgs, g: &Global) -> Result<()> {
    let device = DeviceId::parse(&a.device_id)?;
    let reason = parse_reason(&a.reason)?;
    // The HSM first, when configured: a wrong PIN fails before anything is written.
    let session = match &g.module {
        Some(_) => Some(HsmSession::connect(&g.connect_options())?),
        None => None,
    };
    let r = block_on(async {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        decommission(&clients, &reg, &device, reason, |d, spki| {
            let fate = match &session {
                Some(s) => destroy_device_key(s, &d, spki.as_deref()),
                None => Ok(KeyFate::NotLookedUp),
            };
            async move { fate }
        })
        .await
    })??;
    if g.json {
        return print_json(&serde_json::to_value(&r).map_err(|e| Error::Other(e.to_string()))?);
    }
    if !r.changed {
        return print_bytes(format!("device {device} was already decommissioned\n").as_bytes());
    }
    let cert = match &r.revoked_serial {
        Some(s) => format!("certificate {s} revoked ({})", r.reason),
        None => "no certificate to revoke".to_string(),
    };
    let key = match r.key {
        KeyFate::Destroyed(n) => format!("HSM key pair destroyed ({n} objects)"),
        KeyFate::Absent => "no HSM key".to_string(),
        KeyFate::KeptNotCertified => "HSM key under its label kept (not the certified key)".into(),
        KeyFate::NotLookedUp => "HSM not opened (no module configured)".to_string(),
    };
    print_bytes(format!("device {device} decommissioned: {cert}; {key}\n").as_bytes())
}
