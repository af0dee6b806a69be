//! `pca revoke`: RevokeCertificate, then the registry updated in one transaction.
//!
//! Order: AWS first, registry second. A crash in between leaves the registry saying ISSUED; a
//! rerun calls RevokeCertificate again, AWS answers RequestAlreadyProcessed (treated as success) and
//! the registry is updated. The registry never claims a revocation AWS did not make.
//!
//! Reason key-compromise also records the certificate's public key as compromised (the registry's
//! `KEY#<spki sha256>` item); every issuance checks that item first and refuses the key
//! (`Issuer::complete`), whatever device, label or CSR carries it.

use aws_sdk_acmpca::types::RevocationReason;

use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, Service};
use crate::pca::csr::cert_facts;
use crate::pca::ids::{printable, Serial};
use crate::pca::registry::{
    rfc3339, CertStatus, CompromisedKey, DeviceState, Registry, SerialRecord, Written,
};
use crate::pca::token::sha256_hex;
use time::OffsetDateTime;

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

/// The AWS name of the reason that marks a public key as compromised.
pub const KEY_COMPROMISE: &str = "KEY_COMPROMISE";

/// Result of a revocation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Revoked {
    /// The serial marker after the update.
    pub serial: SerialRecord,
    /// The reason sent.
    pub reason: String,
    /// False if the registry already said REVOKED (nothing done).
    pub changed: bool,
    /// With reason key-compromise: SHA-256 of the certificate's public key (DER SPKI), now
    /// recorded as compromised so that no issuance ever certifies it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compromised_key: Option<String>,
}

/// Revokes `serial` (issued by `ca_arn` when several CAs issued the same serial).
///
/// With reason key-compromise the certificate's public key is also recorded as compromised
/// (`Registry::record_compromised_key`), after RevokeCertificate succeeded and before the
/// revocation transaction, so a crash in between is completed by a rerun. A serial the registry
/// already holds as REVOKED (for any reason) still gets its key recorded when the reason now given
/// is key-compromise: the compromise is a fact about the key, learnt perhaps after a routine
/// revocation.
pub async fn revoke(
    clients: &AwsClients,
    registry: &Registry,
    serial: &Serial,
    ca_arn: Option<&str>,
    reason: &str,
) -> Result<Revoked> {
    let marker = find_marker(registry, serial, ca_arn).await?;
    let device = crate::pca::ids::DeviceId::parse(&marker.device_id)?;
    if marker.status == CertStatus::Revoked {
        let compromised_key = if reason == KEY_COMPROMISE {
            let st = registry.device(&device).await?;
            Some(mark_key_compromised(clients, registry, &marker, &st).await?)
        } else {
            None
        };
        return Ok(Revoked {
            serial: marker,
            reason: reason.to_string(),
            changed: false,
            compromised_key,
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
    crash_point!("after-revoke");
    let st = registry.device(&device).await?;
    let compromised_key = if reason == KEY_COMPROMISE {
        let k = mark_key_compromised(clients, registry, &marker, &st).await?;
        crash_point!("after-compromised-key");
        Some(k)
    } else {
        None
    };
    let is_current = st
        .current
        .as_ref()
        .is_some_and(|c| c.serial == marker.serial && c.ca_arn == marker.ca_arn);
    let written = registry.record_revoked(&marker, reason, is_current).await?;
    let (serial_now, changed) = match written {
        Written::Yes => {
            let mut m = marker;
            m.status = CertStatus::Revoked;
            (m, true)
        }
        Written::ConditionFailed => {
            let now = registry.by_serial(serial).await?;
            let m = now
                .into_iter()
                .find(|m| m.ca_arn == marker.ca_arn)
                .unwrap_or(marker);
            if m.status != CertStatus::Revoked {
                return Err(Error::Registry(format!(
                    "serial {serial}: revoked in AWS but the registry changed meanwhile; rerun `pca revoke` to record it"
                )));
            }
            (m, false)
        }
    };
    Ok(Revoked {
        serial: serial_now,
        reason: reason.to_string(),
        changed,
        compromised_key,
    })
}

/// The serial marker to revoke: the one of `ca_arn`, or the only one.
pub async fn find_marker(
    registry: &Registry,
    serial: &Serial,
    ca_arn: Option<&str>,
) -> Result<SerialRecord> {
    let markers = registry.by_serial(serial).await?;
    match (markers.len(), ca_arn) {
        (0, _) => Err(Error::Registry(format!(
            "serial {serial} is not in registry table '{}'",
            registry.table()
        ))),
        (_, Some(ca)) => markers
            .iter()
            .find(|m| m.ca_arn == ca)
            .cloned()
            .ok_or_else(|| {
                Error::Registry(format!(
                    "serial {serial} was not issued by CA {ca} (per the registry)"
                ))
            }),
        (1, None) => Ok(markers[0].clone()),
        (_, None) => Err(Error::input(format!(
            "serial {serial} was issued by {} CAs: pass --ca-arn",
            markers.len()
        ))),
    }
}

/// Records the public key of `marker`'s certificate as compromised; returns its SPKI SHA-256.
/// The certificate comes from the device's history item (which holds the PEM), or from AWS
/// (GetCertificate) when the history has no PEM.
async fn mark_key_compromised(
    clients: &AwsClients,
    registry: &Registry,
    marker: &SerialRecord,
    st: &DeviceState,
) -> Result<String> {
    let recorded = st
        .history
        .iter()
        .find(|c| c.serial == marker.serial && c.ca_arn == marker.ca_arn)
        .and_then(|c| c.cert_pem.clone());
    let pem = match recorded {
        Some(p) => p,
        None => clients
            .pca
            .get_certificate()
            .certificate_authority_arn(&marker.ca_arn)
            .certificate_arn(&marker.cert_arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(clients, Service::Pca, "GetCertificate", e))?
            .certificate()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::aws(format!(
                    "GetCertificate returned no certificate for serial {}",
                    marker.serial
                ))
            })?,
    };
    let spki_sha256 = sha256_hex(&cert_facts(&pem)?.spki);
    let key = CompromisedKey {
        spki_sha256: spki_sha256.clone(),
        serial: marker.serial.clone(),
        ca_arn: marker.ca_arn.clone(),
        device_id: marker.device_id.clone(),
        recorded_at: rfc3339(OffsetDateTime::now_utc()),
    };
    registry.record_compromised_key(&key).await?;
    Ok(spki_sha256)
}
