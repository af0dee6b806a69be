//! `key-ceremony crl`: the offline root signs, in the HSM, a CRL listing revoked subordinate CA
//! certificates (Boulder's CRL ceremony is the model).
//!
//! Step 1 needs no HSM: the root certificate, the transcript (verified against it), the
//! certificates to revoke (each a CA certificate issued by this root: issuer name and signature
//! checked with the root's key), and the times: thisUpdate (now) < nextUpdate, both within the
//! root's validity, nextUpdate at most 12 months after thisUpdate, and thisUpdate not before the
//! previous CRL's. The CRL number is one more than the last one the transcript records (the first
//! CRL is number 1), and the CRL lists every certificate an earlier CRL listed plus the new ones,
//! so a later CRL never silently drops a revocation. `--dry-run` stops here.
//!
//! Step 2 signs the TBSCertList ([`super::crl_der`]) with the ceremony signer
//! ([`HsmSigner::ceremony`], the only signer that uses a key with the key-ceremony mark) and checks
//! the result with x509-parser against the root certificate's key.
//!
//! Step 3 appends a `crl-signed` entry (number, times, the full list, the CRL itself) and a new
//! seal to the transcript, writes the transcript, then the CRL. The transcript goes first: a run
//! killed in between leaves a recorded CRL number that the next run passes, so two different
//! CRLs never carry the same number (the CRL itself is in the transcript entry); if the CRL cannot
//! be written, the transcript is put back. Kill point (`--features failpoints`):
//! `crl-transcript-written`, between the two writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use super::crl_der::{self, CrlContent, RevokedEntry};
use super::transcript::{SealKey, Transcript};
use super::verify::verify_transcript_file;
use super::x509::{cert_info, fingerprint, sha256_hex, spki_ec_key, CertInfo};
use super::{now_seconds, rfc3339, say};
use crate::duration::{self, Duration, Unit};
use crate::error::{Error, Result};
use crate::fsutil::{check_output, is_stdout, write_atomic};
use crate::hsm::lookup::KeySpec;
use crate::hsm::session::{ConnectOptions, HsmSession};
use crate::hsm::signer::HsmSigner;

/// Steps of `key-ceremony crl`.
pub const CRL_STEPS: usize = 3;
/// The transcript step of a signed CRL.
pub const CRL_STEP: &str = "crl-signed";
/// Default `--next-update`.
pub const DEFAULT_NEXT_UPDATE: &str = "12mo";
/// The longest nextUpdate − thisUpdate, in calendar months.
pub const MAX_NEXT_UPDATE_MONTHS: u32 = 12;

/// Revocation reasons: the names `pca revoke` accepts, the AWS names, and the RFC 5280 code.
pub const REASONS: &[(&str, &str, u8)] = &[
    ("unspecified", "UNSPECIFIED", 0),
    ("key-compromise", "KEY_COMPROMISE", 1),
    ("ca-compromise", "CERTIFICATE_AUTHORITY_COMPROMISE", 2),
    ("affiliation-changed", "AFFILIATION_CHANGED", 3),
    ("superseded", "SUPERSEDED", 4),
    ("cessation-of-operation", "CESSATION_OF_OPERATION", 5),
    ("privilege-withdrawn", "PRIVILEGE_WITHDRAWN", 9),
    ("aa-compromise", "A_A_COMPROMISE", 10),
];

/// A revocation reason (an entry of [`REASONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The command-line name (`key-compromise`).
    pub name: &'static str,
    /// The RFC 5280 CRLReason code.
    pub code: u8,
}

impl Reason {
    /// Unspecified: the CRL entry then carries no reasonCode (RFC 5280 §5.3.1).
    pub const UNSPECIFIED: Reason = Reason {
        name: "unspecified",
        code: 0,
    };

    /// Parses `key-compromise`, the AWS name `KEY_COMPROMISE` or the RFC 5280 name
    /// `keyCompromise` (case, dashes and underscores do not matter).
    pub fn parse(s: &str) -> Result<Reason> {
        let norm = |v: &str| v.to_ascii_lowercase().replace(['-', '_'], "");
        let want = norm(s.trim());
        REASONS
            .iter()
            .find(|(cli, aws, _)| norm(cli) == want || norm(aws) == want)
            .map(|(name, _, code)| Reason { name, code: *code })
            .ok_or_else(|| {
                Error::input(format!(
                    "unknown revocation reason '{}': expected one of {}",
                    duration::shown(s),
                    REASONS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
                ))
            })
    }
}

