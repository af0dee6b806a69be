//! CSRs: built and signed by an HSM key through rcgen's signer seam, or read from a file and
//! checked (parse, signature, subject-or-SAN) before anything is sent to AWS.

use std::path::Path;

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};
use crate::fsutil::{read_file_bounded, single_pem};

/// Largest CSR accepted, in bytes: AWS Private CA's limit on IssueCertificate's `Csr` (the PEM it
/// is sent as). A CSR file (PEM or DER) larger than this is refused before it is parsed.
pub const MAX_CSR_BYTES: u64 = 32 * 1024;

/// Smallest and largest RSA modulus accepted in a CSR, in bits.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Whether `d` is a DNS host name: labels of 1-63 letters, digits and hyphens (not at either
/// end of a label), no empty label, at most 253 characters; a leftmost `*` label is a wildcard.
pub fn is_dns_name(d: &str) -> bool {
    let body = d.strip_prefix("*.").unwrap_or(d);
    !body.is_empty()
        && d.len() <= 253
        && body.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A checked CSR.
#[derive(Clone, Debug)]
pub struct Csr {
    /// DER.
    pub der: Vec<u8>,
    /// PEM (what IssueCertificate takes).
    pub pem: String,
    /// The DER certificationRequestInfo (what the idempotency token hashes).
    pub tbs: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Subject, RFC 4514-ish (empty when the subject is empty).
    pub subject: String,
    /// SANs as `DNS:x`, `URI:y`, `IP:z`, `email:w`.
    pub sans: Vec<String>,
}

/// What to put in a CSR.
#[derive(Clone, Debug, Default)]
pub struct CsrRequest {
    /// Common name; `None`/empty = empty subject (then a SAN is required).
    pub cn: Option<String>,
    /// DNS SANs.
    pub san_dns: Vec<String>,
    /// URI SANs (e.g. `spiffe://trust.domain/device/x`).
    pub san_uri: Vec<String>,
}

impl CsrRequest {
    /// Checks the request (before touching the HSM).
    pub fn validate(&self) -> Result<()> {
        let cn_empty = self.cn.as_deref().is_none_or(str::is_empty);
        if cn_empty && self.san_dns.is_empty() && self.san_uri.is_empty() {
            return Err(Error::input(
                "an empty subject needs at least one SAN: pass --cn NAME or --san-dns / --san-uri",
            ));
        }
        if let Some(cn) = &self.cn {
            if cn.len() > 64 {
                return Err(Error::input(format!(
                    "--cn is {} characters; X.509 allows at most 64",
                    cn.len()
                )));
            }
        }
        for d in &self.san_dns {
            if !is_dns_name(d) {
                return Err(Error::input(format!(
                    "invalid --san-dns '{}': a DNS name is dot-separated labels of 1-63 letters, digits and hyphens (at most 253 characters)",
                    crate::pca::ids::printable(d)
                )));
            }
        }
        for u in &self.san_uri {
            let scheme_ok = u
                .split_once("://")
                .is_some_and(|(s, rest)| !s.is_empty() && !rest.is_empty());
            if !scheme_ok || !u.is_ascii() || u.chars().any(|c| c.is_ascii_whitespace()) {
                return Err(Error::input(format!(
                    "invalid --san-uri '{u}': expected scheme://… (e.g. spiffe://example.org/device/1)"
                )));
            }
        }
        Ok(())
    }

    fn params(&self) -> Result<CertificateParams> {
        self.validate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = self.cn.as_deref().filter(|c| !c.is_empty()) {
            dn.push(DnType::CommonName, cn);
        }
        p.distinguished_name = dn;
        let ia5 = |s: &str| {
            rcgen::string::Ia5String::try_from(s)
                .map_err(|e| Error::input(format!("invalid SAN '{s}': {e}")))
        };
        let mut sans = Vec::new();
        for d in &self.san_dns {
            sans.push(SanType::DnsName(ia5(d)?));
        }
        for u in &self.san_uri {
            sans.push(SanType::URI(ia5(u)?));
        }
        p.subject_alt_names = sans;
        Ok(p)
    }
}

/// Builds a CSR signed by `key` (e.g. an `HsmSigner`: the private key never leaves the HSM).
pub fn build_csr(req: &CsrRequest, key: &impl rcgen::SigningKey) -> Result<Csr> {
    let params = req.params()?;
    let csr = params
        .serialize_request(key)
        .map_err(|e| Error::Certificate(format!("cannot build the CSR: {e}")))?;
    Csr::from_der(csr.der().as_ref(), "the generated CSR")
}

impl Csr {
    /// Reads a CSR file (PEM `CERTIFICATE REQUEST` or DER, at most [`MAX_CSR_BYTES`], exactly
    /// one request) and checks it.
    pub fn from_file(path: &Path) -> Result<Csr> {
        let bytes = read_file_bounded(path, "CSR file", MAX_CSR_BYTES)?;
        Csr::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses PEM or DER.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Csr> {
        let looks_pem = bytes
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(11)
            .eq(b"-----BEGIN ".iter());
        if looks_pem {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::input(format!("{what} is not a CSR: PEM that is not text")))?;
            let p = single_pem(text, what)?;
            if p.tag() != "CERTIFICATE REQUEST" && p.tag() != "NEW CERTIFICATE REQUEST" {
                return Err(Error::input(format!(
                    "{what} is not a CSR: PEM block is '{}', expected 'CERTIFICATE REQUEST'",
                    p.tag()
                )));
            }
            Csr::from_der(p.contents(), what)
        } else {
            Csr::from_der(bytes, what)
        }
    }

    /// Parses DER and checks: well-formed, signature verifies, subject or SAN present.
    pub fn from_der(der: &[u8], what: &str) -> Result<Csr> {
        let (rest, req) = X509CertificationRequest::from_der(der)
            .map_err(|_| Error::input(format!("{what} is not a CSR: not a PKCS#10 request")))?;
        if !rest.is_empty() {
            return Err(Error::input(format!(
                "{what} is not a CSR: {} trailing bytes after the request",
                rest.len()
            )));
        }
        // The key type first: a key AWS would not take (RSA-1024, P-521) is named as such, not
        // reported as a signature that "does not verify".
        check_key_type(&req.certification_request_info.subject_pki, what)?;
        req.verify_signature().map_err(|e| {
            Error::input(format!(
                "{what}: the CSR's signature does not verify with its own public key ({e})"
            ))
        })?;
        let info = &req.certification_request_info;
        let subject = info.subject.to_string();
        let mut sans = Vec::new();
        if let Some(exts) = req.requested_extensions() {
            for e in exts {
                if let ParsedExtension::SubjectAlternativeName(san) = e {
                    for g in &san.general_names {
                        sans.push(match g {
                            GeneralName::DNSName(d) => format!("DNS:{d}"),
                            GeneralName::URI(u) => format!("URI:{u}"),
                            GeneralName::RFC822Name(m) => format!("email:{m}"),
                            GeneralName::IPAddress(ip) => format!("IP:{}", hex::encode(ip)),
                            other => format!("{other:?}"),
                        });
                    }
                }
            }
        }
        if info.subject.iter().next().is_none() && sans.is_empty() {
            return Err(Error::input(format!(
                "{what}: the CSR has an empty subject and no subjectAltName (AWS Private CA needs one of them)"
            )));
        }
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()));
        if pem.len() as u64 > MAX_CSR_BYTES {
            return Err(Error::input(format!(
                "{what}: the CSR is {} bytes as PEM, more than AWS Private CA's limit of {MAX_CSR_BYTES}",
                pem.len()
            )));
        }
        Ok(Csr {
            der: der.to_vec(),
            pem,
            tbs: info.raw.to_vec(),
            spki: info.subject_pki.raw.to_vec(),
            subject,
            sans,
        })
    }
}

