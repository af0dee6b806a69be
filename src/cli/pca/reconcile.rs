//! `pca reconcile`: report unfinished issuances and what each means.

use std::time::Duration;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::ids::DeviceId;
use crate::pca::reconcile::{reconcile, IntentCheck, IDEMPOTENCY_WINDOW};
use crate::pca::registry::Registry;

/// `pca reconcile`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca reconcile
  hsm-demo --json pca reconcile --device-id device-42

Exits non-zero when a PossibleOrphan intent is found (an IssueCertificate whose result was never
stored, older than AWS's idempotency window).")]
pub struct ReconcileArgs {
    /// Only this device (one Query) instead of a Scan of all open intents
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// AWS's idempotency window to assume, in seconds (documented as 1-5 minutes)
    #[arg(long, default_value_t = IDEMPOTENCY_WINDOW.as_secs(), value_name = "SECS")]
    pub window_secs: u64,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca reconcile`.
pub fn run(a: ReconcileArgs, g: &Global) -> Result<()> {
    let device = a.device_id.as_deref().map(DeviceId::parse).transpose()?;
    let findings = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        reconcile(&reg, device.as_ref(), Duration::from_secs(a.window_secs)).await
    })??;
    let orphans = findings
        .iter()
        .filter(|f| f.check == IntentCheck::PossibleOrphan)
        .count();
    if g.json {
        print_json(&serde_json::to_value(&findings).map_err(|e| Error::Other(e.to_string()))?)?;
    } else {
        let mut s = String::new();
        for f in &findings {
            s.push_str(&format!(
                "{} #{} {:?} ({} s old): {}\n",
                f.intent.device_id, f.intent.generation, f.check, f.age_secs, f.advice
            ));
        }
        if findings.is_empty() {
            s.push_str("no unfinished issuances\n");
        }
        print_bytes(s.as_bytes())?;
    }
    if orphans > 0 {
        return Err(Error::Registry(format!(
            "{orphans} possible orphaned issuance(s): IssueCertificate may have issued certificates that are not recorded (see the advice above)"
        )));
    }
    Ok(())
}