/// Parses `--next-update` with the tool's one duration parser; zero is refused.
pub fn parse_next_update(s: &str) -> Result<Duration> {
    let d =
        duration::parse(s).map_err(|e| Error::input(format!("--next-update: {}", e.message(s))))?;
    if d.count == 0 {
        return Err(Error::input(
            "--next-update: nextUpdate must be later than thisUpdate (give a positive duration)",
        ));
    }
    Ok(d)
}

/// `start` plus `n` calendar months (the day is kept, or the month's last day).
fn add_months(start: OffsetDateTime, n: u32) -> Option<OffsetDateTime> {
    let months =
        i64::from(start.year()) * 12 + i64::from(u8::from(start.month()) - 1) + i64::from(n);
    let year = i32::try_from(months.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(months.rem_euclid(12) + 1).ok()?).ok()?;
    let day = start.day().min(month.length(year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(start.replace_date(date))
}

/// `start` plus a duration (calendar months and years stay calendar units).
pub fn add_duration(start: OffsetDateTime, d: Duration) -> Result<OffsetDateTime> {
    let n = i64::from(d.count);
    let end = match d.unit {
        Unit::Seconds => start.checked_add(time::Duration::seconds(n)),
        Unit::Minutes => start.checked_add(time::Duration::minutes(n)),
        Unit::Hours => start.checked_add(time::Duration::hours(n)),
        Unit::Days => start.checked_add(time::Duration::days(n)),
        Unit::Weeks => start.checked_add(time::Duration::weeks(n)),
        Unit::Months => add_months(start, d.count),
        Unit::Years => d.count.checked_mul(12).and_then(|m| add_months(start, m)),
    };
    end.ok_or_else(|| Error::input(format!("--next-update {d} overflows the calendar")))
}

/// What `key-ceremony crl` needs.
#[derive(Debug, Clone)]
pub struct CrlRequest {
    /// Where the CRL goes (`-`: PEM on stdout); must not exist.
    pub out: PathBuf,
    /// Write DER instead of PEM (to a file only).
    pub der: bool,
    /// The root certificate (PEM).
    pub root_cert: PathBuf,
    /// The ceremony transcript (verified, then appended to).
    pub transcript: PathBuf,
    /// Root key label; `None` = the key that sealed the transcript.
    pub key_label: Option<String>,
    /// Subordinate CA certificates to revoke (PEM).
    pub revoke: Vec<PathBuf>,
    /// The reason of the newly revoked certificates.
    pub reason: Reason,
    /// nextUpdate − thisUpdate.
    pub next_update: Duration,
    /// Operators present.
    pub operators: Vec<String>,
}

/// One certificate of the CRL, as the transcript records it.
#[derive(Debug, Clone)]
pub struct CrlListing {
    /// Serial, hex (the certificate's DER INTEGER content).
    pub serial: String,
    /// Subject of the revoked certificate.
    pub subject: String,
    /// When it was first revoked.
    pub revocation_date: OffsetDateTime,
    /// Why.
    pub reason: Reason,
    /// SHA-256 of the certificate DER.
    pub certificate_sha256: String,
}

impl CrlListing {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "serial": self.serial,
            "subject": self.subject,
            "revocation_date": rfc3339(self.revocation_date),
            "reason": self.reason.name,
            "certificate_sha256": self.certificate_sha256,
        })
    }

    fn from_json(v: &serde_json::Value) -> Result<CrlListing> {
        let bad = || {
            Error::Ceremony(format!(
                "the transcript's last {CRL_STEP} entry lists a malformed certificate: {v}"
            ))
        };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).ok_or_else(bad);
        let date = OffsetDateTime::parse(
            text("revocation_date")?,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| bad())?;
        hex::decode(text("serial")?).map_err(|_| bad())?;
        Ok(CrlListing {
            serial: text("serial")?.to_string(),
            subject: text("subject")?.to_string(),
            revocation_date: date,
            reason: Reason::parse(text("reason")?).map_err(|_| bad())?,
            certificate_sha256: text("certificate_sha256")?.to_string(),
        })
    }
}

/// What the last CRL recorded in the transcript said.
#[derive(Debug, Clone, Default)]
struct PreviousCrl {
    number: u64,
    this_update: Option<OffsetDateTime>,
    listed: Vec<CrlListing>,
}

