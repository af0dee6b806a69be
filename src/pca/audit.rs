//! `pca audit-reconcile`: the CA's audit report — AWS's own list of every certificate the CA
//! issued, and which it revoked — joined with the registry on the serial.
//!
//! The report comes from CreateCertificateAuthorityAuditReport (written by PCA to an S3 bucket,
//! polled with DescribeCertificateAuthorityAuditReport until SUCCESS) or is an existing report
//! object. The join reports three kinds of discrepancy:
//! - **orphans**: issued at AWS but not recorded for this CA in the registry — each with the open
//!   intent that explains it (an issuance whose record a rerun will write), if any;
//! - **unknown to AWS**: recorded in the registry but absent from the report (registry entries
//!   newer than the report are left out: the report lists what the CA issued when it was made);
//! - **status mismatches**: revoked at AWS but not in the registry, or the reverse.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_acmpca::types::{AuditReportResponseFormat, AuditReportStatus};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, Service};
use crate::pca::ids::{CaArn, Serial};
use crate::pca::records::{CertStatus, Intent, SerialRecord};

/// Largest report read (about 3 million certificates in JSON).
pub const MAX_REPORT_BYTES: usize = 1 << 30;

/// One certificate of the audit report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEntry {
    /// Serial, normalised as the registry keeps it (lower-case hex, no colons).
    pub serial: String,
    /// The certificate's ARN.
    pub certificate_arn: String,
    /// Subject (RFC 2253).
    pub subject: String,
    /// When PCA issued it.
    pub issued_at: String,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The revocation reason, if revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
}

/// Parses a JSON audit report (an array of objects with AWS's field names).
pub fn parse_report(bytes: &[u8]) -> Result<Vec<AuditEntry>> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(bytes).map_err(|e| {
        Error::aws(format!(
            "the audit report is not a JSON array of records: {e}"
        ))
    })?;
    v.iter()
        .map(|r| {
            let f = |k: &str| r.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let serial = f("serial").ok_or_else(|| Error::aws("an audit record has no serial"))?;
            Ok(AuditEntry {
                serial: Serial::parse(&serial)?.as_str().to_string(),
                certificate_arn: f("certificateArn").unwrap_or_default(),
                subject: f("subject").unwrap_or_default(),
                issued_at: f("issuedAt").unwrap_or_default(),
                revoked_at: f("revokedAt").filter(|s| !s.is_empty()),
                revocation_reason: f("revocationReason").filter(|s| !s.is_empty()),
            })
        })
        .collect()
}

/// An orphan and what explains it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Orphan {
    /// The certificate AWS issued.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// `device <id> generation <n>` when an open intent holds this certificate's ARN (a rerun
    /// records it); `None`: nothing in the registry explains it.
    pub open_intent: Option<String>,
}

/// A certificate whose revocation state differs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    /// Serial.
    pub serial: String,
    /// Device (from the registry).
    pub device_id: String,
    /// `revoked` / `not revoked` at AWS.
    pub aws: String,
    /// The registry's status.
    pub registry: String,
}

/// The result of the join.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Findings {
    /// Certificates in the report.
    pub aws_certificates: usize,
    /// Serial markers of the CA in the registry.
    pub registry_certificates: usize,
    /// Registry markers newer than the report (not compared).
    pub newer_than_report: usize,
    /// Issued at AWS, not in the registry.
    pub orphans: Vec<Orphan>,
    /// In the registry, not in the report.
    pub unknown_to_aws: Vec<SerialRecord>,
    /// Revocation state differs.
    pub status_mismatches: Vec<Mismatch>,
}

impl Findings {
    /// Number of discrepancies.
    pub fn discrepancies(&self) -> usize {
        self.orphans.len() + self.unknown_to_aws.len() + self.status_mismatches.len()
    }
}

