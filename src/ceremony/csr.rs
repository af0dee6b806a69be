//! The subordinate CA's CSR that `sign-intermediate` signs: PEM framing, PKCS#10 structure, key
//! type, subject and signature, all checked before a token is opened.

use std::path::Path;

use rcgen::CertificateSigningRequestParams;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};

/// Smallest RSA key accepted in a CSR.
pub const MIN_RSA_BITS: usize = 2048;

/// The subject public key of a CSR, for rcgen: the algorithm is chosen from the key (not from the
/// CSR's signature algorithm, which rcgen would use), so the SPKI is copied exactly.
#[derive(Debug)]
pub(super) struct CsrKey {
    pub(super) raw: Vec<u8>,
    pub(super) alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// The parsed and signature-checked CSR.
pub(super) struct ParsedCsr {
    pub(super) params: CertificateSigningRequestParams,
    pub(super) key: CsrKey,
    pub(super) key_desc: String,
    pub(super) spki: Vec<u8>,
    pub(super) subject: String,
    pub(super) der: Vec<u8>,
}

/// Parses and checks a CSR file exactly as `sign-intermediate` does before it opens a token (PEM
/// framing, PKCS#10 structure, key type, subject, signature) and nothing else: the entry point of
/// the CSR fuzz target.
pub fn check_intermediate_csr(path: &Path) -> Result<()> {
    parse_csr(path).map(|_| ())
}

pub(super) fn parse_csr(path: &Path) -> Result<ParsedCsr> {
    // AWS Private CA's limit on a CSR; the file is read with this bound, never whole.
    const MAX_CSR_BYTES: u64 = 32 * 1024;
    let bytes = crate::fsutil::read_file_bounded(path, "CSR", MAX_CSR_BYTES)?;
    let text = String::from_utf8(bytes).unwrap_or_default();
    if !text.contains("-----BEGIN ") {
        return Err(Error::input(format!(
            "{} is not a PEM certificate request (BEGIN CERTIFICATE REQUEST)",
            path.display()
        )));
    }
    // Exactly one block and nothing after it: never silently the first of two CSRs.
    let p = crate::fsutil::single_pem(&text, &format!("CSR {}", path.display()))?;
    if p.tag() != "CERTIFICATE REQUEST" && p.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(Error::input(format!(
            "{} holds a PEM '{}', not a CERTIFICATE REQUEST",
            path.display(),
            p.tag()
        )));
    }
    let der = p.contents().to_vec();
    let (rest, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| Error::input(format!("{} is not a valid PKCS#10 CSR", path.display())))?;
    if !rest.is_empty() {
        return Err(Error::input(format!(
            "CSR {}: {} trailing bytes after the request inside the PEM block",
            path.display(),
            rest.len()
        )));
    }
    let info = &req.certification_request_info;
    let spki = &info.subject_pki;
    let alg_oid = &spki.algorithm.algorithm;
    let (alg, key_desc): (&'static rcgen::SignatureAlgorithm, String) = if *alg_oid
        == OID_KEY_TYPE_EC_PUBLIC_KEY
    {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "EC P-256".into()),
            Some(c) if c == OID_NIST_EC_P384 => (&rcgen::PKCS_ECDSA_P384_SHA384, "EC P-384".into()),
            other => {
                return Err(Error::Unsupported(format!(
                    "the CSR's EC curve {} is not supported (P-256 or P-384)",
                    other
                        .map(|o| o.to_id_string())
                        .unwrap_or_else(|| "?".into())
                )))
            }
        }
    } else if *alg_oid == OID_PKCS1_RSAENCRYPTION {
        let bits = spki
            .parsed()
            .map_err(|e| Error::input(format!("the CSR's RSA key does not parse: {e}")))?
            .key_size();
        if bits < MIN_RSA_BITS {
            return Err(Error::Unsupported(format!(
                "the CSR's RSA key has {bits} bits: at least {MIN_RSA_BITS} are required"
            )));
        }
        (&rcgen::PKCS_RSA_SHA256, format!("RSA {bits}"))
    } else {
        return Err(Error::Unsupported(format!(
            "the CSR's key type {} is not supported (EC P-256/P-384 or RSA)",
            alg_oid.to_id_string()
        )));
    };
    if info.subject.iter_attributes().next().is_none() {
        return Err(Error::input(
            "the CSR has an empty subject: a CA certificate needs a subject name",
        ));
    }
    // The signature last: ring refuses some keys (RSA < 2048) with a less helpful error.
    let params =
        CertificateSigningRequestParams::from_der(&der.clone().into()).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => Error::input(format!(
                "the CSR {} has an invalid signature: it was altered or not signed by its key",
                path.display()
            )),
            rcgen::Error::CouldNotParseCertificationRequest => {
                Error::input(format!("{} is not a valid PKCS#10 CSR", path.display()))
            }
            other => Error::input(format!("cannot use the CSR {}: {other}", path.display())),
        })?;
    Ok(ParsedCsr {
        key: CsrKey {
            raw: spki.subject_public_key.data.to_vec(),
            alg,
        },
        spki: spki.raw.to_vec(),
        subject: info.subject.to_string(),
        key_desc,
        params,
        der,
    })
}