fn previous_crl(t: &Transcript) -> Result<PreviousCrl> {
    let Some(last) = t.entries()?.into_iter().rev().find(|e| e.step == CRL_STEP) else {
        return Ok(PreviousCrl::default());
    };
    let bad = |what: &str| {
        Error::Ceremony(format!(
            "the transcript's last {CRL_STEP} entry (seq {}) has no valid {what}",
            last.seq
        ))
    };
    let d = &last.details;
    let number = d
        .get("crl_number")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| bad("crl_number"))?;
    let this_update = d
        .get("this_update")
        .and_then(|v| v.as_str())
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .ok_or_else(|| bad("this_update"))?;
    let listed = d
        .get("revoked")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("revoked list"))?
        .iter()
        .map(CrlListing::from_json)
        .collect::<Result<Vec<_>>>()?;
    Ok(PreviousCrl {
        number,
        this_update: Some(this_update),
        listed,
    })
}

/// Everything step 1 established: what will be signed.
#[derive(Debug, Clone)]
pub struct CrlPlan {
    /// The verified transcript.
    pub transcript: Transcript,
    /// The root key's label.
    pub key_label: String,
    /// The root certificate.
    pub root: CertInfo,
    /// The root's key (to match the HSM key against).
    pub root_key: SealKey,
    /// The root's subject Name, DER (the CRL's issuer).
    pub issuer: Vec<u8>,
    /// The root's subject key identifier (the CRL's AKI).
    pub authority_key_id: Vec<u8>,
    /// cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Every certificate the CRL lists (earlier CRLs' first, then the new ones).
    pub listed: Vec<CrlListing>,
    /// Serials (hex) revoked by this run.
    pub newly_revoked: Vec<String>,
}

fn parse_cert<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::input(format!("{what} is not a valid X.509 certificate: {e}")))
}

/// Reads one certificate to revoke: exactly one PEM CERTIFICATE block.
fn read_revoke_pem(path: &Path) -> Result<Vec<u8>> {
    let text = crate::fsutil::read_text_bounded(path, "certificate", 64 * 1024)?;
    if !text.contains("-----BEGIN ") {
        return Err(Error::input(format!(
            "--revoke {} is not a PEM certificate",
            path.display()
        )));
    }
    let p = crate::fsutil::single_pem(&text, &format!("--revoke {}", path.display()))?;
    if p.tag() != "CERTIFICATE" {
        return Err(Error::input(format!(
            "--revoke {} holds a PEM '{}', not a CERTIFICATE",
            path.display(),
            p.tag()
        )));
    }
    Ok(p.contents().to_vec())
}

/// A certificate to revoke: a CA certificate issued by this root (not the root itself).
fn check_revoked_cert(
    path: &Path,
    root_der: &[u8],
    now: OffsetDateTime,
    reason: Reason,
) -> Result<CrlListing> {
    let what = format!("--revoke {}", path.display());
    let der = read_revoke_pem(path)?;
    let cert = parse_cert(&der, &what)?;
    let root = parse_cert(root_der, "the root certificate")?;
    if der == root_der {
        return Err(Error::input(format!(
            "{what} is the root certificate itself: the root's CRL lists subordinate CA certificates"
        )));
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca);
    if !is_ca {
        return Err(Error::input(format!(
            "{what} is not a CA certificate (no basicConstraints CA:TRUE): the root's CRL lists only subordinate CA certificates"
        )));
    }
    if cert.issuer().as_raw() != root.subject().as_raw()
        || cert.verify_signature(Some(root.public_key())).is_err()
    {
        return Err(Error::input(format!(
            "{what} was not issued by this root (issuer '{}', or its signature does not verify with the key of the root '{}')",
            cert.issuer(),
            root.subject()
        )));
    }
    let info = cert_info(&der)?;
    Ok(CrlListing {
        serial: info.serial,
        subject: info.subject,
        revocation_date: now,
        reason,
        certificate_sha256: sha256_hex(&der),
    })
}

