//! The offline root CA key ceremony and its later steps.
//!
//! [`run_ceremony`] runs the four steps of `hsm-demo key-ceremony`:
//! 1. prepare and check the token and the operators (log in, refuse an existing root key);
//! 2. generate the root key pair in the HSM (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
//!    extractable; the attributes are read back and recorded);
//! 3. create the self-signed root certificate with rcgen through [`HsmSigner`] (CA:TRUE critical
//!    with pathLen, keyUsage keyCertSign+cRLSign critical, SKI, random positive 20-byte serial),
//!    then check it (self-signature, public key) before anything is written;
//! 4. write the root PEM and the sealed transcript ([`crate::hsm::transcript`]).
//!
//! If step 3 or 4 fails, the new key pair is destroyed and nothing is left behind.
//!
//! [`sign_intermediate`] signs a subordinate CA's CSR (e.g. the AWS Private CA intermediate's)
//! with the HSM root key, after re-verifying the transcript, and appends the step and a new seal.

use std::io::Write;
use std::path::{Path, PathBuf};

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::hsm::ceremony_config::{CeremonyPlan, DnField, Validity};
use crate::hsm::ec;
use crate::hsm::keygen::{generate_key, KeygenRequest};
use crate::hsm::session::{ConnectOptions, HsmSession, KeySpec};
use crate::hsm::signer::HsmSigner;
use crate::hsm::transcript::{self, SealKey, Transcript};

/// Steps of the key ceremony.
pub const CEREMONY_STEPS: usize = 4;
/// Steps of `sign-intermediate`.
pub const SIGN_STEPS: usize = 3;
/// Default validity of an intermediate signed by the root.
pub const DEFAULT_INTERMEDIATE_VALIDITY: &str = "10y";
/// Default pathLen of an intermediate (intermediate → issuing CA (0) → leaf).
pub const DEFAULT_INTERMEDIATE_PATH_LEN: u8 = 1;
/// Smallest RSA key accepted in a CSR.
pub const MIN_RSA_BITS: usize = 2048;

fn say(out: &mut dyn Write, line: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", line.as_ref()).map_err(|e| Error::io("cannot write to stdout", e))
}

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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
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

fn now_seconds() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn to_dn(subject: &[(DnField, String)]) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for (f, v) in subject {
        match f {
            DnField::Country => dn.push(
                DnType::CountryName,
                DnValue::PrintableString(
                    rcgen::string::PrintableString::try_from(v.as_str())
                        .map_err(|e| Error::Config(format!("subject country '{v}': {e}")))?,
                ),
            ),
            DnField::State => dn.push(DnType::StateOrProvinceName, v.as_str()),
            DnField::Locality => dn.push(DnType::LocalityName, v.as_str()),
            DnField::Organization => dn.push(DnType::OrganizationName, v.as_str()),
            DnField::OrganizationalUnit => dn.push(DnType::OrganizationalUnitName, v.as_str()),
            DnField::CommonName => dn.push(DnType::CommonName, v.as_str()),
        }
    }
    Ok(dn)
}

fn cert_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Certificate(format!("{what}: {e}"))
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

