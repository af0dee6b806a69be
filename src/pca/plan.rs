//! `provision --manifest M --plan`: what a run would do, before it runs — devices already issued
//! and to issue, HSM keys to create, device CSRs, wall time at the configured rate, the AWS
//! Private CA bill and the warnings an operator needs (HSM capacity, a certificate outliving the
//! CA, the CA's 1,000,000-certificate limit).
//!
//! Read-only by construction: the manifest (every CSR checked, as for a run), one BatchGetItem per
//! 33 devices (a Query for a device revoked or decommissioned before), one paginated Scan of the
//! CA's serial markers, DescribeCertificateAuthority and
//! GetCertificateAuthorityCertificate. No PKCS#11 module is loaded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{map_sdk_error, AwsClients, Service};
use crate::pca::ca::CaInfo;
use crate::pca::ids::{CaArn, DeviceId};
use crate::pca::manifest::{ManifestInfo, ManifestReader};
use crate::pca::registry::{
    ca_sk, intent_sk, rfc3339, CertStatus, DeviceState, IntentState, Registry, DECOMMISSIONED_SK,
};
use crate::pca::validity::ValiditySpec;

/// Certificate price tiers of a general-purpose CA (USD, us-east-1; design §1 "Cost estimate"):
/// `(certificates up to this count in a month, price of each)`. Counted per calendar month.
pub const GENERAL_PURPOSE_TIERS: [(u64, f64); 3] =
    [(1_000, 0.75), (10_000, 0.35), (u64::MAX, 0.001)];

/// Certificates a CA with a complete CRL may issue (AWS user guide, "Set up a CRL"; design §1).
pub const CA_CERTIFICATE_LIMIT: u64 = 1_000_000;

/// Registry reads in flight at once while planning.
const PLAN_READS_IN_FLIGHT: usize = 32;

/// The price of `n` more certificates in a month in which `before` were already issued.
pub fn certificate_cost_usd(before: u64, n: u64) -> f64 {
    let mut cost = 0.0;
    let mut low = 0u64;
    let (start, end) = (before, before.saturating_add(n));
    for (upto, price) in GENERAL_PURPOSE_TIERS {
        let a = start.max(low);
        let b = end.min(upto);
        if b > a {
            cost += (b - a) as f64 * price;
        }
        low = upto;
    }
    (cost * 100.0).round() / 100.0
}

/// What `--plan` needs besides the clients.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The manifest (already validated).
    pub manifest: PathBuf,
    /// Issuing CA.
    pub ca: CaArn,
    /// Validity of the certificates.
    pub validity: ValiditySpec,
    /// `--issue-tps`.
    pub issue_tps: f64,
    /// `--hsm-key-capacity`: key objects the HSM can still hold.
    pub hsm_key_capacity: Option<u64>,
    /// Registry table.
    pub table: String,
    /// `--recommission`: decommissioned devices would be provisioned again.
    pub recommission: bool,
}

/// The plan.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Devices in the manifest.
    pub devices: u64,
    /// Devices with a current ISSUED certificate (a run skips them).
    pub already_issued: u64,
    /// Devices a run would issue for (including ones resuming a stored certificate ARN).
    pub to_issue: u64,
    /// IssueCertificate calls a run would make (`to_issue` minus resumes from a stored ARN).
    pub issue_calls: u64,
    /// HSM key pairs to create: rows without a CSR still to issue (an upper bound: a key left by an
    /// interrupted run is reused).
    pub hsm_keys_to_create: u64,
    /// Rows with a device CSR.
    pub csrs: u64,
    /// Devices `provision` would refuse as decommissioned (no `--recommission`).
    pub decommissioned: u64,
    /// Certificates of this CA in the registry (all time).
    pub ca_certificates: u64,
    /// Of which recorded this calendar month (they count towards this month's price tiers).
    pub ca_certificates_this_month: u64,
    /// Wall time of the issuance at `--issue-tps` (s).
    pub estimated_seconds: f64,
    /// AWS Private CA certificate cost of the run (USD, general-purpose tiers).
    pub estimated_cost_usd: f64,
    /// What the operator should know before running.
    pub warnings: Vec<String>,
}

/// Plans the run: reads only.
pub async fn plan(clients: &AwsClients, input: &PlanInput, info: &ManifestInfo) -> Result<Plan> {
    let registry = Registry::new(clients, &input.table);
    registry.check_table().await?;
    let ca = CaInfo::load(clients, &input.ca).await?;
    let mut p = Plan {
        devices: info.devices,
        csrs: info.csrs,
        ..Plan::default()
    };
    count_devices(&registry, input, &mut p).await?;
    let month = rfc3339(OffsetDateTime::now_utc())[..7].to_string();
    let (total, this_month) = ca_certificates(clients, &input.table, &input.ca, &month).await?;
    p.ca_certificates = total;
    p.ca_certificates_this_month = this_month;
    p.estimated_seconds = (p.issue_calls as f64 / input.issue_tps.max(1e-9) * 10.0).round() / 10.0;
    p.estimated_cost_usd = certificate_cost_usd(this_month, p.issue_calls);
    warnings(input, &ca, &mut p)?;
    Ok(p)
}