/// thisUpdate and nextUpdate, checked against the root's validity, the 12-month limit and the
/// previous CRL.
fn crl_times(
    req: &CrlRequest,
    root: &CertInfo,
    previous: &PreviousCrl,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let this_update = now_seconds();
    let next_update = add_duration(this_update, req.next_update)?;
    let limit = add_months(this_update, MAX_NEXT_UPDATE_MONTHS)
        .ok_or_else(|| Error::input("thisUpdate overflows the calendar"))?;
    if next_update <= this_update {
        return Err(Error::input(
            "--next-update: nextUpdate must be later than thisUpdate",
        ));
    }
    if next_update > limit {
        return Err(Error::input(format!(
            "--next-update {}: nextUpdate {} is more than {MAX_NEXT_UPDATE_MONTHS} months after thisUpdate {}",
            req.next_update,
            rfc3339(next_update),
            rfc3339(this_update)
        )));
    }
    if this_update < root.not_before || next_update > root.not_after {
        return Err(Error::input(format!(
            "--next-update {}: thisUpdate {} and nextUpdate {} must lie within the root certificate's validity ({} to {})",
            req.next_update,
            rfc3339(this_update),
            rfc3339(next_update),
            rfc3339(root.not_before),
            rfc3339(root.not_after)
        )));
    }
    if let Some(prev) = previous.this_update.filter(|p| this_update < *p) {
        return Err(Error::input(format!(
            "thisUpdate {} is before the previous CRL's ({}): check this machine's clock",
            rfc3339(this_update),
            rfc3339(prev)
        )));
    }
    Ok((this_update, next_update))
}

/// The earlier CRL's listing plus the certificates revoked now (a certificate listed before keeps
/// its first date and reason; one given twice is refused).
fn merge_listing(
    req: &CrlRequest,
    root_der: &[u8],
    this_update: OffsetDateTime,
    previous: PreviousCrl,
    out: &mut dyn Write,
) -> Result<(Vec<CrlListing>, Vec<String>)> {
    let mut listed = previous.listed;
    let mut new = Vec::new();
    for path in &req.revoke {
        let l = check_revoked_cert(path, root_der, this_update, req.reason)?;
        if new.contains(&l.serial) {
            return Err(Error::input(format!(
                "--revoke {}: serial {} is given twice",
                path.display(),
                l.serial
            )));
        }
        if let Some(old) = listed.iter().find(|o| o.serial == l.serial) {
            say(
                out,
                format!(
                    "  note:         serial {} ({}) is already revoked since {} ({}): listed as before",
                    l.serial,
                    l.subject,
                    rfc3339(old.revocation_date),
                    old.reason.name
                ),
            )?;
            continue;
        }
        new.push(l.serial.clone());
        listed.push(l);
    }
    Ok((listed, new))
}

fn check_out(req: &CrlRequest) -> Result<()> {
    if is_stdout(&req.out) {
        if req.der {
            return Err(Error::input("--der needs --out FILE (stdout gets PEM)"));
        }
        return Ok(());
    }
    let target = check_output(&req.out, false)?;
    match target.parent() {
        Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => Err(Error::input(format!(
            "cannot write {}: directory {} does not exist",
            req.out.display(),
            d.display()
        ))),
        _ => Ok(()),
    }
}

/// Step 1: every check that needs no HSM (see the module docs).
pub fn plan_crl(req: &CrlRequest, out: &mut dyn Write) -> Result<CrlPlan> {
    check_out(req)?;
    let (_, root_der) = super::x509::read_cert_pem(&req.root_cert)?;
    let root = cert_info(&root_der)?;
    if !matches!(root.basic_constraints, Some((true, _))) {
        return Err(Error::input(format!(
            "{} is not a CA certificate (no basicConstraints CA:TRUE)",
            req.root_cert.display()
        )));
    }
    let (transcript, report, _) = verify_transcript_file(&req.transcript, Some(&req.root_cert))?;
    let previous = previous_crl(&transcript)?;
    let number = previous
        .number
        .checked_add(1)
        .ok_or_else(|| Error::Ceremony("the CRL number overflows".into()))?;
    let (this_update, next_update) = crl_times(req, &root, &previous)?;
    let (listed, newly_revoked) = merge_listing(req, &root_der, this_update, previous, out)?;
    let parsed = parse_cert(&root_der, "the root certificate")?;
    let authority_key_id = match &root.ski {
        Some(h) => hex::decode(h).map_err(|_| Error::Certificate("root SKI".into()))?,
        None => super::x509::key_identifier(&parsed.public_key().subject_public_key.data),
    };
    Ok(CrlPlan {
        key_label: req.key_label.clone().unwrap_or(report.key_label),
        root_key: spki_ec_key(&root.spki)?,
        issuer: parsed.subject().as_raw().to_vec(),
        authority_key_id,
        root,
        transcript,
        number,
        this_update,
        next_update,
        listed,
        newly_revoked,
    })
}

