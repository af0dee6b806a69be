//! `pca audit-reconcile`: the CA's audit report joined with the registry (see `crate::pca::audit`).

use std::time::Duration;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::audit::{self, Findings};
use crate::pca::aws::AwsClients;
use crate::pca::ids::CaArn;
use crate::pca::registry::Registry;

/// `pca audit-reconcile`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without --report-key, asks PCA for a new JSON audit report in --bucket
(CreateCertificateAuthorityAuditReport; one per CA every 30 minutes), waits until it is written
and reads it. Then joins it with the registry's serial markers of the CA and reports:
orphans (issued at AWS, not in the registry — with the open intent that explains one, if any),
certificates the registry has but AWS does not, and revocation mismatches. Registry entries
newer than the report are not compared. Only describe/read calls besides creating the report.

Examples:
  hsm-demo pca audit-reconcile --ca-arn $CA_ARN --bucket pki-audit-reports
  hsm-demo --json pca audit-reconcile --ca-arn $CA_ARN --bucket pki-audit-reports \\
      --report-key audit-report/<ca-id>/<report-id>.json"
)]
pub struct AuditReconcileArgs {
    /// The CA to reconcile
    #[arg(long, env = "HSM_DEMO_CA_ARN", value_name = "ARN")]
    pub ca_arn: String,
    /// S3 bucket of the audit reports (PCA must be allowed to write to it)
    #[arg(long, value_name = "BUCKET")]
    pub bucket: String,
    /// Use this existing report (a JSON report's S3 key) instead of creating one
    #[arg(long, value_name = "KEY")]
    pub report_key: Option<String>,
    /// Seconds to wait for a new report to be written
    #[arg(long, default_value_t = 900, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub wait_secs: u64,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `pca audit-reconcile`; exit 1 (through [`Error::AuditDiscrepancies`]) when not clean.
pub fn run(a: AuditReconcileArgs, g: &Global) -> Result<()> {
    let arn = CaArn::parse(&a.ca_arn)?;
    if a.bucket.trim().is_empty() {
        return Err(Error::input("--bucket must not be empty"));
    }
    let aws = a.aws.clone();
    let bucket = a.bucket.clone();
    let (findings, key) = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        let key = match a.report_key {
            Some(k) => k,
            None => {
                let (id, key) = audit::create_report(&clients, &arn, &bucket).await?;
                audit::wait_report(&clients, &arn, &id, Duration::from_secs(a.wait_secs)).await?;
                key
            }
        };
        let s3 = crate::pca::s3::client().await;
        let object =
            crate::pca::s3::get_bounded(&s3, &bucket, &key, audit::MAX_REPORT_BYTES).await?;
        let report = audit::parse_report(&object.bytes)?;
        let registry = Registry::new(&clients, &aws.table);
        let markers = registry.serials_of_ca(arn.as_str()).await?;
        let intents = registry.open_intents().await?;
        Ok::<_, Error>((
            audit::reconcile(&report, &markers, &intents, object.last_modified),
            key,
        ))
    })??;
    let location = format!("s3://{}/{key}", a.bucket.clone());
    if g.json {
        let mut v = serde_json::to_value(&findings).map_err(|e| Error::Other(e.to_string()))?;
        v["report"] = serde_json::json!(location);
        v["clean"] = serde_json::json!(findings.discrepancies() == 0);
        print_json(&v)?;
    } else {
        print_bytes(text(&findings, &location).as_bytes())?;
    }
    match findings.discrepancies() {
        0 => Ok(()),
        n => Err(Error::AuditDiscrepancies(n)),
    }
}

fn text(f: &Findings, location: &str) -> String {
    let mut s = format!(
        "audit report {location}: {} certificates at AWS, {} in the registry ({} newer than the report, not compared)\n",
        f.aws_certificates, f.registry_certificates, f.newer_than_report
    );
    for o in &f.orphans {
        let why = o
            .open_intent
            .as_deref()
            .map_or("nothing in the registry explains it".to_string(), |i| {
                format!("open intent of {i}: a rerun records it")
            });
        s.push_str(&format!(
            "  orphan: serial {} ({}) issued {} — {why}\n",
            o.entry.serial, o.entry.subject, o.entry.issued_at
        ));
    }
    for m in &f.unknown_to_aws {
        s.push_str(&format!(
            "  unknown to AWS: serial {} of device {} (registry {})\n",
            m.serial,
            m.device_id,
            m.status.as_str()
        ));
    }
    for m in &f.status_mismatches {
        s.push_str(&format!(
            "  status mismatch: serial {} of device {}: AWS {}, registry {}\n",
            m.serial, m.device_id, m.aws, m.registry
        ));
    }
    s.push_str(&if f.discrepancies() == 0 {
        "clean: the registry and AWS agree\n".to_string()
    } else {
        format!("{} discrepancies\n", f.discrepancies())
    });
    s
}
