//! `key-ceremony sign-intermediate`: signs a subordinate CA's CSR (e.g. the AWS Private CA
//! intermediate's) with the HSM root key, after re-verifying the transcript, and appends the step
//! and a new seal.

use std::io::Write;
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::config::Validity;
use super::csr::{parse_csr, ParsedCsr};
use super::transcript::Transcript;
use super::verify::verify_transcript_file;
use super::x509::{
    cert_info, fingerprint, key_identifier, random_serial, read_cert_pem, sha256_hex, spki_ec_key,
    CertInfo,
};
use super::{cert_err, now_seconds, rfc3339, say};
use crate::error::{Error, Result};
use crate::fsutil::{check_output, is_stdout, write_atomic};
use crate::hsm::lookup::KeySpec;
use crate::hsm::session::{ConnectOptions, HsmSession};
use crate::hsm::signer::HsmSigner;

/// Steps of `sign-intermediate`.
pub const SIGN_STEPS: usize = 3;

/// Default validity of an intermediate signed by the root.
pub const DEFAULT_INTERMEDIATE_VALIDITY: &str = "10y";

/// Default pathLen of an intermediate (intermediate → issuing CA (0) → leaf).
pub const DEFAULT_INTERMEDIATE_PATH_LEN: u8 = 1;

/// What `sign-intermediate` needs.
#[derive(Debug, Clone)]
pub struct SignIntermediateRequest {
    /// The subordinate CA's CSR (PEM).
    pub csr: PathBuf,
    /// Where the signed certificate goes (must not exist).
    pub out: PathBuf,
    /// The root certificate (PEM).
    pub root_cert: PathBuf,
    /// The ceremony transcript (verified, then appended to).
    pub transcript: PathBuf,
    /// Root key label; `None` = the key that sealed the transcript.
    pub key_label: Option<String>,
    /// Validity of the intermediate (must end within the root's).
    pub validity: Validity,
    /// pathLen of the intermediate.
    pub path_len: u8,
    /// Operators present.
    pub operators: Vec<String>,
}

/// What `sign-intermediate` produced.
#[derive(Debug, Clone)]
pub struct SignIntermediateOutcome {
    /// The certificate file (`-`: the caller prints [`Self::pem`] on stdout).
    pub out: PathBuf,
    /// The certificate (PEM).
    pub pem: String,
    /// Serial (hex).
    pub serial: String,
    /// SHA-256 fingerprint (colon hex).
    pub fingerprint: String,
    /// Transcript head after the new seal.
    pub head: String,
}

/// The root must be a CA whose pathLen leaves room for the intermediate's.
fn check_path_len(req: &SignIntermediateRequest, root: &CertInfo) -> Result<()> {
    match root.basic_constraints {
        Some((true, pl)) => {
            if let Some(pl) = pl {
                if u32::from(req.path_len) >= pl {
                    return Err(Error::input(format!(
                        "--path-len {} is not below the root's pathLen {pl}",
                        req.path_len
                    )));
                }
            }
        }
        _ => {
            return Err(Error::input(format!(
                "{} is not a CA certificate (no basicConstraints CA:TRUE)",
                req.root_cert.display()
            )))
        }
    }
    Ok(())
}

/// The intermediate's validity, from now: it must lie within the root's.
fn intermediate_validity(
    req: &SignIntermediateRequest,
    root: &CertInfo,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let not_before = now_seconds();
    let not_after = req.validity.end(not_before)?;
    if not_after > root.not_after {
        return Err(Error::input(format!(
            "validity {} ends {} after the root certificate ({}): choose a shorter --validity",
            req.validity,
            rfc3339(not_after),
            rfc3339(root.not_after)
        )));
    }
    if not_before < root.not_before {
        return Err(Error::input(format!(
            "the root certificate is not valid before {}",
            rfc3339(root.not_before)
        )));
    }
    Ok((not_before, not_after))
}

