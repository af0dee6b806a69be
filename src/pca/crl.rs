//! `pca crl`: the CA's current CRL, fetched from its S3 bucket and checked against the CA certificate.
//!
//! Where: DescribeCertificateAuthority's `RevocationConfiguration.CrlConfiguration` (Enabled,
//! S3BucketName) and PCA's object key `crl/<ca-id>.crl`. The CRL must be issued by the CA (issuer =
//! the CA certificate's subject) and its signature must verify with the CA certificate's public key;
//! anything else is an error, not a report. S3 is reached over the same AWS configuration as the other
//! clients (`AWS_ENDPOINT_URL`, with path-style addressing when an endpoint URL is set: the local
//! stand-in has no per-bucket host names).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::{Error, Result};
use crate::pca::aws::{map_sdk_error, AwsClients, Service};
use crate::pca::ids::{CaArn, Serial};
use crate::pca::revoke::REASONS;
use crate::pca::s3::{self, NO_SUCH_KEY};

/// Largest CRL accepted (a CRL entry is ~50 bytes: 2 million revocations).
pub const MAX_CRL_BYTES: usize = 100 * 1024 * 1024;

/// Where a CA publishes its CRL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlLocation {
    /// The CRL bucket.
    pub bucket: String,
    /// The object key, `crl/<ca-id>.crl`.
    pub key: String,
}

/// One serial's state in the CRL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SerialStatus {
    /// The serial asked about (normalised hex).
    pub serial: String,
    /// Listed in the CRL.
    pub revoked: bool,
    /// The CRL reason (`key-compromise`…; `unspecified` when the entry has none).
    pub reason: Option<String>,
    /// The revocation date (RFC 3339).
    pub revocation_date: Option<String>,
}

/// What `pca crl` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlInfo {
    /// Where the CRL was read.
    #[serde(flatten)]
    pub location: CrlLocation,
    /// Issuer (RFC 4514), the CA certificate's subject.
    pub issuer: String,
    /// The CRL number (decimal), if present.
    pub crl_number: Option<String>,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339), if present.
    pub next_update: Option<String>,
    /// nextUpdate has passed: relying parties should no longer trust this CRL.
    pub stale: bool,
    /// Number of revoked certificates listed.
    pub revoked_count: usize,
    /// The signature verified with the CA certificate's public key (always true: otherwise an error).
    pub signature_verified: bool,
    /// `--serial`'s state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialStatus>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn reason_name(code: u8) -> String {
    let aws = match code {
        1 => "KEY_COMPROMISE",
        2 => "CERTIFICATE_AUTHORITY_COMPROMISE",
        3 => "AFFILIATION_CHANGED",
        4 => "SUPERSEDED",
        5 => "CESSATION_OF_OPERATION",
        9 => "PRIVILEGE_WITHDRAWN",
        10 => "A_A_COMPROMISE",
        0 => "UNSPECIFIED",
        other => return format!("reason-code-{other}"),
    };
    REASONS
        .iter()
        .find(|(_, a)| *a == aws)
        .map(|(cli, _)| cli.to_string())
        .unwrap_or_else(|| aws.to_string())
}

/// Checks `der` against the CA certificate and reads it: issuer, number, dates, entries, `serial`.
pub fn inspect(
    der: &[u8],
    ca_pem: &str,
    location: CrlLocation,
    serial: Option<&Serial>,
    now: OffsetDateTime,
) -> Result<CrlInfo> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| {
        Error::Certificate(format!(
            "s3://{}/{} is not a DER CRL: {e}",
            location.bucket, location.key
        ))
    })?;
    let ca_der = pem::parse(ca_pem.as_bytes())
        .map_err(|e| Error::Certificate(format!("the CA certificate is not PEM: {e}")))?;
    let (_, ca) = X509Certificate::from_der(ca_der.contents())
        .map_err(|e| Error::Certificate(format!("cannot parse the CA certificate: {e}")))?;
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(Error::Certificate(format!(
            "the CRL at s3://{}/{} is issued by '{}', not by this CA ('{}')",
            location.bucket,
            location.key,
            crl.issuer(),
            ca.subject()
        )));
    }
    crl.verify_signature(ca.public_key()).map_err(|e| {
        Error::Certificate(format!(
            "the CRL at s3://{}/{} does not verify with the CA certificate's key: {e}",
            location.bucket, location.key
        ))
    })?;
    let next = crl.next_update().map(|t| t.to_datetime());
    let status = serial.map(|s| {
        let hit = crl
            .iter_revoked_certificates()
            .find(|r| Serial::from_bytes(r.raw_serial()) == *s);
        SerialStatus {
            serial: s.as_str().to_string(),
            revoked: hit.is_some(),
            reason: hit.map(|r| reason_name(r.reason_code().map(|(_, c)| c.0).unwrap_or(0))),
            revocation_date: hit.map(|r| rfc3339(r.revocation_date.to_datetime())),
        }
    });
    Ok(CrlInfo {
        location,
        issuer: crl.issuer().to_string(),
        crl_number: crl.crl_number().map(|n| n.to_string()),
        this_update: rfc3339(crl.last_update().to_datetime()),
        next_update: next.map(rfc3339),
        stale: next.is_some_and(|n| n < now),
        revoked_count: crl.iter_revoked_certificates().count(),
        signature_verified: true,
        serial: status,
    })
}

