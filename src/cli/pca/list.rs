//! `pca list`: devices' current certificates.

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::registry::{CertStatus, Registry};

/// `pca list`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca list
  hsm-demo --json pca list --status revoked")]
pub struct ListArgs {
    /// Only this status: issued or revoked
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca list`.
pub fn run(a: ListArgs, g: &Global) -> Result<()> {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(CertStatus::parse(s).ok_or_else(|| {
            Error::input(format!(
                "unknown --status '{s}': expected issued or revoked"
            ))
        })?),
    };
    let v = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        Registry::new(&clients, &a.aws.table).list(status).await
    })??;
    if g.json {
        return print_json(&serde_json::to_value(&v).map_err(|e| Error::Other(e.to_string()))?);
    }
    let mut s = String::new();
    for r in &v {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            r.device_id,
            r.serial,
            r.status.as_str(),
            r.not_after
        ));
    }
    if v.is_empty() {
        s.push_str("no devices\n");
    }
    print_bytes(s.as_bytes())
}