/// Refuses a public key that is not EC P-256 / P-384 or RSA 2048-4096 bits.
fn check_key_type(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>, what: &str) -> Result<()> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    };
    let alg = &spki.algorithm.algorithm;
    let refuse = |key: String| {
        Err(Error::Unsupported(format!(
            "{what}: key type not accepted: {key} (accepted: EC P-256, EC P-384, RSA 2048-4096)"
        )))
    };
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => Ok(()),
            Some(c) if c.to_id_string() == "1.3.132.0.35" => refuse("EC P-521".into()),
            Some(c) => refuse(format!("EC curve {}", c.to_id_string())),
            None => refuse("EC key without a named curve".into()),
        };
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = spki
            .parsed()
            .map_err(|e| Error::input(format!("{what}: the CSR's RSA key does not parse ({e})")))?
            .key_size();
        return if RSA_BITS.contains(&bits) {
            Ok(())
        } else {
            refuse(format!("RSA {bits} bits"))
        };
    }
    refuse(format!("algorithm {}", alg.to_id_string()))
}

/// Parsed facts about an issued certificate.
#[derive(Clone, Debug)]
pub struct CertFacts {
    /// Serial (DER INTEGER content bytes).
    pub serial: Vec<u8>,
    /// NotBefore.
    pub not_before: time::OffsetDateTime,
    /// NotAfter.
    pub not_after: time::OffsetDateTime,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

/// Parses the first certificate of a PEM string.
pub fn cert_facts(pem_str: &str) -> Result<CertFacts> {
    let p = pem::parse(pem_str.as_bytes())
        .map_err(|e| Error::Certificate(format!("issued certificate is not PEM: {e}")))?;
    let (_, c) = x509_parser::parse_x509_certificate(p.contents())
        .map_err(|e| Error::Certificate(format!("issued certificate does not parse: {e}")))?;
    Ok(CertFacts {
        serial: c.raw_serial().to_vec(),
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
        spki: c.public_key().raw.to_vec(),
    })
}