/// The warnings: HSM capacity, validity beyond the CA, the CA's certificate limit, refusals.
fn warnings(input: &PlanInput, ca: &CaInfo, p: &mut Plan) -> Result<()> {
    if let Some(cap) = input.hsm_key_capacity {
        let objects = p.hsm_keys_to_create.saturating_mul(2);
        if objects > cap {
            p.warnings.push(format!(
                "HSM capacity: {} key pairs to create = {objects} key objects, more than --hsm-key-capacity {cap} (at most {} devices): give the other devices CSRs (device-generated keys) or add an HSM cluster",
                p.hsm_keys_to_create,
                cap / 2
            ));
        }
    }
    let v = input.validity.resolve(OffsetDateTime::now_utc())?;
    if v.not_after > ca.not_after {
        p.warnings.push(format!(
            "validity {} would end {}, after the CA's NotAfter {}: every issuance would be refused; choose a shorter --validity",
            input.validity,
            rfc3339(v.not_after),
            rfc3339(ca.not_after)
        ));
    }
    let after = p.ca_certificates + p.issue_calls;
    if after > CA_CERTIFICATE_LIMIT {
        p.warnings.push(format!(
            "the issuing CA would pass {CA_CERTIFICATE_LIMIT} certificates ({} recorded + {} to issue = {after}): a CA with a complete CRL cannot issue more; rotate the issuing CA or use partitioned CRLs",
            p.ca_certificates, p.issue_calls
        ));
    }
    if p.decommissioned > 0 {
        p.warnings.push(format!(
            "{} devices are decommissioned: a run refuses them (pass --recommission to provision them again)",
            p.decommissioned
        ));
    }
    Ok(())
}

/// How a device stands for the plan.
enum Standing {
    Issued,
    Refused,
    ToIssue { resume: bool },
}

fn standing(st: &DeviceState, recommission: bool) -> Standing {
    let next = st.next_generation();
    let open = st.intent(next);
    if let Some(d) = &st.decommissioned {
        if open.is_none() && !(recommission && d.done) {
            return Standing::Refused;
        }
    }
    if st
        .current
        .as_ref()
        .is_some_and(|c| c.status == CertStatus::Issued)
    {
        return Standing::Issued;
    }
    Standing::ToIssue {
        resume: open.is_some_and(|i| i.state == IntentState::Issuing),
    }
}

/// Devices per BatchGetItem: three keys each (CURRENT, DECOMMISSIONED, INTENT#000000), at most
/// 100 keys per call.
const DEVICES_PER_BATCH: usize = 33;

/// Reads every device of the manifest (BatchGetItem, bounded concurrency), counted into `p`.
async fn count_devices(registry: &Registry, input: &PlanInput, p: &mut Plan) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(DeviceId, bool)>>(PLAN_READS_IN_FLIGHT);
    let path = input.manifest.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut r = ManifestReader::open(&path)?;
        let mut chunk = Vec::with_capacity(DEVICES_PER_BATCH);
        while let Some(e) = r.next_entry()? {
            chunk.push((e.device, e.device_csr.is_some()));
            if chunk.len() == DEVICES_PER_BATCH
                && tx.blocking_send(std::mem::take(&mut chunk)).is_err()
            {
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok(())
    });
    let registry = Arc::new(registry.clone());
    let recommission = input.recommission;
    let mut set = tokio::task::JoinSet::new();
    let mut feed_done = false;
    loop {
        if !feed_done && set.len() < PLAN_READS_IN_FLIGHT {
            match rx.recv().await {
                Some(chunk) => {
                    let r = registry.clone();
                    set.spawn(async move { standings(&r, chunk, recommission).await });
                    continue;
                }
                None => feed_done = true,
            }
        }
        let Some(j) = set.join_next().await else {
            break;
        };
        let chunk =
            j.map_err(|e| Error::Other(format!("internal: a plan read panicked: {e}")))??;
        for (standing, has_csr) in chunk {
            match standing {
                Standing::Issued => p.already_issued += 1,
                Standing::Refused => p.decommissioned += 1,
                Standing::ToIssue { resume } => {
                    p.to_issue += 1;
                    if !resume {
                        p.issue_calls += 1;
                    }
                    if !has_csr {
                        p.hsm_keys_to_create += 1;
                    }
                }
            }
        }
    }
    reader
        .await
        .map_err(|e| Error::Other(format!("internal: the manifest reader panicked: {e}")))??;
    Ok(())
}

