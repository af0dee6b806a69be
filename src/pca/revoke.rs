//! `pca revoke`: RevokeCertificate, then the registry updated in one transaction.
//!
//! Order: AWS first, registry second. A crash in between leaves the registry saying ISSUED; a
//! rerun calls RevokeCertificate again, AWS answers RequestAlreadyProcessed (treated as success) and
//! the registry is updated. The registry never claims a revocation AWS did not make.

use aws_sdk_acmpca::types::RevocationReason;

use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, Service};
use crate::pca::ids::{printable, Serial};
use crate::pca::registry::{CertStatus, Registry, SerialRecord, Written};

/// Revocation reasons accepted on the command line (AWS enum names, lower-case with dashes).
pub const REASONS: &[(&str, &str)] = &[
    ("unspecified", "UNSPECIFIED"),
    ("key-compromise", "KEY_COMPROMISE"),
    ("ca-compromise", "CERTIFICATE_AUTHORITY_COMPROMISE"),
    ("affiliation-changed", "AFFILIATION_CHANGED"),
    ("superseded", "SUPERSEDED"),
    ("cessation-of-operation", "CESSATION_OF_OPERATION"),
    ("privilege-withdrawn", "PRIVILEGE_WITHDRAWN"),
    ("aa-compromise", "A_A_COMPROMISE"),
];

/// Parses a reason (`key-compromise` or the AWS name `KEY_COMPROMISE`).
pub fn parse_reason(s: &str) -> Result<&'static str> {
    let norm = s.trim().to_ascii_lowercase().replace('_', "-");
    REASONS
        .iter()
        .find(|(cli, aws)| *cli == norm || aws.eq_ignore_ascii_case(s.trim()))
        .map(|(_, aws)| *aws)
        .ok_or_else(|| {
            Error::input(format!(
                "unknown revocation reason '{}': expected one of {}",
                printable(s),
                REASONS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// Result of a revocation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Revoked {
    /// The serial marker after the update.
    pub serial: SerialRecord,
    /// The reason sent.
    pub reason: String,
    /// False if the registry already said REVOKED (nothing done).
    pub changed: bool,
}

/// Revokes `serial` (issued by `ca_arn` when several CAs issued the same serial).
pub async fn revoke(
    clients: &AwsClients,
    registry: &Registry,
    serial: &Serial,
    ca_arn: Option<&str>,
    reason: &str,
) -> Result<Revoked> {
    let markers = registry.by_serial(serial).await?;
    let marker = match (markers.len(), ca_arn) {
        (0, _) => {
            return Err(Error::Registry(format!(
                "serial {serial} is not in registry table '{}'",
                registry.table()
            )))
        }
        (_, Some(ca)) => markers
            .iter()
            .find(|m| m.ca_arn == ca)
            .cloned()
            .ok_or_else(|| {
                Error::Registry(format!(
                    "serial {serial} was not issued by CA {ca} (per the registry)"
                ))
            })?,
        (1, None) => markers[0].clone(),
        (_, None) => {
            return Err(Error::input(format!(
                "serial {serial} was issued by {} CAs: pass --ca-arn",
                markers.len()
            )))
        }
    };
    if marker.status == CertStatus::Revoked {
        return Ok(Revoked {
            serial: marker,
            reason: reason.to_string(),
            changed: false,
        });
    }
    let res = clients
        .pca
        .revoke_certificate()
        .certificate_authority_arn(&marker.ca_arn)
        .certificate_serial(serial.colon_hex())
        .revocation_reason(RevocationReason::from(reason))
        .send()
        .await;
    if let Err(e) = res {
        if error_code(&e) != Some("RequestAlreadyProcessedException") {
            return Err(map_sdk_error(clients, Service::Pca, "RevokeCertificate", e));
        }
    }
    let device = crate::pca::ids::DeviceId::parse(&marker.device_id)?;
    let st = registry.device(&device).await?;
    let is_current = st
        .current
        .as_ref()
        .is_some_and(|c| c.serial == marker.serial && c.ca_arn == marker.ca_arn);
    match registry.record_revoked(&marker, reason, is_current).await? {
        Written::Yes => {
            let mut m = marker;
            m.status = CertStatus::Revoked;
            Ok(Revoked {
                serial: m,
                reason: reason.to_string(),
                changed: true,
            })
        }
        Written::ConditionFailed => {
            let now = registry.by_serial(serial).await?;
            let m = now
                .into_iter()
                .find(|m| m.ca_arn == marker.ca_arn)
                .unwrap_or(marker);
            if m.status == CertStatus::Revoked {
                Ok(Revoked {
                    serial: m,
                    reason: reason.to_string(),
                    changed: false,
                })
            } else {
                Err(Error::Registry(format!(
                    "serial {serial}: revoked in AWS but the registry changed meanwhile; rerun `pca revoke` to record it"
                )))
            }
        }
    }
}
