//! `key-ceremony --recover`: undoes a ceremony that was killed after it wrote its journal
//! ([`super::journal`]), never a root whose transcript verifies.

use std::io::Write;
use std::path::Path;

use super::journal::{self as ceremony_journal, Journal};
use super::say;
use super::verify::verify_transcript_file;
use super::x509::sha256_hex;
use crate::error::{Error, Result};
use crate::hsm::keygen::destroy_keys;
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::role;
use crate::hsm::session::{ConnectOptions, HsmSession};

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
/// ([`super::journal`]). Removes exactly the key objects with the journal's label
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
