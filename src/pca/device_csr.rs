//! Device-generated keys: a CSR made on the device (secure element, TPM) and handed over as a file,
//! checked before anything is sent to AWS.
//!
//! A device CSR is accepted only if: the file holds exactly one request and nothing after it, at
//! most [`crate::pca::csr::MAX_CSR_BYTES`] (PEM or DER); its signature verifies with its own key (proof of
//! possession); the key is EC P-256 or P-384; the subject holds only a CN; the SANs are DNS names
//! and URIs; and subject and SANs equal what the manifest row (or the command line) gives, field by
//! field — a field not given is taken from the CSR and validated like a given one ([`CsrRequest::
//! validate`]); a SPIFFE ID is the only URI SAN. In a manifest the path is relative to the
//! manifest's directory and must stay inside it (no absolute path, no `..`, no symlink out).

use std::path::{Component, Path, PathBuf};

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};
use crate::pca::csr::{Csr, CsrRequest};
use crate::pca::ids::printable;

/// Reads a device CSR file and checks it against `want` (the row's or the flags' subject; a
/// field left empty is taken from the CSR). Returns the CSR and the subject it carries.
pub fn load_device_csr(path: &Path, want: &CsrRequest) -> Result<(Csr, CsrRequest)> {
    let csr = Csr::from_file(path)?;
    let what = path.display().to_string();
    let subject = check_device_csr(&csr, want, &what)?;
    Ok((csr, subject))
}

/// The device-key checks on a parsed CSR (its signature was verified by [`Csr::from_der`]).
pub fn check_device_csr(csr: &Csr, want: &CsrRequest, what: &str) -> Result<CsrRequest> {
    let (_, req) = X509CertificationRequest::from_der(&csr.der)
        .map_err(|_| Error::input(format!("{what} is not a CSR: not a PKCS#10 request")))?;
    let info = &req.certification_request_info;
    check_ec_key(&info.subject_pki, what)?;
    let mut cn = None;
    for attr in info.subject.iter_attributes() {
        if *attr.attr_type() != x509_parser::oid_registry::OID_X509_COMMON_NAME || cn.is_some() {
            return Err(Error::input(format!(
                "{what}: the CSR's subject '{}' holds more than a CN: a device CSR's subject is one CN (or empty)",
                printable(&csr.subject)
            )));
        }
        let v = attr
            .as_str()
            .map_err(|_| Error::input(format!("{what}: the CSR's CN is not a text string")))?;
        cn = Some(v.to_string());
    }
    let (san_dns, san_uri) = csr_sans(&req, what)?;
    let got = CsrRequest {
        cn,
        san_dns,
        san_uri,
    };
    compare(
        what,
        "CN",
        &want.cn.iter().cloned().collect::<Vec<_>>(),
        &got.cn.iter().cloned().collect::<Vec<_>>(),
    )?;
    compare(what, "DNS SANs", &want.san_dns, &got.san_dns)?;
    compare(what, "URI SANs", &want.san_uri, &got.san_uri)?;
    got.validate()
        .map_err(|e| Error::input(format!("{what}: {}", e.one_line())))?;
    let spiffe = got.san_uri.iter().any(|u| u.starts_with("spiffe://"));
    if spiffe && got.san_uri.len() > 1 {
        return Err(Error::input(format!(
            "{what}: the CSR has {} URI SANs, one of them a SPIFFE ID: an X.509-SVID carries exactly one URI SAN",
            got.san_uri.len()
        )));
    }
    Ok(got)
}

/// A field given (non-empty `want`) must equal the CSR's, as a set.
fn compare(what: &str, field: &str, want: &[String], got: &[String]) -> Result<()> {
    if want.is_empty() {
        return Ok(());
    }
    let mut a = want.to_vec();
    let mut b = got.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(Error::input(format!(
            "{what}: the CSR's {field} [{}] differ from the requested [{}]",
            printable(&b.join(", ")),
            printable(&a.join(", "))
        )));
    }
    Ok(())
}

/// The CSR's requested DNS and URI SANs; any other kind is refused.
fn csr_sans(req: &X509CertificationRequest<'_>, what: &str) -> Result<(Vec<String>, Vec<String>)> {
    let (mut dns, mut uri) = (Vec::new(), Vec::new());
    for e in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = e {
            for g in &san.general_names {
                match g {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::URI(u) => uri.push(u.to_string()),
                    other => {
                        return Err(Error::input(format!(
                            "{what}: SAN {} not accepted in a device CSR (DNS names and URIs only)",
                            printable(&format!("{other:?}"))
                        )))
                    }
                }
            }
        }
    }
    Ok((dns, uri))
}

/// A device key is EC P-256 or P-384 (what secure elements and TPMs make; RSA is refused here).
fn check_ec_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>, what: &str) -> Result<()> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let ok = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && curve
            .as_ref()
            .is_some_and(|c| *c == OID_EC_P256 || *c == OID_NIST_EC_P384);
    if ok {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "{what}: a device key must be EC P-256 or P-384 (the CSR's key: algorithm {}{})",
        spki.algorithm.algorithm.to_id_string(),
        curve
            .map(|c| format!(", curve {}", c.to_id_string()))
            .unwrap_or_default()
    )))
}

/// Resolves a manifest's `csr` path: relative, no `..`, and (symlinks followed) inside `base`.
pub fn resolve_in_dir(base: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || p.is_absolute() {
        return Err(Error::input(format!(
            "csr path '{}' must be relative to the manifest's directory",
            printable(rel)
        )));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::input(format!(
            "csr path '{}' must stay inside the manifest's directory (no '..')",
            printable(rel)
        )));
    }
    let base_real = base
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot resolve {}", base.display()), e))?;
    let full = base.join(p);
    let real = full
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot open CSR {}", full.display()), e))?;
    if !real.starts_with(&base_real) {
        return Err(Error::input(format!(
            "csr path '{}' leads outside the manifest's directory (to {})",
            printable(rel),
            real.display()
        )));
    }
    Ok(full)
}
