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
//! If step 3 or 4 fails, the new key pair is destroyed and nothing is left behind (a drop guard
//! owns the new pair until the transcript is written).
//!
//! The root key pair carries the key-ceremony mark: CKA_ID `hsm-demo/ceremony/<ceremony id>` on
//! both halves ([`crate::hsm::role`]). Only [`HsmSigner::ceremony`] signs with such a key, so the
//! ordinary commands (`sign`, `pca`, `provision`) cannot use the root.
//!
//! Crash safety: before C_GenerateKeyPair the ceremony writes a journal beside its outputs
//! ([`crate::hsm::ceremony_journal`]) naming the key it is about to create; the journal goes when
//! the transcript is written. A ceremony killed in between leaves the journal, a new ceremony in
//! that directory is refused, and [`recover`] (`key-ceremony --recover`) removes exactly the
//! journal's objects (never a root whose transcript verifies), after which the ceremony reruns.
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
use crate::hsm::ceremony_journal::{self, Journal};
use crate::hsm::ec;
use crate::hsm::keygen::{destroy_keys, generate_ceremony_key, GeneratedKey};
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::role;
use crate::hsm::session::{ConnectOptions, HsmSession};
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

/// A kill point for tests (`--features failpoints`): with `FAILPOINTS=<name>=return` the process
/// says `kill point <name>: waiting for SIGKILL` on stderr and stops there until the test kills
/// it, which is exactly a `kill -9` at that point; with `=return(error)` the step fails there
/// instead (an error, as from the HSM). Compiles to nothing otherwise.
macro_rules! kill_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg: Option<String>| {
            if arg.as_deref() == Some("error") {
                return Err(Error::Other(format!("injected failure at {}", $name)));
            }
            eprintln!("kill point {}: waiting for SIGKILL", $name);
            loop {
                std::thread::park();
            }
        })
    };
}

/// The kill points of `key-ceremony`, in the order a ceremony passes them.
pub const KILL_POINTS: [&str; 11] = [
    "ceremony-token-checked",
    "ceremony-journal-written",
    "ceremony-key-generated",
    "ceremony-key-recorded",
    "ceremony-root-signed",
    "ceremony-root-checked",
    "ceremony-transcript-sealed",
    "ceremony-journal-updated",
    "ceremony-root-written",
    "ceremony-transcript-written",
    "ceremony-journal-removed",
];

/// Refuses to start where an interrupted ceremony left its journal.
pub fn refuse_interrupted(journal: &Path) -> Result<()> {
    if journal.exists() {
        return Err(Error::Ceremony(format!(
            "{} exists: an earlier key ceremony in this directory did not finish; run `hsm-demo key-ceremony --recover` with the same options first",
            journal.display()
        )));
    }
    Ok(())
}

/// Step 1: the token and the operators (no key is created here). Records `ceremony-start` and
/// `token-checked`.
fn prepare(
    plan: &CeremonyPlan,
    session: &HsmSession,
    ceremony_id: &str,
    t: &mut Transcript,
    out: &mut dyn Write,
) -> Result<()> {
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
    let keys = role::token_keys(session)?;
    if keys.ordinary_private > 0 {
        eprintln!(
            "warning: token '{}' also holds {} private key(s) that are not key-ceremony keys (device keys?): keep the root on a separate token",
            tok.label, keys.ordinary_private
        );
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
            "other_private_keys": keys.ordinary_private,
            "other_ceremony_keys": keys.ceremony,
        }),
    )?;
    Ok(())
}

/// The new root key pair, destroyed when this guard is dropped armed (any failure after
/// generation); with it go the journal and an output directory the ceremony created.
struct NewRootKey<'s> {
    session: &'s HsmSession,
    key: GeneratedKey,
    journal: PathBuf,
    created_dir: Option<PathBuf>,
    armed: bool,
}

