//! `pca show`: a device's certificates and intents, or a serial's record.

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::ids::{DeviceId, Serial};
use crate::pca::registry::{DeviceState, Registry};

/// `pca show`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca show --device-id device-42
  hsm-demo --json pca show --serial 4c:1f:0a:9b")]
pub struct ShowArgs {
    /// Device id (one Query)
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "serial",
        required_unless_present = "serial"
    )]
    pub device_id: Option<String>,
    /// Serial in hex (one Query)
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Also print the certificate PEM (device look-up)
    #[arg(long)]
    pub pem: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca show`.
pub fn run(a: ShowArgs, g: &Global) -> Result<()> {
    let device = a.device_id.as_deref().map(DeviceId::parse).transpose()?;
    let serial = a.serial.as_deref().map(Serial::parse).transpose()?;
    if let Some(device) = device {
        show_device(&a, device, g)
    } else {
        let serial = serial.ok_or_else(|| Error::input("pass --device-id or --serial"))?;
        show_serial(&a.aws, serial, g)
    }
}

/// The certificate PEM of the device's CURRENT generation, if recorded.
fn current_pem(st: &DeviceState) -> Option<String> {
    let cur = st.current.as_ref()?;
    st.history
        .iter()
        .find(|h| h.generation == cur.generation)
        .and_then(|h| h.cert_pem.clone())
}

fn show_device(a: &ShowArgs, device: DeviceId, g: &Global) -> Result<()> {
    let aws = a.aws.clone();
    let st = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        Registry::new(&clients, &aws.table).device(&device).await
    })??;
    let dev = a.device_id.clone().unwrap_or_default();
    if st.current.is_none() && st.history.is_empty() && st.intents.is_empty() {
        return Err(Error::Registry(format!(
            "device {dev} is not in the registry"
        )));
    }
    if g.json {
        let mut v = serde_json::to_value(&st).map_err(|e| Error::Other(e.to_string()))?;
        if a.pem && st.current.is_some() {
            v["cert_pem"] = serde_json::json!(current_pem(&st));
        }
        return print_json(&v);
    }
    let mut s = format!("device {dev}\n");
    match &st.current {
        Some(c) => s.push_str(&format!(
            "  current:  serial {} {} (generation {}, valid to {}, CA {})\n",
            c.serial,
            c.status.as_str(),
            c.generation,
            c.not_after,
            c.ca_arn
        )),
        None => s.push_str("  current:  none\n"),
    }
    for h in &st.history {
        s.push_str(&format!(
            "  history:  #{} serial {} {} issued {}{}\n",
            h.generation,
            h.serial,
            h.status.as_str(),
            h.issued_at,
            h.revoked_at
                .as_ref()
                .map(|r| format!(" revoked {r}"))
                .unwrap_or_default()
        ));
    }
    for i in &st.intents {
        s.push_str(&format!(
            "  intent:   #{} {:?} since {}{}\n",
            i.generation,
            i.state,
            i.created_at,
            i.cert_arn
                .as_ref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        ));
    }
    if a.pem {
        if let Some(pem) = current_pem(&st) {
            s.push_str(&pem);
        }
    }
    print_bytes(s.as_bytes())
}

fn show_serial(aws: &AwsArgs, serial: Serial, g: &Global) -> Result<()> {
    let shown = serial.clone();
    let aws = aws.clone();
    let v = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        Registry::new(&clients, &aws.table).by_serial(&serial).await
    })??;
    if v.is_empty() {
        return Err(Error::Registry(format!(
            "serial {shown} is not in the registry"
        )));
    }
    if g.json {
        return print_json(&serde_json::to_value(&v).map_err(|e| Error::Other(e.to_string()))?);
    }
    let mut s = String::new();
    for m in &v {
        s.push_str(&format!(
            "serial {}: device {} {} (generation {}, issued {}, valid to {}, CA {})\n",
            m.serial,
            m.device_id,
            m.status.as_str(),
            m.generation,
            m.issued_at,
            m.not_after,
            m.ca_arn
        ));
    }
    print_bytes(s.as_bytes())
}
