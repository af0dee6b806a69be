//! Key roles: which keys belong to the offline root key ceremony, and the one place that says so.
//!
//! **The mark.** `key-ceremony` gives both halves of the root key pair the CKA_ID
//! [`CEREMONY_ID_PREFIX`] (`hsm-demo/ceremony/`) followed by the ceremony id (32 lower-case hex
//! digits, also recorded in the transcript and the ceremony journal). Every other key hsm-demo
//! generates has a random 8-byte CKA_ID (or the `--id` an operator chose, which may not start with
//! the prefix), so a key is a ceremony key exactly when its CKA_ID starts with the prefix
//! ([`role_of`]).
//!
//! **What checks it.** Signers are built in one place ([`crate::hsm::signer::HsmSigner`]): an
//! ordinary signer (`sign`, `pca csr`, `pca issue`, `provision`) refuses a ceremony key, and the
//! ceremony's own constructor refuses any other key. `generate-key` refuses an `--id` with the
//! prefix, so no ordinary command can make a key look like a root. `provision` refuses a token
//! that holds a ceremony key at all ([`ceremony_keys`], and the batch path's key index), and
//! `key-ceremony` warns when its token holds other keys.
//!
//! The mark is a guard rail inside hsm-demo, not PKCS#11 access control: anyone with the user PIN
//! and another PKCS#11 tool can still use the key. The real separation is a separate token (with
//! its own PIN) for the root, kept offline.

use cryptoki::object::ObjectClass;

use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;

/// The CKA_ID prefix of a key-ceremony key pair.
pub const CEREMONY_ID_PREFIX: &[u8] = b"hsm-demo/ceremony/";

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The root key of a key ceremony: only `key-ceremony` may use it.
    Ceremony,
    /// Any other key (device keys, keys from `generate-key`).
    Ordinary,
}

/// The role of a key with CKA_ID `id`.
pub fn role_of(id: &[u8]) -> KeyRole {
    if id.starts_with(CEREMONY_ID_PREFIX) {
        KeyRole::Ceremony
    } else {
        KeyRole::Ordinary
    }
}

/// The CKA_ID of the root key pair of ceremony `ceremony_id`.
pub fn ceremony_key_id(ceremony_id: &str) -> Vec<u8> {
    let mut id = CEREMONY_ID_PREFIX.to_vec();
    id.extend_from_slice(ceremony_id.as_bytes());
    id
}

/// Refuses a ceremony key for an ordinary use (signing, provisioning, certifying).
pub fn require_ordinary(label: &str, id: &[u8]) -> Result<()> {
    match role_of(id) {
        KeyRole::Ordinary => Ok(()),
        KeyRole::Ceremony => Err(Error::KeyRole {
            label: label.to_string(),
            reason: "is a key-ceremony key: only key-ceremony may sign with it".into(),
        }),
    }
}

/// Refuses any key but a ceremony key for the ceremony's own signing.
pub fn require_ceremony(label: &str, id: &[u8]) -> Result<()> {
    match role_of(id) {
        KeyRole::Ceremony => Ok(()),
        KeyRole::Ordinary => Err(Error::KeyRole {
            label: label.to_string(),
            reason: "is not a key-ceremony key (its CKA_ID lacks the ceremony mark): key-ceremony signs only with a root key it generated".into(),
        }),
    }
}

/// The keys on a token by role.
#[derive(Debug, Default, Clone)]
pub struct TokenKeys {
    /// Labels of the ceremony keys (each half counted once, labels deduplicated).
    pub ceremony: Vec<String>,
    /// How many private keys are not ceremony keys.
    pub ordinary_private: usize,
}

/// Reads the CKA_ID of every private and public key `session` can see: one search per class plus
/// one attribute read per key (log in first: private keys are hidden otherwise).
pub fn token_keys(session: &HsmSession) -> Result<TokenKeys> {
    let mut keys = TokenKeys::default();
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        for h in session.find_all_of_class(class)? {
            let (label, id) = session.label_and_id(h)?;
            keys.note(class, label, &id);
        }
    }
    Ok(keys)
}

impl TokenKeys {
    /// Records one key.
    pub fn note(&mut self, class: ObjectClass, label: String, id: &[u8]) {
        match role_of(id) {
            KeyRole::Ceremony => {
                if !self.ceremony.contains(&label) {
                    self.ceremony.push(label);
                }
            }
            KeyRole::Ordinary if class == ObjectClass::PRIVATE_KEY => self.ordinary_private += 1,
            KeyRole::Ordinary => {}
        }
    }

    /// Refuses a token holding a ceremony key for provisioning.
    pub fn refuse_ceremony_keys(&self, token: &str) -> Result<()> {
        match self.ceremony.first() {
            None => Ok(()),
            Some(label) => Err(Error::KeyRole {
                label: label.clone(),
                reason: format!(
                    "on token '{token}' is a key-ceremony key: provision refuses a token that holds a root CA key (keep the root on a separate token)"
                ),
            }),
        }
    }
}

/// Refuses a token that holds any ceremony key (provisioning's check before it starts).
pub fn refuse_token_with_ceremony_key(session: &HsmSession) -> Result<()> {
    token_keys(session)?.refuse_ceremony_keys(session.token_label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_decides_the_role() {
        let id = ceremony_key_id("00ff");
        assert_eq!(id, b"hsm-demo/ceremony/00ff");
        assert_eq!(role_of(&id), KeyRole::Ceremony);
        assert_eq!(role_of(b"hsm-demo/ceremony"), KeyRole::Ordinary);
        assert_eq!(role_of(&[1, 2, 3, 4, 5, 6, 7, 8]), KeyRole::Ordinary);
        assert_eq!(role_of(b""), KeyRole::Ordinary);
        let e = require_ordinary("root-ca-key", &id).unwrap_err();
        assert_eq!(
            e.to_string(),
            "key 'root-ca-key' is a key-ceremony key: only key-ceremony may sign with it"
        );
        assert!(matches!(e, Error::KeyRole { .. }));
        assert!(require_ceremony("d", b"12345678").is_err());
        assert!(require_ceremony("r", &id).is_ok());
    }

    #[test]
    fn token_keys_counts_roles() {
        let mut k = TokenKeys::default();
        k.note(
            ObjectClass::PRIVATE_KEY,
            "root".into(),
            &ceremony_key_id("a"),
        );
        k.note(
            ObjectClass::PUBLIC_KEY,
            "root".into(),
            &ceremony_key_id("a"),
        );
        k.note(ObjectClass::PRIVATE_KEY, "device-1".into(), b"12345678");
        k.note(ObjectClass::PUBLIC_KEY, "device-1".into(), b"12345678");
        assert_eq!(k.ceremony, vec!["root".to_string()]);
        assert_eq!(k.ordinary_private, 1);
        let e = k.refuse_ceremony_keys("t").unwrap_err().to_string();
        assert!(
            e.starts_with("key 'root' on token 't' is a key-ceremony key"),
            "{e}"
        );
        assert!(TokenKeys::default().refuse_ceremony_keys("t").is_ok());
    }
}