/// The CA's CRL location, from DescribeCertificateAuthority; an error when CRLs are off.
pub async fn locate(clients: &AwsClients, arn: &CaArn) -> Result<CrlLocation> {
    let out = clients
        .pca
        .describe_certificate_authority()
        .certificate_authority_arn(arn.as_str())
        .send()
        .await
        .map_err(|e| map_sdk_error(clients, Service::Pca, "DescribeCertificateAuthority", e))?;
    let crl = out
        .certificate_authority()
        .and_then(|ca| ca.revocation_configuration())
        .and_then(|r| r.crl_configuration());
    let bucket = match crl {
        Some(c) if c.enabled() => c.s3_bucket_name().map(str::to_string),
        _ => None,
    };
    let bucket = bucket.ok_or_else(|| {
        Error::aws(format!(
            "CA {arn} publishes no CRL: its RevocationConfiguration does not enable a CRL in an S3 bucket"
        ))
    })?;
    let id = arn.as_str().rsplit('/').next().unwrap_or_default();
    Ok(CrlLocation {
        bucket,
        key: format!("crl/{id}.crl"),
    })
}

/// The CA certificate (PEM), from GetCertificateAuthorityCertificate.
pub async fn ca_certificate(clients: &AwsClients, arn: &CaArn) -> Result<String> {
    let out = clients
        .pca
        .get_certificate_authority_certificate()
        .certificate_authority_arn(arn.as_str())
        .send()
        .await
        .map_err(|e| {
            map_sdk_error(
                clients,
                Service::Pca,
                "GetCertificateAuthorityCertificate",
                e,
            )
        })?;
    out.certificate()
        .map(str::to_string)
        .ok_or_else(|| Error::aws(format!("CA {arn} has no certificate")))
}

/// GetObject of the CRL, bounded by [`MAX_CRL_BYTES`].
pub async fn download(s3: &aws_sdk_s3::Client, loc: &CrlLocation) -> Result<Vec<u8>> {
    match s3::get_bounded(s3, &loc.bucket, &loc.key, MAX_CRL_BYTES).await {
        Ok(o) => Ok(o.bytes),
        Err(e) if e.aws_code() == Some(NO_SUCH_KEY) => Err(e.reword_aws(|_| {
            format!(
                "no CRL at s3://{}/{} yet: PCA writes it when the CA becomes ACTIVE with CRLs enabled",
                loc.bucket, loc.key
            )
        })),
        Err(e) => Err(e),
    }
}

/// Locates, downloads and inspects the CA's CRL: (report, DER bytes).
pub async fn fetch(
    clients: &AwsClients,
    arn: &CaArn,
    serial: Option<&Serial>,
) -> Result<(CrlInfo, Vec<u8>)> {
    let loc = locate(clients, arn).await?;
    let ca_pem = ca_certificate(clients, arn).await?;
    let der = download(&s3::client().await, &loc).await?;
    let info = inspect(&der, &ca_pem, loc, serial, OffsetDateTime::now_utc())?;
    Ok((info, der))
}

/// Polls the CA's CRL until it lists `serial` (`pca revoke --wait-crl`): first after 1 s, then
/// doubling up to 30 s, until `timeout`. A CRL not written yet counts as not listing it; any other
/// failure (a CRL that does not verify, CRLs disabled) ends the wait at once. `on_wait` is told
/// each time the CRL was read without the serial (its number and thisUpdate).
pub async fn wait_listed(
    clients: &AwsClients,
    arn: &CaArn,
    serial: &Serial,
    timeout: std::time::Duration,
    mut on_wait: impl FnMut(&CrlInfo),
) -> Result<CrlInfo> {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + timeout;
    let loc = locate(clients, arn).await?;
    let ca_pem = ca_certificate(clients, arn).await?;
    let s3 = s3::client().await;
    let mut pause = Duration::from_secs(1);
    let mut last: Option<CrlInfo> = None;
    loop {
        match download(&s3, &loc).await {
            Ok(der) => {
                let now = OffsetDateTime::now_utc();
                let info = inspect(&der, &ca_pem, loc.clone(), Some(serial), now)?;
                if info.serial.as_ref().is_some_and(|s| s.revoked) {
                    return Ok(info);
                }
                on_wait(&info);
                last = Some(info);
            }
            Err(e) if e.aws_code() == Some(NO_SUCH_KEY) => {}
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(not_listed(&loc, serial, timeout, last.as_ref()));
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

fn not_listed(
    loc: &CrlLocation,
    serial: &Serial,
    timeout: std::time::Duration,
    last: Option<&CrlInfo>,
) -> Error {
    let seen = last.map_or("no CRL was written".to_string(), |i| {
        format!(
            "the last CRL (number {}, thisUpdate {}) does not list it",
            i.crl_number.as_deref().unwrap_or("none"),
            i.this_update
        )
    });
    Error::aws(format!(
        "serial {serial} is revoked, but s3://{}/{} did not list it within {} s: {seen}; PCA updates a CRL about 30 minutes after a revocation (check later with pca crl --serial {serial})",
        loc.bucket,
        loc.key,
        timeout.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_use_the_cli_names() {
        assert_eq!(reason_name(1), "key-compromise");
        assert_eq!(reason_name(4), "superseded");
        assert_eq!(reason_name(0), "unspecified");
        assert_eq!(reason_name(6), "reason-code-6");
    }

    #[test]
    fn garbage_is_not_a_crl() {
        let loc = CrlLocation {
            bucket: "b".into(),
            key: "crl/x.crl".into(),
        };
        let e = inspect(b"not der", "", loc, None, OffsetDateTime::now_utc()).unwrap_err();
        assert!(e.to_string().contains("is not a DER CRL"), "{e}");
    }
}
