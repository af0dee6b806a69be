//! The subject of a renewed certificate: the CN and the DNS and URI SANs of the certificate it
//! replaces, so that a renewal keeps the device's identity.

use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};
use crate::pca::csr::CsrRequest;
use crate::pca::registry::{CertRecord, DeviceState};

/// CN and SANs of `old`'s certificate (from the device's history item).
pub fn of_certificate(st: &DeviceState, old: &CertRecord) -> Result<CsrRequest> {
    let pem_text = st
        .history
        .iter()
        .find(|h| h.generation == old.generation)
        .and_then(|h| h.cert_pem.as_deref())
        .ok_or_else(|| {
            Error::Registry(format!(
                "registry inconsistency: device {} has no certificate PEM for generation {}",
                old.device_id, old.generation
            ))
        })?;
    let bad =
        |e: String| Error::Certificate(format!("current certificate of {}: {e}", old.device_id));
    let p = pem::parse(pem_text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, c) =
        x509_parser::parse_x509_certificate(p.contents()).map_err(|e| bad(e.to_string()))?;
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let mut req = CsrRequest {
        cn,
        ..CsrRequest::default()
    };
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => req.san_dns.push(d.to_string()),
                GeneralName::URI(u) => req.san_uri.push(u.to_string()),
                _ => {}
            }
        }
    }
    Ok(req)
}
