//! `pca init-table`: create the registry table if it does not exist.

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::Result;
use crate::pca::aws::AwsClients;
use crate::pca::registry::Registry;

/// `pca init-table`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca init-table
  HSM_DEMO_TABLE=my-registry hsm-demo pca init-table")]
pub struct InitTableArgs {
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca init-table`.
pub fn run(a: InitTableArgs, g: &Global) -> Result<()> {
    let table = a.aws.table.clone();
    let created = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        Registry::new(&clients, &a.aws.table).init_table().await
    })??;
    if g.json {
        print_json(&serde_json::json!({"table": table, "created": created}))
    } else if created {
        print_bytes(format!("created table {table} (on-demand, pk/sk)\n").as_bytes())
    } else {
        print_bytes(format!("table {table} already exists\n").as_bytes())
    }
}
