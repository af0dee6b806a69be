//! `pca metrics`: the registry as Prometheus text exposition (format 0.0.4), for
//! node_exporter's textfile collector (`hsm-demo pca metrics > …/hsm_demo.prom.tmp && mv …`).
//! One paginated Scan of the table, projected (no PEMs).

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::print_bytes;
use crate::cli::Global;
use crate::error::Result;
use crate::pca::aws::AwsClients;
use crate::pca::registry::{CertStatus, Inventory, Registry};

/// `pca metrics`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Metrics (gauges):
  hsm_demo_certificates{status}                 certificates recorded (every generation): issued, superseded, revoked
  hsm_demo_devices{status}                      devices by the status of their current certificate
  hsm_demo_certificates_expiring{within}        current ISSUED certificates not yet expired that end within 7d / 30d
  hsm_demo_certificates_expired                 current ISSUED certificates past their NotAfter
  hsm_demo_open_intents                         issuances not finished (pca reconcile explains them)
  hsm_demo_failed_markers                       devices whose last batch attempt failed
  hsm_demo_earliest_not_after_timestamp_seconds earliest NotAfter of a current ISSUED certificate
  hsm_demo_registry_items_scanned               items read by this scrape

Example (cron, every 5 minutes):
  hsm-demo pca metrics > /var/lib/node_exporter/hsm_demo.prom.$$ && mv /var/lib/node_exporter/hsm_demo.prom.$$ /var/lib/node_exporter/hsm_demo.prom")]
pub struct MetricsArgs {
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca metrics`.
pub fn run(a: MetricsArgs, _g: &Global) -> Result<()> {
    let inv = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        Registry::new(&clients, &a.aws.table).inventory().await
    })??;
    print_bytes(exposition(&inv, OffsetDateTime::now_utc()).as_bytes())
}

const STATUSES: [CertStatus; 3] = [
    CertStatus::Issued,
    CertStatus::Superseded,
    CertStatus::Revoked,
];

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// The exposition of an inventory at `now`.
pub fn exposition(inv: &Inventory, now: OffsetDateTime) -> String {
    let mut out = String::new();
    let lbl = |k: &str, v: &str| format!("{{{k}=\"{v}\"}}");
    let by_status: Vec<(String, f64)> = STATUSES
        .iter()
        .map(|s| {
            let i = crate::pca::registry::renewal_status_index(*s);
            (
                lbl("status", &s.as_str().to_ascii_lowercase()),
                inv.certificates[i] as f64,
            )
        })
        .collect();
    gauge(
        &mut out,
        "hsm_demo_certificates",
        "Certificates recorded in the registry (every generation), by status.",
        &by_status,
    );
    let devices: Vec<(String, f64)> = STATUSES
        .iter()
        .map(|s| {
            let n = inv.current.iter().filter(|c| c.status == *s).count();
            (lbl("status", &s.as_str().to_ascii_lowercase()), n as f64)
        })
        .collect();
    gauge(
        &mut out,
        "hsm_demo_devices",
        "Devices by the status of their current certificate.",
        &devices,
    );
    let ends: Vec<i64> = inv
        .current
        .iter()
        .filter(|c| c.status == CertStatus::Issued)
        .filter_map(|c| OffsetDateTime::parse(&c.not_after, &Rfc3339).ok())
        .map(|t| t.unix_timestamp())
        .collect();
    let now_s = now.unix_timestamp();
    let within = |d: i64| {
        ends.iter()
            .filter(|t| **t > now_s && **t - now_s <= d)
            .count() as f64
    };
    gauge(
        &mut out,
        "hsm_demo_certificates_expiring",
        "Current ISSUED certificates, not yet expired, that end within the window.",
        &[
            (lbl("within", "7d"), within(7 * 86_400)),
            (lbl("within", "30d"), within(30 * 86_400)),
        ],
    );
    let expired = ends.iter().filter(|t| **t <= now_s).count() as f64;
    gauge(
        &mut out,
        "hsm_demo_certificates_expired",
        "Current ISSUED certificates past their NotAfter.",
        &[(String::new(), expired)],
    );
    gauge(
        &mut out,
        "hsm_demo_open_intents",
        "Issuances not finished (intents not ISSUED).",
        &[(String::new(), inv.open_intents as f64)],
    );
    gauge(
        &mut out,
        "hsm_demo_failed_markers",
        "FAILED markers of batch provisioning.",
        &[(String::new(), inv.failed_markers as f64)],
    );
    if let Some(t) = ends.iter().min() {
        gauge(
            &mut out,
            "hsm_demo_earliest_not_after_timestamp_seconds",
            "Earliest NotAfter of a current ISSUED certificate (Unix time).",
            &[(String::new(), *t as f64)],
        );
    }
    gauge(
        &mut out,
        "hsm_demo_registry_items_scanned",
        "Registry items read by this scrape.",
        &[(String::new(), inv.items as f64)],
    );
    out
}
