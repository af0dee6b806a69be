//! Certificate parsing and the identifiers every ceremony step shares: fingerprints, serials,
//! key identifiers, reading a PEM certificate, the root key of a certificate.

use std::path::Path;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::cert_err;
use super::transcript::SealKey;
use crate::error::{Error, Result};
use crate::hsm::ec;

/// SHA-256 hex, upper-case colon-separated (as `openssl x509 -fingerprint -sha256` prints it).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// SHA-256 hex (lower case, no separators).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A random positive 20-byte serial (top bit clear, first byte non-zero: always 20 bytes in DER).
pub fn random_serial() -> Vec<u8> {
    let mut s: [u8; 20] = rand::random();
    s[0] = (s[0] & 0x7f).max(1);
    s.to_vec()
}

/// Subject key identifier: RFC 7093 method 1 (SHA-256 of the subjectPublicKey bits, first 160 bits).
pub fn key_identifier(subject_public_key: &[u8]) -> Vec<u8> {
    Sha256::digest(subject_public_key)[..20].to_vec()
}

/// What a parsed certificate says (for checks and the transcript).
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// DER.
    pub der: Vec<u8>,
    /// Subject as openssl-like text.
    pub subject: String,
    /// Issuer as text.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// basicConstraints (ca, pathLen).
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// SKI, hex.
    pub ski: Option<String>,
}

/// Parses a certificate DER.
pub fn cert_info(der: &[u8]) -> Result<CertInfo> {
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| cert_err("not a valid X.509 certificate", e))?;
    let ts = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t).map_err(|e| cert_err("certificate time", e))
    };
    let bc = c
        .basic_constraints()
        .map_err(|e| cert_err("basicConstraints", e))?
        .map(|b| (b.value.ca, b.value.path_len_constraint));
    let ski = c
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                Some(hex::encode(k.0))
            }
            _ => None,
        });
    Ok(CertInfo {
        der: der.to_vec(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: hex::encode(c.raw_serial()),
        not_before: ts(c.validity().not_before.timestamp())?,
        not_after: ts(c.validity().not_after.timestamp())?,
        basic_constraints: bc,
        spki: c.public_key().raw.to_vec(),
        ski,
    })
}

/// Reads a PEM certificate file: its DER.
pub fn read_cert_pem(path: &Path) -> Result<(String, Vec<u8>)> {
    let text = crate::fsutil::read_text_bounded(path, "certificate", 64 * 1024)?;
    let p = pem::parse(&text)
        .map_err(|_| Error::input(format!("{} is not a PEM certificate", path.display())))?;
    if p.tag() != "CERTIFICATE" {
        return Err(Error::input(format!(
            "{} holds a PEM '{}', not a CERTIFICATE",
            path.display(),
            p.tag()
        )));
    }
    Ok((text, p.contents().to_vec()))
}

/// The EC public key (curve, SEC1 point) of a DER SubjectPublicKeyInfo.
pub fn spki_ec_key(spki: &[u8]) -> Result<SealKey> {
    let pem_text = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.to_vec()));
    let (curve, point) = ec::parse_spki_pem(&pem_text).map_err(|_| {
        Error::Unsupported("the root certificate's key is not an EC P-256 or P-384 key".into())
    })?;
    Ok(SealKey { curve, point })
}