impl NewRootKey<'_> {
    /// Destroys both halves; true when both are gone (then the journal and the created directory
    /// go too; otherwise the journal stays for `--recover`).
    fn destroy(&mut self) -> bool {
        self.armed = false;
        let a = self
            .session
            .session()
            .destroy_object(self.key.private_handle);
        let b = self
            .session
            .session()
            .destroy_object(self.key.public_handle);
        let gone = a.is_ok() && b.is_ok();
        if gone {
            let _ = ceremony_journal::remove(&self.journal);
            if let Some(d) = &self.created_dir {
                let _ = std::fs::remove_dir(d);
            }
        }
        gone
    }

    /// Destroys the key pair and says so in the error.
    fn abort(&mut self, why: Error) -> Error {
        if self.destroy() {
            Error::Ceremony(format!(
                "{} (ceremony aborted: the new root key was destroyed, nothing was written)",
                why.one_line()
            ))
        } else {
            Error::Ceremony(format!(
                "{} (ceremony aborted; destroying the new root key '{}' FAILED: run `hsm-demo key-ceremony --recover`)",
                why.one_line(),
                self.key.label
            ))
        }
    }

    /// The ceremony completed: keep the key.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for NewRootKey<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.destroy();
        }
    }
}

/// Creates the output directory; `Some(dir)` when this call created it.
fn create_out_dir(plan: &CeremonyPlan) -> Result<Option<PathBuf>> {
    if plan.out_dir.is_dir() {
        return Ok(None);
    }
    std::fs::create_dir_all(&plan.out_dir)
        .map_err(|e| Error::io(format!("cannot create {}", plan.out_dir.display()), e))?;
    Ok(Some(plan.out_dir.clone()))
}

/// Step 2: records the journal, then generates the root key pair (with the ceremony mark).
fn generate_root<'s>(
    plan: &CeremonyPlan,
    session: &'s HsmSession,
    journal: &Journal,
    journal_path: &Path,
    out: &mut dyn Write,
) -> Result<NewRootKey<'s>> {
    say(
        out,
        format!(
            "[Step 2/{CEREMONY_STEPS}] Generate the root key '{}' (ECDSA {}) in the HSM",
            plan.key_label,
            plan.curve.name()
        ),
    )?;
    let created_dir = create_out_dir(plan)?;
    let undo_dir = |d: &Option<PathBuf>| {
        if let Some(d) = d {
            let _ = std::fs::remove_dir(d);
        }
    };
    if let Err(e) = journal.create(journal_path) {
        undo_dir(&created_dir);
        return Err(e);
    }
    kill_point!("ceremony-journal-written");
    let id = journal.key_id_bytes()?;
    match generate_ceremony_key(session, &plan.key_label, plan.curve, &id) {
        Ok(key) => Ok(NewRootKey {
            session,
            key,
            journal: journal_path.to_path_buf(),
            created_dir,
            armed: true,
        }),
        Err(e) => {
            // generate_ceremony_key removed what a failed call left; keep the journal only if
            // something with our id is still there.
            let spec = KeySpec {
                label: None,
                id: Some(id),
            };
            let left = [
                cryptoki::object::ObjectClass::PRIVATE_KEY,
                cryptoki::object::ObjectClass::PUBLIC_KEY,
            ]
            .iter()
            .any(|c| session.find_keys(*c, &spec).map_or(true, |v| !v.is_empty()));
            if !left {
                let _ = ceremony_journal::remove(journal_path);
                undo_dir(&created_dir);
            }
            Err(e)
        }
    }
}