/// Prints what will be signed (also the whole output of `--dry-run`).
pub fn print_crl_plan(req: &CrlRequest, p: &CrlPlan, out: &mut dyn Write) -> Result<()> {
    say(
        out,
        format!(
            "  root:         {} (SHA-256 {})",
            p.root.subject,
            fingerprint(&p.root.der)
        ),
    )?;
    say(
        out,
        format!("  transcript:   {} OK", req.transcript.display()),
    )?;
    say(out, format!("  CRL number:   {}", p.number))?;
    say(
        out,
        format!(
            "  thisUpdate:   {}, nextUpdate: {} ({})",
            rfc3339(p.this_update),
            rfc3339(p.next_update),
            req.next_update
        ),
    )?;
    say(
        out,
        "  extensions:   AKI, cRLNumber, issuingDistributionPoint critical onlyContainsCACerts",
    )?;
    say(
        out,
        format!(
            "  revoked:      {} certificate(s), {} new",
            p.listed.len(),
            p.newly_revoked.len()
        ),
    )?;
    for l in &p.listed {
        let new = if p.newly_revoked.contains(&l.serial) {
            " (new)"
        } else {
            ""
        };
        say(
            out,
            format!(
                "    serial {} {} - {} since {}{new}",
                l.serial,
                l.subject,
                l.reason.name,
                rfc3339(l.revocation_date)
            ),
        )?;
    }
    say(out, format!("  out:          {}", req.out.display()))
}

/// The signed and checked CRL.
struct SignedCrl {
    der: Vec<u8>,
    pem: String,
}