/// The standings of a chunk of devices: one BatchGetItem of the items that decide the common
/// cases; a device whose certificate was revoked or that carries a decommissioning marker is read
/// whole (one Query), since its next intent's generation is known only then.
async fn standings(
    registry: &Registry,
    chunk: Vec<(DeviceId, bool)>,
    recommission: bool,
) -> Result<Vec<(Standing, bool)>> {
    let items = registry.plan_items(chunk.iter().map(|(d, _)| d)).await?;
    let attr = |pk: &str, sk: &str, k: &str| match items
        .get(&(pk.to_string(), sk.to_string()))
        .map(|it| it.get(k))
    {
        Some(Some(AttributeValue::S(v))) => Some(Some(v.clone())),
        Some(_) => Some(None),
        None => None,
    };
    let mut out = Vec::with_capacity(chunk.len());
    for (device, has_csr) in chunk {
        let pk = crate::pca::registry::device_pk(device.as_str());
        let current = attr(&pk, "CURRENT", "status");
        let marker = attr(&pk, DECOMMISSIONED_SK, "state").is_some();
        let standing = match current {
            Some(Some(s)) if s == CertStatus::Issued.as_str() && !marker => Standing::Issued,
            None if !marker => Standing::ToIssue {
                resume: attr(&pk, &intent_sk(0), "state").flatten().as_deref()
                    == Some(IntentState::Issuing.as_str()),
            },
            _ => standing(&registry.device(&device).await?, recommission),
        };
        out.push((standing, has_csr));
    }
    Ok(out)
}

/// Certificates of `ca` in the registry (its serial markers), all time and in `month` (`YYYY-MM`):
/// a paginated, projected Scan.
async fn ca_certificates(
    clients: &AwsClients,
    table: &str,
    ca: &CaArn,
    month: &str,
) -> Result<(u64, u64)> {
    let items: Vec<HashMap<String, AttributeValue>> = clients
        .ddb
        .scan()
        .table_name(table)
        .filter_expression("sk = :ca AND begins_with(pk, :serial)")
        .projection_expression("issued_at")
        .expression_attribute_values(":ca", AttributeValue::S(ca_sk(ca.as_str())))
        .expression_attribute_values(":serial", AttributeValue::S("SERIAL#".into()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| map_sdk_error(clients, Service::Ddb, "Scan", e))?;
    let this_month = items
        .iter()
        .filter(
            |it| matches!(it.get("issued_at"), Some(AttributeValue::S(t)) if t.starts_with(month)),
        )
        .count();
    Ok((items.len() as u64, this_month as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_tiers_of_the_design() {
        // Design §1: 10,000 certificates in a month = 750 + 3,150; 100,000 = 3,990.
        assert_eq!(certificate_cost_usd(0, 10_000), 3_900.0);
        assert_eq!(certificate_cost_usd(0, 100_000), 3_990.0);
        assert_eq!(certificate_cost_usd(0, 833), 624.75);
        // Tiers count per month: after 999 this month, 2 more cost 0.75 + 0.35.
        assert_eq!(certificate_cost_usd(999, 2), 1.1);
        assert_eq!(certificate_cost_usd(0, 0), 0.0);
    }

    #[test]
    fn warnings_name_hsm_capacity_ca_lifetime_and_the_ca_certificate_limit() {
        let ca = CaInfo {
            arn: CaArn::parse(
                "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555",
            )
            .unwrap(),
            key_algorithm: "EC_prime256v1".into(),
            signing_algorithm: aws_sdk_acmpca::types::SigningAlgorithm::Sha256Withecdsa,
            not_after: OffsetDateTime::now_utc() + time::Duration::days(365),
            cert_pem: String::new(),
            chain_pem: String::new(),
        };
        let input = |validity: &str, cap: Option<u64>| PlanInput {
            manifest: PathBuf::from("m.csv"),
            ca: ca.arn.clone(),
            validity: ValiditySpec::parse(validity).unwrap(),
            issue_tps: 25.0,
            hsm_key_capacity: cap,
            table: "t".into(),
            recommission: false,
        };
        let base = Plan {
            hsm_keys_to_create: 1_650,
            ca_certificates: 999_000,
            issue_calls: 1_000,
            ..Plan::default()
        };
        // Within every limit: no warning (1,650 pairs = 3,300 objects, hsm1.medium's quota).
        let mut p = base.clone();
        warnings(&input("30d", Some(3_300)), &ca, &mut p).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        // One more key pair, a validity beyond the CA, one more certificate: three warnings.
        let mut p = Plan {
            hsm_keys_to_create: 1_651,
            issue_calls: 1_001,
            ..base
        };
        warnings(&input("2y", Some(3_300)), &ca, &mut p).unwrap();
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(
            p.warnings[0].contains("3302 key objects"),
            "{:?}",
            p.warnings
        );
        assert!(
            p.warnings[1].contains("after the CA's NotAfter"),
            "{:?}",
            p.warnings
        );
        assert!(
            p.warnings[2].contains("would pass 1000000"),
            "{:?}",
            p.warnings
        );
    }
}