/// Runs the key ceremony (the plan is already validated). Prints `[Step i/4]` lines to `out`.
///
/// Crash safety: the journal ([`crate::hsm::ceremony_journal`]) is written before the key pair is
/// generated and removed when the transcript is written; a failure in between destroys the key
/// pair ([`NewRootKey`]); a kill in between leaves the journal for `--recover` ([`recover`]).
pub fn run_ceremony(
    plan: &CeremonyPlan,
    opts: &ConnectOptions,
    out: &mut dyn Write,
) -> Result<CeremonyOutcome> {
    let journal_path = ceremony_journal::journal_path(&plan.out_dir);
    refuse_interrupted(&journal_path)?;
    check_outputs_absent(plan)?;
    let mut t = Transcript::new();
    let ceremony_id = hex::encode(rand::random::<[u8; 16]>());
    say(
        out,
        format!("[Step 1/{CEREMONY_STEPS}] Prepare: check the token and the operators"),
    )?;
    let session = HsmSession::connect(opts)?;
    prepare(plan, &session, &ceremony_id, &mut t, out)?;
    kill_point!("ceremony-token-checked");
    let mut journal = Journal {
        format: ceremony_journal::JOURNAL_FORMAT.into(),
        ceremony_id: ceremony_id.clone(),
        key_label: plan.key_label.clone(),
        key_id: hex::encode(role::ceremony_key_id(&ceremony_id)),
        curve: plan.curve.name().into(),
        token_label: session.token().label.clone(),
        token_serial: session.token().serial.clone(),
        root_cert: plan.root_cert.clone(),
        transcript: plan.transcript.clone(),
        started: rfc3339(now_seconds()),
        root_cert_sha256: None,
    };
    let mut guard = generate_root(plan, &session, &journal, &journal_path, out)?;
    let outcome = finish(plan, &session, &guard.key, &mut t, &mut journal, out)
        .map_err(|e| guard.abort(e))?;
    guard.disarm();
    if let Err(e) = ceremony_journal::remove(&journal_path) {
        eprintln!(
            "warning: the ceremony is complete but its journal stays: {} (`key-ceremony --recover` removes it)",
            e.one_line()
        );
    }
    kill_point!("ceremony-journal-removed");
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

/// Steps 2 (the record), 3 and 4 on the generated key pair.
fn finish(
    plan: &CeremonyPlan,
    session: &HsmSession,
    key: &GeneratedKey,
    t: &mut Transcript,
    journal: &mut Journal,
    out: &mut dyn Write,
) -> Result<CeremonyOutcome> {
    kill_point!("ceremony-key-generated");
    let spki = record_key(session, key, t, out)?;
    kill_point!("ceremony-key-recorded");
    say(
        out,
        format!(
            "[Step 3/{CEREMONY_STEPS}] Create the self-signed root certificate (signed in the HSM)"
        ),
    )?;
    let signer = HsmSigner::ceremony(
        session,
        &KeySpec {
            label: Some(key.label.clone()),
            id: Some(key.id.clone()),
        },
    )?;
    let root = root_certificate(plan, &signer, &spki, t, out)?;
    kill_point!("ceremony-root-checked");
    write_outputs(plan, &signer, root, t, journal, out)
}

/// Step 2's record: the attributes read back and the public key, into the transcript.
fn record_key(
    session: &HsmSession,
    key: &GeneratedKey,
    t: &mut Transcript,
    out: &mut dyn Write,
) -> Result<Vec<u8>> {
    let flags = read_key_flags(session, key.private_handle)?;
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
    Ok(spki)
}

/// The signed and checked root certificate.
struct RootCert {
    pem: String,
    fingerprint: String,
    serial: String,
}

/// Step 3: the self-signed root certificate, checked before anything is written.
fn root_certificate(
    plan: &CeremonyPlan,
    signer: &HsmSigner<'_>,
    spki: &[u8],
    t: &mut Transcript,
    out: &mut dyn Write,
) -> Result<RootCert> {
    let not_before = now_seconds();
    let not_after = plan.validity.end(not_before)?;
    let serial = random_serial();
    let ski = key_identifier(signer.public_point());
    let mut params = CertificateParams::default();
    params.distinguished_name = to_dn(&plan.subject)?;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(plan.path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    let cert = params
        .self_signed(signer)
        .map_err(|e| cert_err("cannot create the root certificate", e))?;
    kill_point!("ceremony-root-signed");
    let der = cert.der().to_vec();
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
    Ok(RootCert {
        pem: pem_text,
        fingerprint: fp,
        serial: info.serial,
    })
}

/// Step 4: seal the transcript, record the root certificate's hash in the journal, write
/// root.pem, then the transcript (which completes the ceremony).
fn write_outputs(
    plan: &CeremonyPlan,
    signer: &HsmSigner<'_>,
    root: RootCert,
    t: &mut Transcript,
    journal: &mut Journal,
    out: &mut dyn Write,
) -> Result<CeremonyOutcome> {
    say(
        out,
        format!(
            "[Step 4/{CEREMONY_STEPS}] Write the root certificate and the sealed ceremony transcript"
        ),
    )?;
    t.append(
        "outputs",
        serde_json::json!({
            "root_cert": {
                "path": plan.root_cert.display().to_string(),
                "sha256": sha256_hex(root.pem.as_bytes()),
            },
        }),
    )?;
    t.seal(signer.label(), signer.curve(), |m| signer.sign_der(m))?;
    kill_point!("ceremony-transcript-sealed");
    let head = t.head();
    journal.root_cert_sha256 = Some(sha256_hex(root.pem.as_bytes()));
    journal.update(&ceremony_journal::journal_path(&plan.out_dir))?;
    kill_point!("ceremony-journal-updated");
    write_atomic(&plan.root_cert, root.pem.as_bytes(), false)?;
    kill_point!("ceremony-root-written");
    if let Err(e) = write_atomic(&plan.transcript, t.to_text().as_bytes(), false) {
        let _ = std::fs::remove_file(&plan.root_cert);
        return Err(e);
    }
    kill_point!("ceremony-transcript-written");
    Ok(CeremonyOutcome {
        root_cert: plan.root_cert.clone(),
        transcript: plan.transcript.clone(),
        fingerprint: root.fingerprint,
        serial: root.serial,
        head,
    })
}

/// What `key-ceremony --recover` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No journal: no ceremony was interrupted in that directory.
    Nothing,
    /// The journal's ceremony had completed (its transcript verifies): only the journal went.
    Completed,
    /// The interrupted ceremony's key objects (and its unfinished root.pem) were removed.
    Undone {
        /// Key objects destroyed (0, 1 or 2).
        objects: usize,
        /// Whether an unfinished root.pem was removed.
        root_cert_removed: bool,
    },
}

/// Whether the journal's ceremony completed: its transcript exists, verifies (against root.pem
/// when that exists) and records the journal's key. A transcript that exists but fails any of
/// this is an error: `--recover` then changes nothing.
fn journal_completed(j: &Journal) -> Result<bool> {
    if !j.transcript.exists() {
        return Ok(false);
    }
    let untouched = |why: String| {
        Error::Ceremony(format!(
            "{} exists but {why}: --recover changes nothing; inspect it by hand",
            j.transcript.display()
        ))
    };
    let cert = j.root_cert.exists().then_some(j.root_cert.as_path());
    let (t, _, _) = verify_transcript_file(&j.transcript, cert)
        .map_err(|e| untouched(format!("does not verify ({})", e.one_line())))?;
    let recorded_id = t
        .entries()?
        .into_iter()
        .find(|e| e.step == "key-generated")
        .and_then(|e| {
            e.details
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    if recorded_id.as_deref() != Some(j.key_id.as_str()) {
        return Err(untouched(format!(
            "records another key (id {}) than the journal's ceremony {}",
            recorded_id.unwrap_or_else(|| "none".into()),
            j.ceremony_id
        )));
    }
    Ok(true)
}

/// Whether root.pem is the unfinished one this ceremony was writing (its SHA-256 is the
/// journal's); any other existing file is an error.
fn unfinished_root_cert(j: &Journal) -> Result<bool> {
    if !j.root_cert.exists() {
        return Ok(false);
    }
    let bytes = std::fs::read(&j.root_cert)
        .map_err(|e| Error::io(format!("cannot read {}", j.root_cert.display()), e))?;
    if j.root_cert_sha256.as_deref() == Some(sha256_hex(&bytes).as_str()) {
        return Ok(true);
    }
    Err(Error::Ceremony(format!(
        "{} exists and is not the certificate the interrupted ceremony {} was writing: --recover changes nothing; move it away by hand",
        j.root_cert.display(),
        j.ceremony_id
    )))
}

/// `key-ceremony --recover`: undoes a ceremony that was killed after it wrote its journal
/// ([`crate::hsm::ceremony_journal`]). Removes exactly the key objects with the journal's label
/// and CKA_ID (which carries the ceremony mark) and a root.pem with the journal's SHA-256, then
/// the journal; a ceremony whose transcript verifies is complete and keeps its key. Each step can
/// be repeated, so a recovery that is itself killed is finished by running it again. The paths
/// are the journal's (as the ceremony saw them): run it from the ceremony's working directory.
pub fn recover(out_dir: &Path, opts: &ConnectOptions, out: &mut dyn Write) -> Result<Recovered> {
    let path = ceremony_journal::journal_path(out_dir);
    let Some(j) = Journal::read(&path)? else {
        say(
            out,
            format!(
                "Nothing to recover: no key-ceremony journal in {} (no ceremony was interrupted there)",
                out_dir.display()
            ),
        )?;
        return Ok(Recovered::Nothing);
    };
    let id = j.key_id_bytes()?;
    if role::role_of(&id) != role::KeyRole::Ceremony {
        return Err(Error::Ceremony(format!(
            "{}: key_id {} lacks the key-ceremony mark; --recover changes nothing",
            path.display(),
            j.key_id
        )));
    }
    say(
        out,
        format!(
            "Interrupted key ceremony {} (journal {}): root key '{}', id {}, token '{}' (serial {})",
            j.ceremony_id,
            path.display(),
            j.key_label,
            j.key_id,
            j.token_label,
            j.token_serial
        ),
    )?;
    if journal_completed(&j)? {
        ceremony_journal::remove(&path)?;
        say(
            out,
            format!(
                "The ceremony had completed: {} verifies and records root key '{}', which is kept; removed the leftover journal",
                j.transcript.display(),
                j.key_label
            ),
        )?;
        return Ok(Recovered::Completed);
    }
    let stale_cert = unfinished_root_cert(&j)?;
    let session = HsmSession::connect(opts)?;
    if session.token().serial != j.token_serial {
        return Err(Error::Ceremony(format!(
            "the journal is for token '{}' (serial {}), not '{}' (serial {}): select it with --token; --recover changed nothing",
            j.token_label,
            j.token_serial,
            session.token_label(),
            session.token().serial
        )));
    }
    let objects = destroy_journal_keys(&session, &j, &id)?;
    if stale_cert {
        std::fs::remove_file(&j.root_cert)
            .map_err(|e| Error::io(format!("cannot remove {}", j.root_cert.display()), e))?;
    }
    ceremony_journal::remove(&path)?;
    say(
        out,
        format!(
            "Recovered: removed {objects} key object(s) of the interrupted ceremony{}, and the journal; run `hsm-demo key-ceremony` again",
            if stale_cert {
                format!(", its unfinished {}", j.root_cert.display())
            } else {
                String::new()
            }
        ),
    )?;
    Ok(Recovered::Undone {
        objects,
        root_cert_removed: stale_cert,
    })
}

/// Destroys the objects with the journal's label and CKA_ID under the token lock; refuses when an
/// object with that CKA_ID but another label remains (not ours to judge).
fn destroy_journal_keys(session: &HsmSession, j: &Journal, id: &[u8]) -> Result<usize> {
    let lock = TokenLock::acquire(session)?;
    let ours = KeySpec {
        label: Some(j.key_label.clone()),
        id: Some(id.to_vec()),
    };
    let n = destroy_keys(session, &ours, &lock)?;
    let by_id = KeySpec {
        label: None,
        id: Some(id.to_vec()),
    };
    for class in [
        cryptoki::object::ObjectClass::PRIVATE_KEY,
        cryptoki::object::ObjectClass::PUBLIC_KEY,
    ] {
        if !session.find_keys(class, &by_id)?.is_empty() {
            return Err(Error::Ceremony(format!(
                "a key with the ceremony's id {} but another label than '{}' is on token '{}': remove it by hand",
                j.key_id,
                j.key_label,
                session.token_label()
            )));
        }
    }
    Ok(n)
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

/// Parses and checks a CSR file exactly as `sign-intermediate` does before it opens a token (PEM
/// framing, PKCS#10 structure, key type, subject, signature) and nothing else: the entry point of
/// the CSR fuzz target.
pub fn check_intermediate_csr(path: &Path) -> Result<()> {
    parse_csr(path).map(|_| ())
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
    if req.out.exists() {
        return Err(Error::input(format!(
            "{} already exists: refusing to overwrite it",
            req.out.display()
        )));
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
    write_atomic(&req.out, s.pem.as_bytes(), false)?;
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
        format!(
            "Intermediate signed: serial {}, SHA-256 {}",
            info.serial, s.fingerprint
        ),
    )?;
    Ok(SignIntermediateOutcome {
        out: req.out.clone(),
        serial: info.serial,
        fingerprint: s.fingerprint,
        head,
    })
}