/// Signs a subordinate CA CSR with the HSM root key (see the module docs).
pub fn sign_intermediate(
    req: &SignIntermediateRequest,
    opts: &ConnectOptions,
    out: &mut dyn Write,
) -> Result<SignIntermediateOutcome> {
    let n = SIGN_STEPS;
    // Step 1: everything that needs no HSM.
    say(
        out,
        format!("[Step 1/{n}] Check the CSR, the root certificate and the ceremony transcript"),
    )?;
    if !is_stdout(&req.out) {
        check_output(&req.out, false)?;
    }
    let csr = parse_csr(&req.csr)?;
    let (root_pem, root_der) = read_cert_pem(&req.root_cert)?;
    let root = cert_info(&root_der)?;
    check_path_len(req, &root)?;
    let (mut t, report, _) = verify_transcript_file(&req.transcript, Some(&req.root_cert))?;
    let (not_before, not_after) = intermediate_validity(req, &root)?;
    let key_label = req.key_label.clone().unwrap_or(report.key_label.clone());
    let root_key = spki_ec_key(&root.spki)?;
    say(
        out,
        format!(
            "  CSR:          {} ({}, signature OK, SHA-256 {})",
            csr.subject,
            csr.key_desc,
            fingerprint(&csr.der)
        ),
    )?;
    say(
        out,
        format!(
            "  root:         {} (SHA-256 {}, valid to {})",
            root.subject,
            fingerprint(&root_der),
            rfc3339(root.not_after)
        ),
    )?;
    say(
        out,
        format!(
            "  transcript:   {} OK ({} entries, {} seal(s))",
            req.transcript.display(),
            report.entries,
            report.seals
        ),
    )?;

    // Step 2: sign with the HSM root key.
    say(
        out,
        format!("[Step 2/{n}] Sign the intermediate with the HSM root key '{key_label}'"),
    )?;
    let session = HsmSession::connect(opts)?;
    let signer = HsmSigner::ceremony(&session, &KeySpec::label(key_label.clone()))?;
    if signer.curve() != root_key.curve || signer.public_point() != root_key.point.as_slice() {
        return Err(Error::Ceremony(format!(
            "the key '{key_label}' on token '{}' is not the key of {}",
            session.token_label(),
            req.root_cert.display()
        )));
    }
    let signed = sign_csr(
        req,
        &csr,
        &root_pem,
        &root_der,
        &signer,
        (not_before, not_after),
    )?;
    print_signed(req, &signed, out)?;

    // Step 3: write the certificate, then the transcript (entry + new seal).
    say(
        out,
        format!("[Step 3/{n}] Write the certificate and append to the transcript"),
    )?;
    write_intermediate(req, &csr, signed, &signer, &key_label, &mut t, out)
}

/// The signed and checked intermediate certificate.
struct SignedIntermediate {
    pem: String,
    der: Vec<u8>,
    info: CertInfo,
    fingerprint: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Step 2 of `sign-intermediate`: the certificate for the CSR's subject and key, signed by the
/// root key in the HSM and checked against the root certificate.
fn sign_csr(
    req: &SignIntermediateRequest,
    csr: &ParsedCsr,
    root_pem: &str,
    root_der: &[u8],
    signer: &HsmSigner<'_>,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
) -> Result<SignedIntermediate> {
    let issuer = Issuer::from_ca_cert_pem(root_pem, signer)
        .map_err(|e| cert_err("cannot use the root certificate as issuer (no SKI?)", e))?;
    let serial = random_serial();
    let mut params = CertificateParams::default();
    params.distinguished_name = csr.params.params.distinguished_name.clone();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(req.path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(&csr.key.raw));
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&csr.key, &issuer)
        .map_err(|e| cert_err("cannot sign the intermediate", e))?;
    let der = cert.der().to_vec();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| cert_err("the new certificate does not parse", e))?;
    let (_, root_parsed) = x509_parser::parse_x509_certificate(root_der)
        .map_err(|e| cert_err("root certificate", e))?;
    parsed
        .verify_signature(Some(root_parsed.public_key()))
        .map_err(|e| cert_err("the new certificate does not verify with the root key", e))?;
    let info = cert_info(&der)?;
    if info.spki != csr.spki {
        return Err(Error::Certificate(
            "the signed certificate carries another public key than the CSR".into(),
        ));
    }
    Ok(SignedIntermediate {
        pem: cert.pem(),
        fingerprint: fingerprint(&der),
        der,
        info,
        not_before,
        not_after,
    })
}