/// Joins the report with the registry's markers of the same CA and its open intents.
/// `report_time`: when the report was made (markers recorded later are not compared).
pub fn reconcile(
    report: &[AuditEntry],
    markers: &[SerialRecord],
    intents: &[Intent],
    report_time: Option<OffsetDateTime>,
) -> Findings {
    let by_serial: HashMap<&str, &SerialRecord> =
        markers.iter().map(|m| (m.serial.as_str(), m)).collect();
    let in_report: HashMap<&str, &AuditEntry> =
        report.iter().map(|e| (e.serial.as_str(), e)).collect();
    let mut f = Findings {
        aws_certificates: report.len(),
        registry_certificates: markers.len(),
        ..Findings::default()
    };
    for e in report {
        match by_serial.get(e.serial.as_str()) {
            None => f.orphans.push(Orphan {
                entry: e.clone(),
                open_intent: explaining_intent(intents, &e.certificate_arn),
            }),
            Some(m) => {
                if let Some(x) = mismatch(e, m) {
                    f.status_mismatches.push(x);
                }
            }
        }
    }
    for m in markers {
        if in_report.contains_key(m.serial.as_str()) {
            continue;
        }
        if newer_than(&m.issued_at, report_time) {
            f.newer_than_report += 1;
        } else {
            f.unknown_to_aws.push(m.clone());
        }
    }
    f
}

fn explaining_intent(intents: &[Intent], cert_arn: &str) -> Option<String> {
    intents
        .iter()
        .find(|i| i.cert_arn.as_deref() == Some(cert_arn))
        .map(|i| format!("device {} generation {}", i.device_id, i.generation))
}

fn mismatch(e: &AuditEntry, m: &SerialRecord) -> Option<Mismatch> {
    let aws_revoked = e.revoked_at.is_some();
    let reg_revoked = m.status == CertStatus::Revoked;
    (aws_revoked != reg_revoked).then(|| Mismatch {
        serial: e.serial.clone(),
        device_id: m.device_id.clone(),
        aws: if aws_revoked {
            format!(
                "revoked ({})",
                e.revocation_reason.as_deref().unwrap_or("no reason")
            )
        } else {
            "not revoked".into()
        },
        registry: m.status.as_str().to_string(),
    })
}

fn newer_than(issued_at: &str, report_time: Option<OffsetDateTime>) -> bool {
    let (Some(t), Ok(at)) = (
        report_time,
        OffsetDateTime::parse(issued_at, &time::format_description::well_known::Rfc3339),
    ) else {
        return false;
    };
    at > t
}

/// Asks PCA for a JSON audit report in `bucket`; returns (report id, S3 key).
pub async fn create_report(
    clients: &AwsClients,
    arn: &CaArn,
    bucket: &str,
) -> Result<(String, String)> {
    let out = clients
        .pca
        .create_certificate_authority_audit_report()
        .certificate_authority_arn(arn.as_str())
        .s3_bucket_name(bucket)
        .audit_report_response_format(AuditReportResponseFormat::Json)
        .send()
        .await
        .map_err(|e| {
            let busy = error_code(&e) == Some("RequestInProgressException");
            let err = map_sdk_error(clients, Service::Pca, "CreateCertificateAuthorityAuditReport", e);
            if busy {
                err.reword_aws(|m| format!("{m} (PCA makes one audit report per CA every 30 minutes: pass the last one with --report-key)"))
            } else {
                err
            }
        })?;
    match (out.audit_report_id(), out.s3_key()) {
        (Some(id), Some(key)) => Ok((id.to_string(), key.to_string())),
        _ => Err(Error::aws(
            "CreateCertificateAuthorityAuditReport returned no report id or key",
        )),
    }
}