/// Step 2: the TBSCertList signed by the root key in the HSM, checked against the root's key.
fn sign_tbs(p: &CrlPlan, signer: &HsmSigner<'_>) -> Result<SignedCrl> {
    let revoked = p
        .listed
        .iter()
        .map(|l| {
            Ok(RevokedEntry {
                serial: hex::decode(&l.serial)
                    .map_err(|_| Error::Certificate(format!("serial {} is not hex", l.serial)))?,
                revocation_time: l.revocation_date,
                reason_code: l.reason.code,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tbs = crl_der::tbs_cert_list(&CrlContent {
        curve: signer.curve(),
        issuer: &p.issuer,
        this_update: p.this_update,
        next_update: p.next_update,
        revoked: &revoked,
        authority_key_id: &p.authority_key_id,
        number: p.number,
    })?;
    let sig = signer.sign_der(&tbs)?;
    let der = crl_der::certificate_list(signer.curve(), &tbs, &sig);
    check_signed(p, &der)?;
    let pem = pem::encode_config(
        &pem::Pem::new("X509 CRL", der.clone()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    Ok(SignedCrl { der, pem })
}

/// The new CRL parses, verifies with the root certificate's key and says what was planned.
fn check_signed(p: &CrlPlan, der: &[u8]) -> Result<()> {
    use x509_parser::prelude::FromDer;
    let bad = |what: String| Error::Certificate(format!("the new CRL {what}"));
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| bad(format!("does not parse: {e}")))?;
    let root = parse_cert(&p.root.der, "the root certificate")?;
    crl.verify_signature(root.public_key())
        .map_err(|e| bad(format!("does not verify with the root key: {e}")))?;
    let number = crl.crl_number().map(|n| n.to_string());
    if number != Some(p.number.to_string())
        || crl.iter_revoked_certificates().count() != p.listed.len()
    {
        return Err(bad(format!(
            "carries number {number:?} and {} entries where {} and {} were planned",
            crl.iter_revoked_certificates().count(),
            p.number,
            p.listed.len()
        )));
    }
    Ok(())
}

/// What `key-ceremony crl` produced.
#[derive(Debug, Clone)]
pub struct CrlOutcome {
    /// cRLNumber.
    pub number: u64,
    /// The CRL, PEM (what `--out -` prints).
    pub pem: String,
    /// SHA-256 of the CRL DER (hex).
    pub sha256: String,
    /// Transcript head after the new seal.
    pub head: String,
}

/// Runs `key-ceremony crl` on a plan from [`plan_crl`]: signs (step 2) and records and writes
/// (step 3). With `--out -` the caller prints [`CrlOutcome::pem`].
pub fn sign_crl(
    req: &CrlRequest,
    mut p: CrlPlan,
    opts: &ConnectOptions,
    out: &mut dyn Write,
) -> Result<CrlOutcome> {
    say(
        out,
        format!(
            "[Step 2/{CRL_STEPS}] Sign CRL number {} with the HSM root key '{}'",
            p.number, p.key_label
        ),
    )?;
    let session = HsmSession::connect(opts)?;
    let signer = HsmSigner::ceremony(&session, &KeySpec::label(p.key_label.clone()))?;
    if signer.curve() != p.root_key.curve || signer.public_point() != p.root_key.point.as_slice() {
        return Err(Error::Ceremony(format!(
            "the key '{}' on token '{}' is not the key of {}",
            p.key_label,
            session.token_label(),
            req.root_cert.display()
        )));
    }
    let crl = sign_tbs(&p, &signer)?;
    let sha256 = sha256_hex(&crl.der);
    say(out, format!("  CRL SHA-256:  {}", fingerprint(&crl.der)))?;
    say(
        out,
        format!("[Step 3/{CRL_STEPS}] Append to the transcript, then write the CRL"),
    )?;
    let before = p.transcript.to_text();
    p.transcript
        .append(CRL_STEP, crl_entry(req, &p, &crl, &sha256))?;
    p.transcript
        .seal(&p.key_label, signer.curve(), |m| signer.sign_der(m))?;
    write_atomic(&req.transcript, p.transcript.to_text().as_bytes(), true)?;
    if let Err(e) = write_crl(req, &crl) {
        let _ = write_atomic(&req.transcript, before.as_bytes(), true);
        return Err(e);
    }
    let head = p.transcript.head();
    say(
        out,
        format!(
            "  transcript:   {} ({} entries, head {head})",
            req.transcript.display(),
            p.transcript.len()
        ),
    )?;
    say(
        out,
        format!(
            "CRL number {} signed: {} revoked certificate(s), next update {}",
            p.number,
            p.listed.len(),
            rfc3339(p.next_update)
        ),
    )?;
    Ok(CrlOutcome {
        number: p.number,
        pem: crl.pem,
        sha256,
        head,
    })
}

fn crl_entry(req: &CrlRequest, p: &CrlPlan, crl: &SignedCrl, sha256: &str) -> serde_json::Value {
    serde_json::json!({
        "operators": req.operators,
        "crl_number": p.number,
        "this_update": rfc3339(p.this_update),
        "next_update": rfc3339(p.next_update),
        "next_update_period": req.next_update.to_string(),
        "issuing_distribution_point": "critical, onlyContainsCACerts",
        "revoked": p.listed.iter().map(CrlListing::to_json).collect::<Vec<_>>(),
        "newly_revoked": p.newly_revoked,
        "sha256": sha256,
        "crl_pem": crl.pem,
        "crl_path": req.out.display().to_string(),
    })
}

/// Writes the CRL file (after the transcript: see the module docs).
fn write_crl(req: &CrlRequest, crl: &SignedCrl) -> Result<()> {
    kill_point!("crl-transcript-written");
    if is_stdout(&req.out) {
        return Ok(());
    }
    let bytes = if req.der {
        &crl.der
    } else {
        crl.pem.as_bytes()
    };
    write_atomic(&req.out, bytes, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn reasons_parse_in_every_spelling() {
        for (s, code) in [
            ("key-compromise", 1),
            ("KEY_COMPROMISE", 1),
            ("keyCompromise", 1),
            ("cACompromise", 2),
            ("CERTIFICATE_AUTHORITY_COMPROMISE", 2),
            ("superseded", 4),
            ("cessation-of-operation", 5),
            ("unspecified", 0),
        ] {
            assert_eq!(Reason::parse(s).unwrap().code, code, "{s}");
        }
        let e = Reason::parse("stolen").unwrap_err().one_line();
        assert!(e.contains("unknown revocation reason 'stolen'"), "{e}");
    }

    /// The same names as `pca revoke`.
    #[test]
    fn reason_names_are_those_of_pca_revoke() {
        let ours: Vec<_> = REASONS.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(ours, crate::pca::revoke::REASONS.to_vec());
    }

    #[test]
    fn calendar_months_and_limits() {
        let t = datetime!(2026-01-31 10:00:00 UTC);
        assert_eq!(
            add_months(t, 1).unwrap(),
            datetime!(2026-02-28 10:00:00 UTC)
        );
        assert_eq!(
            add_months(t, 12).unwrap(),
            datetime!(2027-01-31 10:00:00 UTC)
        );
        let d = parse_next_update("1y").unwrap();
        assert_eq!(add_duration(t, d).unwrap(), add_months(t, 12).unwrap());
        let d = parse_next_update("30d").unwrap();
        assert_eq!(
            add_duration(t, d).unwrap(),
            datetime!(2026-03-02 10:00:00 UTC)
        );
        assert!(parse_next_update("0d").is_err());
        assert!(parse_next_update("12m")
            .unwrap_err()
            .one_line()
            .contains("ambiguous"));
    }
}
