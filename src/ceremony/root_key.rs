//! Step 2 of the key ceremony: the root key pair in the HSM (CKA_TOKEN, CKA_PRIVATE,
//! CKA_SENSITIVE, not extractable, with the key-ceremony mark), generated after the journal is
//! written; the attributes are read back and recorded. A drop guard ([`NewRootKey`]) destroys
//! the new pair if a later step fails.

use std::io::Write;
use std::path::{Path, PathBuf};

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};

use super::config::CeremonyPlan;
use super::journal::{self as ceremony_journal, Journal};
use super::run::CEREMONY_STEPS;
use super::say;
use super::transcript::Transcript;
use super::x509::{fingerprint, sha256_hex};
use crate::error::{Error, Result};
use crate::hsm::ec;
use crate::hsm::keygen::{generate_ceremony_key, GeneratedKey};
use crate::hsm::lookup::KeySpec;
use crate::hsm::session::HsmSession;

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

/// The new root key pair, destroyed when this guard is dropped armed (any failure after
/// generation); with it go the journal and an output directory the ceremony created.
pub(super) struct NewRootKey<'s> {
    session: &'s HsmSession,
    pub(super) key: GeneratedKey,
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
    pub(super) fn abort(&mut self, why: Error) -> Error {
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
    pub(super) fn disarm(&mut self) {
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
pub(super) fn generate_root<'s>(
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

/// Step 2's record: the attributes read back and the public key, into the transcript.
pub(super) fn record_key(
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
