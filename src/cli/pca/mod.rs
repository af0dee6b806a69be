//! `hsm-demo pca …`: CSRs from HSM keys, issuance through AWS Private CA, the DynamoDB registry.
//! One file per subcommand.
//!
//! Only `pca csr` touches the HSM alone; every other subcommand creates a tokio runtime and loads
//! the AWS configuration inside the command (HSM-only commands never do).

use crate::cli::Global;
use crate::error::Result;

pub mod audit_reconcile;
pub mod crl;
pub mod csr;
pub mod decommission;
pub mod expiring;
pub mod init_table;
pub mod issue;
pub mod list;
pub mod metrics;
pub mod prune_keys;
pub mod reconcile;
pub mod revoke;
pub mod show;

pub use crl::CrlArgs;
pub use csr::CsrArgs;
pub use decommission::DecommissionArgs;
pub use init_table::InitTableArgs;
pub use issue::IssueArgs;
pub use list::ListArgs;
pub use reconcile::ReconcileArgs;
pub use revoke::RevokeArgs;
pub use show::ShowArgs;

const AFTER_HELP: &str = "\
AWS configuration is the standard one: AWS_REGION, AWS_PROFILE, the credential chain, and
AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566 for the local stand-in: `make aws-up`).

Examples:
  hsm-demo pca init-table
  hsm-demo pca csr --label device-42 --cn device-42 --san-uri spiffe://example.org/device/42 --out d42.csr
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-42 --csr d42.csr --validity 30d --out-dir certs
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-43 --label device-43 --validity 12h
  hsm-demo pca show --device-id device-42
  hsm-demo --json pca list --status issued
  hsm-demo pca revoke --serial 4c:1f:0a:… --reason key-compromise
  hsm-demo pca reconcile";

/// `pca` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The pca subcommand.
    #[command(subcommand)]
    pub command: PcaCommand,
}

/// The `pca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PcaCommand {
    /// Build a CSR signed by an HSM key (the key never leaves the HSM)
    Csr(CsrArgs),
    /// Issue a device certificate (idempotent, crash-safe) and record it in the registry
    Issue(IssueArgs),
    /// Revoke a certificate by serial and update the registry
    Revoke(RevokeArgs),
    /// Show a device's certificates and intents, or a serial's record
    Show(ShowArgs),
    /// List devices' current certificates
    List(ListArgs),
    /// Create the registry table (on-demand capacity) if it does not exist
    InitTable(InitTableArgs),
    /// Report unfinished issuances (intents not ISSUED) and what each means
    Reconcile(ReconcileArgs),
    /// Fetch and verify the CA's current CRL; say whether a serial is revoked
    Crl(CrlArgs),
    /// Join the CA's audit report with the registry: orphans, unknown serials, revocation mismatches
    AuditReconcile(audit_reconcile::AuditReconcileArgs),
    /// Retire a device: revoke its certificate, destroy its HSM key, refuse it in provision
    Decommission(DecommissionArgs),
    /// List devices whose current certificate ends within a window (expired ones included), soonest first
    Expiring(expiring::ExpiringArgs),
    /// Print registry metrics in the Prometheus text format (node_exporter textfile collector)
    Metrics(metrics::MetricsArgs),
    /// Destroy HSM key pairs of past generations whose certificates are all expired or revoked
    PruneKeys(prune_keys::PruneKeysArgs),
}

/// Runs `pca`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    match args.command {
        PcaCommand::Csr(a) => csr::run(a, g),
        PcaCommand::Issue(a) => issue::run(a, g),
        PcaCommand::Revoke(a) => revoke::run(a, g),
        PcaCommand::Show(a) => show::run(a, g),
        PcaCommand::List(a) => list::run(a, g),
        PcaCommand::InitTable(a) => init_table::run(a, g),
        PcaCommand::Reconcile(a) => reconcile::run(a, g),
        PcaCommand::Crl(a) => crl::run(a, g),
        PcaCommand::AuditReconcile(a) => audit_reconcile::run(a, g),
        PcaCommand::Decommission(a) => decommission::run(a, g),
        PcaCommand::Expiring(a) => expiring::run(a, g),
        PcaCommand::Metrics(a) => metrics::run(a, g),
        PcaCommand::PruneKeys(a) => prune_keys::run(a, g),
    }
}