/// Polls DescribeCertificateAuthorityAuditReport until SUCCESS (1 s, doubling up to 10 s) or
/// `timeout`; FAILED is an error.
pub async fn wait_report(
    clients: &AwsClients,
    arn: &CaArn,
    id: &str,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        let out = clients
            .pca
            .describe_certificate_authority_audit_report()
            .certificate_authority_arn(arn.as_str())
            .audit_report_id(id)
            .send()
            .await
            .map_err(|e| {
                map_sdk_error(
                    clients,
                    Service::Pca,
                    "DescribeCertificateAuthorityAuditReport",
                    e,
                )
            })?;
        match out.audit_report_status() {
            Some(AuditReportStatus::Success) => return Ok(()),
            Some(AuditReportStatus::Failed) => {
                return Err(Error::aws(format!("audit report {id} FAILED: PCA could not write it (check the bucket and its policy)")))
            }
            _ => {}
        }
        if start.elapsed() + pause > timeout {
            return Err(Error::aws(format!(
                "audit report {id} not ready after {} s (--wait-secs); rerun with --report-key once it is",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pca::records::IntentState;

    fn entry(serial: &str, arn: &str, revoked: bool) -> AuditEntry {
        AuditEntry {
            serial: serial.into(),
            certificate_arn: arn.into(),
            subject: "CN=d".into(),
            issued_at: "2026-12-01T00:00:00Z".into(),
            revoked_at: revoked.then(|| "2026-12-02T00:00:00Z".into()),
            revocation_reason: revoked.then(|| "KEY_COMPROMISE".into()),
        }
    }

    fn marker(serial: &str, status: CertStatus, issued_at: &str) -> SerialRecord {
        SerialRecord {
            serial: serial.into(),
            ca_arn: "ca".into(),
            device_id: format!("dev-{serial}"),
            generation: 1,
            cert_arn: format!("ca/certificate/{serial}"),
            status,
            issued_at: issued_at.into(),
            not_after: "2027-12-01T00:00:00Z".into(),
            revoked_at: None,
        }
    }

    fn intent(device: &str, cert_arn: Option<&str>) -> Intent {
        Intent {
            device_id: device.into(),
            generation: 3,
            state: IntentState::Issuing,
            ca_arn: "ca".into(),
            owner: "h:1:1:n".into(),
            lease_until: 0,
            created_at: "2026-12-01T00:00:00Z".into(),
            created_epoch: 0,
            params: None,
            cert_arn: cert_arn.map(str::to_string),
            serial: None,
            previous_owners: Vec::new(),
        }
    }

    #[test]
    fn orphan_is_explained_only_by_the_intent_holding_its_arn() {
        let report = [entry("0a", "arn-a", false), entry("0b", "arn-b", false)];
        let intents = [
            intent("other", Some("arn-x")),
            intent("dev-7", Some("arn-b")),
        ];
        let f = reconcile(&report, &[], &intents, None);
        assert_eq!(f.orphans.len(), 2);
        assert_eq!(f.orphans[0].open_intent, None);
        assert_eq!(
            f.orphans[1].open_intent.as_deref(),
            Some("device dev-7 generation 3")
        );
        assert_eq!(f.discrepancies(), 2);
    }

    #[test]
    fn status_mismatch_both_ways_and_agreement_is_clean() {
        let report = [
            entry("01", "a1", true),
            entry("02", "a2", false),
            entry("03", "a3", true),
            entry("04", "a4", false),
        ];
        let markers = [
            marker("01", CertStatus::Issued, "2026-12-01T00:00:00Z"),
            marker("02", CertStatus::Revoked, "2026-12-01T00:00:00Z"),
            marker("03", CertStatus::Revoked, "2026-12-01T00:00:00Z"),
            marker("04", CertStatus::Issued, "2026-12-01T00:00:00Z"),
        ];
        let f = reconcile(&report, &markers, &[], None);
        let got: Vec<_> = f
            .status_mismatches
            .iter()
            .map(|m| (m.serial.as_str(), m.aws.as_str(), m.registry.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("01", "revoked (KEY_COMPROMISE)", "ISSUED"),
                ("02", "not revoked", "REVOKED")
            ]
        );
        assert!(f.orphans.is_empty() && f.unknown_to_aws.is_empty());
    }

    #[test]
    fn registry_entries_newer_than_the_report_are_not_unknown() {
        let t = OffsetDateTime::parse(
            "2026-12-05T00:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let markers = [
            marker("01", CertStatus::Issued, "2026-12-04T23:59:59Z"),
            marker("02", CertStatus::Issued, "2026-12-05T00:00:01Z"),
        ];
        let f = reconcile(&[], &markers, &[], Some(t));
        assert_eq!(f.newer_than_report, 1);
        assert_eq!(f.unknown_to_aws.len(), 1);
        assert_eq!(f.unknown_to_aws[0].serial, "01");
        // Without a report time every absent marker counts.
        assert_eq!(reconcile(&[], &markers, &[], None).unknown_to_aws.len(), 2);
    }

    #[test]
    fn report_serials_are_normalised_and_bad_reports_refused() {
        let r =
            parse_report(br#"[{"serial":"0A:BC","certificateArn":"x","revokedAt":""}]"#).unwrap();
        assert_eq!(r[0].serial, "0abc");
        assert_eq!(r[0].revoked_at, None);
        assert!(parse_report(b"{}").is_err());
        assert!(parse_report(br#"[{"certificateArn":"x"}]"#).is_err());
    }
}
