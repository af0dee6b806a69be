//! `key-ceremony verify-transcript`: a transcript file checked against a root certificate (the
//! given one, or the one the transcript records).

use std::path::Path;

use super::transcript::{self, Transcript};
use super::x509::{cert_info, read_cert_pem, sha256_hex, spki_ec_key, CertInfo};
use crate::error::{Error, Result};

/// Reads and verifies a transcript against a root certificate (`Some`) or the root certificate it
/// records itself (`None`). With a certificate, the transcript must record that same certificate.
pub fn verify_transcript_file(
    path: &Path,
    cert: Option<&Path>,
) -> Result<(Transcript, transcript::VerifyReport, CertInfo)> {
    let text = transcript::read_file(path)?;
    let t = Transcript::parse(&text)?;
    let recorded_pem = transcript::recorded_root_pem(&t)?;
    let der = match cert {
        Some(c) => read_cert_pem(c)?.1,
        None => {
            let pem_text = recorded_pem.clone().ok_or_else(|| {
                Error::Ceremony(
                    "the transcript records no root certificate: pass --cert root.pem".into(),
                )
            })?;
            pem::parse(&pem_text)
                .map_err(|_| {
                    Error::Ceremony("the transcript's root certificate is not PEM".into())
                })?
                .contents()
                .to_vec()
        }
    };
    let info = cert_info(&der)?;
    if let (Some(c), Some(fp)) = (cert, transcript::recorded_root_fingerprint(&t)?) {
        if fp != sha256_hex(&der) {
            return Err(foreign_cert(&t, recorded_pem.as_deref(), c, &fp, &der));
        }
    }
    let key = spki_ec_key(&info.spki)?;
    let report = transcript::verify(&t, &key)?;
    Ok((t, report, info))
}

/// The error for a `--cert` that is not the root the transcript records: when the transcript
/// verifies against its own recorded root, it is intact and the certificate is simply another
/// root's (not tampering); otherwise the tampering error is the one that matters.
fn foreign_cert(
    t: &Transcript,
    recorded_pem: Option<&str>,
    cert: &Path,
    recorded_fp: &str,
    given: &[u8],
) -> Error {
    let own_key = recorded_pem
        .and_then(|p| pem::parse(p).ok())
        .ok_or_else(|| Error::Ceremony("the transcript's root certificate is not PEM".into()))
        .and_then(|p| cert_info(p.contents()))
        .and_then(|i| spki_ec_key(&i.spki));
    match own_key.and_then(|k| transcript::verify(t, &k)) {
        Ok(_) => Error::Ceremony(format!(
            "{} is another root's certificate: the transcript is intact and belongs to the root with SHA-256 {recorded_fp}, not {} (pass that root's certificate)",
            cert.display(),
            sha256_hex(given)
        )),
        Err(e) => e,
    }
}