fn print_signed(
    req: &SignIntermediateRequest,
    s: &SignedIntermediate,
    out: &mut dyn Write,
) -> Result<()> {
    say(out, format!("  subject:      {}", s.info.subject))?;
    say(out, format!("  issuer:       {}", s.info.issuer))?;
    say(out, format!("  serial:       {}", s.info.serial))?;
    say(
        out,
        format!(
            "  validity:     {} to {} ({})",
            rfc3339(s.not_before),
            rfc3339(s.not_after),
            req.validity
        ),
    )?;
    say(
        out,
        format!(
            "  extensions:   basicConstraints critical CA:TRUE pathLen {}; keyUsage critical keyCertSign, cRLSign; SKI, AKI",
            req.path_len
        ),
    )?;
    say(out, format!("  SHA-256 fingerprint: {}", s.fingerprint))
}

/// Step 3 of `sign-intermediate`: the transcript entry and a new seal, then the certificate
/// file and the transcript (the certificate is removed again if the transcript cannot be written).
fn write_intermediate(
    req: &SignIntermediateRequest,
    csr: &ParsedCsr,
    s: SignedIntermediate,
    signer: &HsmSigner<'_>,
    key_label: &str,
    t: &mut Transcript,
    out: &mut dyn Write,
) -> Result<SignIntermediateOutcome> {
    let info = s.info;
    t.append(
        "intermediate-signed",
        serde_json::json!({
            "operators": req.operators,
            "csr_path": req.csr.display().to_string(),
            "csr_sha256": sha256_hex(&csr.der),
            "csr_subject": csr.subject,
            "csr_key": csr.key_desc,
            "subject": info.subject,
            "serial": info.serial,
            "not_before": rfc3339(s.not_before),
            "not_after": rfc3339(s.not_after),
            "validity": req.validity.to_string(),
            "path_len": req.path_len,
            "key_usage": ["keyCertSign", "cRLSign"],
            "ski": info.ski,
            "sha256": sha256_hex(&s.der),
            "certificate_path": req.out.display().to_string(),
        }),
    )?;
    t.seal(key_label, signer.curve(), |m| signer.sign_der(m))?;
    // To stdout: the transcript is written first and the caller prints the certificate after,
    // so a certificate is never printed that the transcript does not record.
    let to_stdout = is_stdout(&req.out);
    if !to_stdout {
        write_atomic(&req.out, s.pem.as_bytes(), false)?;
    }
    if let Err(e) = write_atomic(&req.transcript, t.to_text().as_bytes(), true) {
        if !to_stdout {
            let _ = std::fs::remove_file(&req.out);
        }
        return Err(e);
    }
    let head = t.head();
    let shown = if to_stdout {
        "(stdout)".to_string()
    } else {
        req.out.display().to_string()
    };
    say(out, format!("  certificate:  {shown}"))?;
    say(
        out,
        format!(
            "  transcript:   {} ({} entries, head {})",
            req.transcript.display(),
            t.len(),
            head
        ),
    )?;
    say(
        out,
        format!(
            "Intermediate signed: serial {}, SHA-256 {}",
            info.serial, s.fingerprint
        ),
    )?;
    Ok(SignIntermediateOutcome {
        out: req.out.clone(),
        pem: s.pem,
        serial: info.serial,
        fingerprint: s.fingerprint,
        head,
    })
}