fn check_outputs_absent(plan: &CeremonyPlan) -> Result<()> {
    for p in [&plan.root_cert, &plan.transcript] {
        if p.exists() {
            return Err(Error::Ceremony(format!(
                "{} already exists: a key ceremony never overwrites its outputs (choose another --out-dir)",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Prints the plan (`--dry-run`, and the start of a real ceremony).
pub fn print_plan(plan: &CeremonyPlan, out: &mut dyn Write) -> Result<()> {
    if let Some(c) = &plan.config_file {
        say(out, format!("  config:       {}", c.display()))?;
    }
    say(
        out,
        format!(
            "  operators:    {}{}",
            plan.operators.join(", "),
            if plan.operators.len() >= 2 {
                " (dual control)"
            } else {
                " (single operator: a production ceremony names at least two)"
            }
        ),
    )?;
    say(
        out,
        format!(
            "  root key:     label '{}', ECDSA {} (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not extractable)",
            plan.key_label,
            plan.curve.name()
        ),
    )?;
    say(out, format!("  subject:      {}", plan.subject_string()))?;
    say(
        out,
        format!(
            "  certificate:  self-signed, {}, CA:TRUE pathLen {}, keyCertSign+cRLSign, validity {}",
            transcript::seal_algorithm(plan.curve),
            plan.path_len,
            plan.validity
        ),
    )?;
    say(out, format!("  root cert:    {}", plan.root_cert.display()))?;
    say(
        out,
        format!("  transcript:   {}", plan.transcript.display()),
    )
}

/// What the ceremony produced.
#[derive(Debug, Clone)]
pub struct CeremonyOutcome {
    /// Root certificate PEM path.
    pub root_cert: PathBuf,
    /// Transcript path.
    pub transcript: PathBuf,
    /// SHA-256 fingerprint of the root certificate (colon hex).
    pub fingerprint: String,
    /// Serial (hex).
    pub serial: String,
    /// Transcript chain head.
    pub head: String,
}

fn read_key_flags(session: &HsmSession, h: ObjectHandle) -> Result<serde_json::Value> {
    let attrs = session.session().get_attributes(
        h,
        &[
            AttributeType::Token,
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::AlwaysSensitive,
            AttributeType::NeverExtractable,
        ],
    )?;
    let mut m = serde_json::Map::new();
    for a in attrs {
        let (k, v) = match a {
            Attribute::Token(v) => ("token", v),
            Attribute::Private(v) => ("private", v),
            Attribute::Sensitive(v) => ("sensitive", v),
            Attribute::Extractable(v) => ("extractable", v),
            Attribute::AlwaysSensitive(v) => ("always_sensitive", v),
            Attribute::NeverExtractable(v) => ("never_extractable", v),
            _ => continue,
        };
        m.insert(k.into(), serde_json::Value::Bool(v));
    }
    let get = |k: &str| m.get(k).and_then(|v| v.as_bool());
    if get("sensitive") != Some(true)
        || get("extractable") != Some(false)
        || get("private") != Some(true)
        || get("token") != Some(true)
    {
        return Err(Error::Ceremony(format!(
            "the token did not create the root key as asked (attributes read back: {})",
            serde_json::Value::Object(m.clone())
        )));
    }
    Ok(serde_json::Value::Object(m))
}

fn operator_default() -> Vec<String> {
    vec![std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".into())]
}

/// The operators of a later step: the given names, else `$USER`.
pub fn operators_or_default(ops: &[String]) -> Vec<String> {
    if ops.is_empty() {
        operator_default()
    } else {
        ops.to_vec()
    }
}

/// Runs the key ceremony (the plan is already validated). Prints `[Step i/4]` lines to `out`.
pub fn run_ceremony(
    plan: &CeremonyPlan,
    opts: &ConnectOptions,
    out: &mut dyn Write,
) -> Result<CeremonyOutcome> {
    let n = CEREMONY_STEPS;
    check_outputs_absent(plan)?;
    let mut t = Transcript::new();
    let ceremony_id = hex::encode(rand::random::<[u8; 16]>());

    // Step 1: token and operators.
    say(
        out,
        format!("[Step 1/{n}] Prepare: check the token and the operators"),
    )?;
    let session = HsmSession::connect(opts)?;
    let tok = session.token().clone();
    say(
        out,
        format!(
            "  token:        '{}' (serial {}, {} {}), module {}",
            tok.label,
            tok.serial,
            tok.manufacturer,
            tok.model,
            session.module().path().display()
        ),
    )?;
    let spec = KeySpec::label(plan.key_label.clone());
    for class in [
        cryptoki::object::ObjectClass::PRIVATE_KEY,
        cryptoki::object::ObjectClass::PUBLIC_KEY,
    ] {
        if !session.find_keys(class, &spec)?.is_empty() {
            return Err(Error::Ceremony(format!(
                "a key labelled '{}' already exists on token '{}': the key ceremony never replaces a root key (use a fresh token or another --key-label)",
                plan.key_label, tok.label
            )));
        }
    }
    print_plan(plan, out)?;
    say(out, format!("  ceremony id:  {ceremony_id}"))?;
    t.append(
        "ceremony-start",
        serde_json::json!({
            "ceremony_id": ceremony_id,
            "tool": format!("hsm-demo {}", env!("CARGO_PKG_VERSION")),
            "operators": plan.operators,
            "config_file": plan.config_file.as_ref().map(|p| p.display().to_string()),
            "plan": {
                "key_label": plan.key_label,
                "curve": plan.curve.name(),
                "subject": plan.subject_string(),
                "validity": plan.validity.to_string(),
                "path_len": plan.path_len,
                "root_cert": plan.root_cert.display().to_string(),
                "transcript": plan.transcript.display().to_string(),
            },
        }),
    )?;
    t.append(
        "token-checked",
        serde_json::json!({
            "module": session.module().path().display().to_string(),
            "token_label": tok.label,
            "token_serial": tok.serial,
            "manufacturer": tok.manufacturer,
            "model": tok.model,
            "logged_in": true,
            "existing_key_with_label": false,
        }),
    )?;

    // Step 2: the root key.
    say(
        out,
        format!(
            "[Step 2/{n}] Generate the root key '{}' (ECDSA {}) in the HSM",
            plan.key_label,
            plan.curve.name()
        ),
    )?;
    let key = generate_key(
        &session,
        &KeygenRequest::new(plan.key_label.clone(), plan.curve),
    )?;
    let destroy = |why: Error| -> Error {
        let a = session.session().destroy_object(key.private_handle);
        let b = session.session().destroy_object(key.public_handle);
        if a.is_ok() && b.is_ok() {
            Error::Ceremony(format!(
                "{} (ceremony aborted: the new root key was destroyed, nothing was written)",
                why.one_line()
            ))
        } else {
            Error::Ceremony(format!(
                "{} (ceremony aborted; destroying the new root key '{}' FAILED: remove it by hand)",
                why.one_line(),
                plan.key_label
            ))
        }
    };
    let result = (|| -> Result<CeremonyOutcome> {
        let flags = read_key_flags(&session, key.private_handle)?;
        let spki = ec::spki_der(key.curve, &key.public_point)?;
        say(
            out,
            format!(
                "  Generated ECDSA {} key pair, label: {} (id {}; sensitive, not extractable)",
                key.curve.name(),
                key.label,
                hex::encode(&key.id)
            ),
        )?;
        say(out, format!("  public key SHA-256: {}", fingerprint(&spki)))?;
        t.append(
            "key-generated",
            serde_json::json!({
                "label": key.label,
                "id": hex::encode(&key.id),
                "curve": key.curve.name(),
                "mechanism": "CKM_EC_KEY_PAIR_GEN",
                "private_key_attributes": flags,
                "public_key_spki_sha256": sha256_hex(&spki),
                "public_key_pem": ec::spki_pem(key.curve, &key.public_point)?,
            }),
        )?;

        // Step 3: the self-signed root certificate.
        say(
            out,
            format!("[Step 3/{n}] Create the self-signed root certificate (signed in the HSM)"),
        )?;
        let signer = HsmSigner::new(
            &session,
            &KeySpec {
                label: Some(key.label.clone()),
                id: Some(key.id.clone()),
            },
        )?;
        let not_before = now_seconds();
        let not_after = plan.validity.end(not_before)?;
        let serial = random_serial();
        let ski = key_identifier(&key.public_point);
        let mut params = CertificateParams::default();
        params.distinguished_name = to_dn(&plan.subject)?;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(plan.path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
        let cert = params
            .self_signed(&signer)
            .map_err(|e| cert_err("cannot create the root certificate", e))?;
        let der = cert.der().to_vec();
        // Check what was signed before anything is written.
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| cert_err("the new root certificate does not parse", e))?;
        parsed
            .verify_signature(None)
            .map_err(|e| cert_err("the root certificate's self-signature does not verify", e))?;
        let info = cert_info(&der)?;
        if info.spki != spki {
            return Err(Error::Certificate(
                "the root certificate carries another public key than the HSM key".into(),
            ));
        }
        let pem_text = cert.pem();
        let fp = fingerprint(&der);
        say(out, format!("  subject:      {}", info.subject))?;
        say(out, format!("  serial:       {}", info.serial))?;
        say(
            out,
            format!(
                "  validity:     {} to {} ({})",
                rfc3339(not_before),
                rfc3339(not_after),
                plan.validity
            ),
        )?;
        say(
            out,
            format!(
                "  extensions:   basicConstraints critical CA:TRUE pathLen {}; keyUsage critical keyCertSign, cRLSign; SKI {}",
                plan.path_len,
                hex::encode(&ski)
            ),
        )?;
        say(out, format!("  SHA-256 fingerprint: {fp}"))?;
        t.append(
            "root-certificate",
            serde_json::json!({
                "subject": info.subject,
                "serial": info.serial,
                "not_before": rfc3339(not_before),
                "not_after": rfc3339(not_after),
                "validity": plan.validity.to_string(),
                "path_len": plan.path_len,
                "key_usage": ["keyCertSign", "cRLSign"],
                "ski": hex::encode(&ski),
                "signature_algorithm": transcript::seal_algorithm(plan.curve),
                "sha256": sha256_hex(&der),
                "certificate_pem": pem_text,
            }),
        )?;

        // Step 4: outputs and the sealed transcript.
        say(
            out,
            format!("[Step 4/{n}] Write the root certificate and the sealed ceremony transcript"),
        )?;
        t.append(
            "outputs",
            serde_json::json!({
                "root_cert": {
                    "path": plan.root_cert.display().to_string(),
                    "sha256": sha256_hex(pem_text.as_bytes()),
                },
            }),
        )?;
        t.seal(&key.label, key.curve, |m| signer.sign_der(m))?;
        let head = t.head();
        std::fs::create_dir_all(&plan.out_dir)
            .map_err(|e| Error::io(format!("cannot create {}", plan.out_dir.display()), e))?;
        write_atomic(&plan.root_cert, pem_text.as_bytes(), false)?;
        if let Err(e) = write_atomic(&plan.transcript, t.to_text().as_bytes(), false) {
            let _ = std::fs::remove_file(&plan.root_cert);
            return Err(e);
        }
        Ok(CeremonyOutcome {
            root_cert: plan.root_cert.clone(),
            transcript: plan.transcript.clone(),
            fingerprint: fp,
            serial: info.serial,
            head,
        })
    })();
    let outcome = result.map_err(destroy)?;
    say(
        out,
        format!("  root certificate: {}", outcome.root_cert.display()),
    )?;
    say(
        out,
        format!(
            "  transcript:       {} ({} entries, sealed by '{}', head {})",
            outcome.transcript.display(),
            t.len(),
            plan.key_label,
            outcome.head
        ),
    )?;
    say(
        out,
        format!(
            "Key ceremony complete: root key '{}' stays in the HSM; root certificate SHA-256 {}",
            plan.key_label, outcome.fingerprint
        ),
    )?;
    Ok(outcome)
}

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
            let pem_text = recorded_pem.ok_or_else(|| {
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
    let key = spki_ec_key(&info.spki)?;
    let report = transcript::verify(&t, &key)?;
    if let Some(fp) = transcript::recorded_root_fingerprint(&t)? {
        if fp != sha256_hex(&der) {
            return Err(Error::Ceremony(format!(
                "the transcript is for another root certificate (recorded SHA-256 {fp}, given {})",
                sha256_hex(&der)
            )));
        }
    }
    Ok((t, report, info))
}

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

/// The subject public key of a CSR, for rcgen: the algorithm is chosen from the key (not from the
/// CSR's signature algorithm, which rcgen would use), so the SPKI is copied exactly.
#[derive(Debug)]
struct CsrKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
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
struct ParsedCsr {
    params: CertificateSigningRequestParams,
    key: CsrKey,
    key_desc: String,
    spki: Vec<u8>,
    subject: String,
    der: Vec<u8>,
}

fn parse_csr(path: &Path) -> Result<ParsedCsr> {
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

/// What `sign-intermediate` produced.
#[derive(Debug, Clone)]
pub struct SignIntermediateOutcome {
    /// The certificate file.
    pub out: PathBuf,
    /// Serial (hex).
    pub serial: String,
    /// SHA-256 fingerprint (colon hex).
    pub fingerprint: String,
    /// Transcript head after the new seal.
    pub head: String,
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
    if req.out.exists() {
        return Err(Error::input(format!(
            "{} already exists: refusing to overwrite it",
            req.out.display()
        )));
    }
    let csr = parse_csr(&req.csr)?;
    let (root_pem, root_der) = read_cert_pem(&req.root_cert)?;
    let root = cert_info(&root_der)?;
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
    let (mut t, report, _) = verify_transcript_file(&req.transcript, Some(&req.root_cert))?;
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
    let signer = HsmSigner::new(&session, &KeySpec::label(key_label.clone()))?;
    if signer.curve() != root_key.curve || signer.public_point() != root_key.point.as_slice() {
        return Err(Error::Ceremony(format!(
            "the key '{key_label}' on token '{}' is not the key of {}",
            session.token_label(),
            req.root_cert.display()
        )));
    }
    let issuer = Issuer::from_ca_cert_pem(&root_pem, &signer)
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
    let (_, root_parsed) = x509_parser::parse_x509_certificate(&root_der)
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
    let fp = fingerprint(&der);
    say(out, format!("  subject:      {}", info.subject))?;
    say(out, format!("  issuer:       {}", info.issuer))?;
    say(out, format!("  serial:       {}", info.serial))?;
    say(
        out,
        format!(
            "  validity:     {} to {} ({})",
            rfc3339(not_before),
            rfc3339(not_after),
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
    say(out, format!("  SHA-256 fingerprint: {fp}"))?;

    // Step 3: write the certificate, then the transcript (entry + new seal).
    say(
        out,
        format!("[Step 3/{n}] Write the certificate and append to the transcript"),
    )?;
    let pem_text = cert.pem();
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
            "not_before": rfc3339(not_before),
            "not_after": rfc3339(not_after),
            "validity": req.validity.to_string(),
            "path_len": req.path_len,
            "key_usage": ["keyCertSign", "cRLSign"],
            "ski": info.ski,
            "sha256": sha256_hex(&der),
            "certificate_path": req.out.display().to_string(),
        }),
    )?;
    t.seal(&key_label, signer.curve(), |m| signer.sign_der(m))?;
    write_atomic(&req.out, pem_text.as_bytes(), false)?;
    if let Err(e) = write_atomic(&req.transcript, t.to_text().as_bytes(), true) {
        let _ = std::fs::remove_file(&req.out);
        return Err(e);
    }
    let head = t.head();
    say(out, format!("  certificate:  {}", req.out.display()))?;
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
        format!("Intermediate signed: serial {}, SHA-256 {fp}", info.serial),
    )?;
    Ok(SignIntermediateOutcome {
        out: req.out.clone(),
        serial: info.serial,
        fingerprint: fp,
        head,
    })
}
