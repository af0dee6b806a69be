//! What the issuing CA is: state, key family (→ SigningAlgorithm) and NotAfter.
//!
//! Loaded once per CA (DescribeCertificateAuthority + GetCertificateAuthorityCertificate) and
//! shared by every device issued from it — a batch does not repeat these calls.

use aws_sdk_acmpca::types::{CertificateAuthorityStatus, KeyAlgorithm, SigningAlgorithm};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, Service};
use crate::pca::ids::CaArn;

/// The facts about a CA that issuance needs.
#[derive(Clone, Debug)]
pub struct CaInfo {
    /// ARN.
    pub arn: CaArn,
    /// Key algorithm (AWS enum name, e.g. `EC_prime256v1`).
    pub key_algorithm: String,
    /// Signing algorithm that matches the key family.
    pub signing_algorithm: SigningAlgorithm,
    /// The CA certificate's NotAfter.
    pub not_after: OffsetDateTime,
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The CA's own chain up to the root (PEM, may be empty for a root CA).
    pub chain_pem: String,
}

/// The signing algorithm for a CA key family.
pub fn signing_algorithm_for(k: &KeyAlgorithm) -> Result<SigningAlgorithm> {
    Ok(match k {
        KeyAlgorithm::EcPrime256v1 => SigningAlgorithm::Sha256Withecdsa,
        KeyAlgorithm::EcSecp384r1 => SigningAlgorithm::Sha384Withecdsa,
        KeyAlgorithm::EcSecp521r1 => SigningAlgorithm::Sha512Withecdsa,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            SigningAlgorithm::Sha256Withrsa
        }
        KeyAlgorithm::Sm2 => SigningAlgorithm::Sm3Withsm2,
        KeyAlgorithm::MlDsa44 => SigningAlgorithm::MlDsa44,
        KeyAlgorithm::MlDsa65 => SigningAlgorithm::MlDsa65,
        KeyAlgorithm::MlDsa87 => SigningAlgorithm::MlDsa87,
        other => {
            return Err(Error::aws(format!(
                "the CA's key algorithm {} is not supported by this tool",
                other.as_str()
            )))
        }
    })
}

impl CaInfo {
    /// Describes the CA; fails (one line) if it is unknown, not ACTIVE, or its certificate is
    /// unreadable.
    pub async fn load(clients: &AwsClients, arn: &CaArn) -> Result<Self> {
        if arn.region() != clients.region {
            return Err(Error::input(format!(
                "CA ARN is in region {} but the configured AWS region is {} (set AWS_REGION={})",
                arn.region(),
                clients.region,
                arn.region()
            )));
        }
        let out = clients
            .pca
            .describe_certificate_authority()
            .certificate_authority_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| {
                let unknown = error_code(&e) == Some("ResourceNotFoundException");
                let err = map_sdk_error(clients, Service::Pca, "DescribeCertificateAuthority", e);
                if unknown {
                    err.reword_aws(|_| {
                        format!(
                            "unknown CA: no certificate authority {arn} in {}",
                            clients.region
                        )
                    })
                } else {
                    err
                }
            })?;
        let ca = out.certificate_authority().ok_or_else(|| {
            Error::aws(format!(
                "DescribeCertificateAuthority returned no CA for {arn}"
            ))
        })?;
        let status = ca
            .status()
            .cloned()
            .unwrap_or(CertificateAuthorityStatus::from("UNKNOWN"));
        if status != CertificateAuthorityStatus::Active {
            return Err(Error::aws(format!(
                "CA {arn} is {}, not ACTIVE: it cannot issue certificates",
                status.as_str()
            )));
        }
        let key_alg = ca
            .certificate_authority_configuration()
            .map(|c| c.key_algorithm().clone())
            .ok_or_else(|| Error::aws(format!("CA {arn} has no configuration")))?;
        let signing_algorithm = signing_algorithm_for(&key_alg)?;

        let cert = clients
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
        let cert_pem = cert
            .certificate()
            .ok_or_else(|| Error::aws(format!("CA {arn} has no certificate")))?
            .to_string();
        let not_after = pem_not_after(&cert_pem).map_err(|e| {
            Error::Certificate(format!("cannot read the certificate of CA {arn}: {e}"))
        })?;
        Ok(CaInfo {
            arn: arn.clone(),
            key_algorithm: key_alg.as_str().to_string(),
            signing_algorithm,
            not_after,
            cert_pem,
            chain_pem: cert.certificate_chain().unwrap_or("").to_string(),
        })
    }
}

/// NotAfter of the first certificate in a PEM string.
pub fn pem_not_after(pem_str: &str) -> std::result::Result<OffsetDateTime, String> {
    let p = pem::parse(pem_str.as_bytes()).map_err(|e| e.to_string())?;
    let (_, c) = x509_parser::parse_x509_certificate(p.contents()).map_err(|e| e.to_string())?;
    Ok(c.validity().not_after.to_datetime())
}
