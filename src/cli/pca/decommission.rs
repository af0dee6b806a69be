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
use crate::pca::manifest::ManifestReader;
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

With --manifest (a provisioning manifest: its device ids; CSR files are not read) the devices are
decommissioned one after the other; a device that fails does not stop the others, the command then
exits 1 naming the first failure, and a rerun finishes them.

Examples:
  hsm-demo pca decommission --device-id device-42
  hsm-demo pca decommission --manifest fleet.csv --reason affiliation-changed
  hsm-demo --json pca decommission --device-id device-43 --reason key-compromise"
)]
pub struct DecommissionArgs {
    /// The device
    #[arg(long, value_name = "ID", required_unless_present = "manifest")]
    pub device_id: Option<String>,
    /// Or every device of a manifest (CSV or JSON lines, as for `provision --manifest`)
    #[arg(long, value_name = "FILE", conflicts_with = "device_id")]
    pub manifest: Option<std::path::PathBuf>,
    /// Revocation reason: cessation-of-operation, key-compromise, affiliation-changed, superseded, privilege-withdrawn, unspecified
    #[arg(long, value_name = "REASON", default_value = "cessation-of-operation")]
    pub reason: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca decommission`.
pub fn run(a: DecommissionArgs, g: &Global) -> Result<()> {
    let reason = parse_reason(&a.reason)?;
    let devices = match (&a.device_id, &a.manifest) {
        (Some(d), _) => vec![DeviceId::parse(d)?],
        (None, Some(m)) => manifest_devices(m)?,
        (None, None) => return Err(Error::Usage("--device-id or --manifest is needed".into())),
    };
    // The HSM first, when configured: a wrong PIN fails before anything is written.
    let session = match &g.module {
        Some(_) => Some(HsmSession::connect(&g.connect_options())?),
        None => None,
    };
    let results = block_on(async {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        let mut results = Vec::with_capacity(devices.len());
        for device in &devices {
            let r = decommission(&clients, &reg, device, reason, |d, spki| {
                let fate = match &session {
                    Some(s) => destroy_device_key(s, &d, spki.as_deref()),
                    None => Ok(KeyFate::NotLookedUp),
                };
                async move { fate }
            })
            .await;
            results.push((device.clone(), r));
        }
        Ok::<_, Error>(results)
    })??;
    let mut first_failure = None;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (device, r) in results {
        match r {
            Ok(r) => report(&r, g)?,
            Err(e) if devices.len() == 1 => return Err(e),
            Err(e) => {
                eprintln!("device {device}: {}", e.one_line());
                first_failure.get_or_insert(format!("{device}: {}", e.one_line()));
            }
        }
    }
    match first_failure {
        Some(f) => Err(Error::Other(format!(
            "{failed} of {} devices not decommissioned (first: {f}); rerun to finish them",
            devices.len()
        ))),
        None => Ok(()),
    }
}

/// The device ids of a manifest, validated as a whole first (CSR files are not read).
fn manifest_devices(path: &std::path::Path) -> Result<Vec<DeviceId>> {
    let mut r = ManifestReader::open(path)
        .map_err(|e| Error::Usage(e.one_line()))?
        .ids_only();
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().map_err(|e| Error::Usage(e.one_line()))? {
        out.push(e.device);
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "manifest {} has no devices",
            path.display()
        )));
    }
    Ok(out)
}

/// Prints one device's result.
fn report(r: &crate::pca::decommission::Decommissioned, g: &Global) -> Result<()> {
    let device = &r.device_id;
    if g.json {
        return print_json(&serde_json::to_value(r).map_err(|e| Error::Other(e.to_string()))?);
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
