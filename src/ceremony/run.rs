//! `hsm-demo key-ceremony`: the four steps of the offline root CA key ceremony.
//!
//! 1. prepare and check the token and the operators (log in, refuse an existing root key);
//! 2. generate the root key pair in the HSM ([`super::root_key`]);
//! 3. create and check the self-signed root certificate ([`super::root_cert`]);
//! 4. write the root PEM and the sealed transcript ([`super::transcript`]).
//!
//! If step 3 or 4 fails, the new key pair is destroyed and nothing is left behind (a drop guard
//! owns the new pair until the transcript is written).
//!
//! Crash safety: before C_GenerateKeyPair the ceremony writes a journal beside its outputs
//! ([`super::journal`]) naming the key it is about to create; the journal goes when the
//! transcript is written. A ceremony killed in between leaves the journal, a new ceremony in that
//! directory is refused, and [`super::recover()`] (`key-ceremony --recover`) removes exactly the
//! journal's objects (never a root whose transcript verifies), after which the ceremony reruns.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::config::CeremonyPlan;
use super::journal::{self as ceremony_journal, Journal};
use super::root_cert::{root_certificate, RootCert};
use super::root_key::{generate_root, record_key};
use super::transcript::{self, Transcript};
use super::x509::sha256_hex;
use super::{now_seconds, rfc3339, say};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::hsm::keygen::GeneratedKey;
use crate::hsm::lookup::KeySpec;
use crate::hsm::role;
use crate::hsm::session::{ConnectOptions, HsmSession};
use crate::hsm::signer::HsmSigner;

/// Steps of the key ceremony.
pub const CEREMONY_STEPS: usize = 4;

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

/// Runs the key ceremony (the plan is already validated). Prints `[Step i/4]` lines to `out`.
///
/// Crash safety: the journal ([`super::journal`]) is written before the key pair is
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
