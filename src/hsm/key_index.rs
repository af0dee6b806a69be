//! The key labels on a token, read once, so that a batch does not search the token per device.
//!
//! Why: a PKCS#11 search (C_FindObjectsInit/C_FindObjects) on SoftHSM2's file object store costs
//! time per object ON THE TOKEN — the module re-checks every object file's generation (open, lock,
//! read) on every search — so a per-device look-up makes a batch quadratic: measured on this
//! project's 2-core machine, 6 searches per device took a 1,500-device run from 43 to 6.8
//! devices/s. A batch instead reads every key's CKA_LABEL once when its HSM pool starts and keeps
//! the set up to date with the keys it generates itself; a device whose label is absent gets its
//! key generated with no search at all.
//!
//! The index is a snapshot plus this process's own writes, so "absent" is trusted only together
//! with the registry's word that no runner can have made the key (`KeyBinding::unsearched` in
//! `pca::device_key`): every key hsm-demo generates for a device is generated while holding the
//! device's intent in the registry, and a runner that gives an intent up removes the key it made.
//! So a device with no registry item at all (`provision`), or a renewal's own new intent for a
//! label that only that generation uses (`device-<id>-g<n>`), has no key that another runner made
//! after the snapshot. Anything else — a label in the index, a resumed or taken-over intent, an
//! earlier generation, a FAILED marker — takes the searching path. Should a crash ever leave a key
//! behind that the snapshot missed, the new key still carries its own claim's CKA_ID, and the next
//! search of the label removes the one no record names (`pca::device_key::plan`).
//!
//! Labels are kept as 64-bit keyed hashes (SipHash with a per-process random key): 8 bytes a
//! label, about 0.3 MiB for a 10,000-device token. A collision can only make an absent label look
//! present, which sends that device down the searching path: slower, never wrong.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use cryptoki::error::RvError;
use cryptoki::object::ObjectClass;

use crate::error::Result;
use crate::hsm::role::TokenKeys;
use crate::hsm::session::HsmSession;

/// The labels of the private and public keys on one token.
#[derive(Debug, Default)]
pub struct KeyIndex {
    hasher: RandomState,
    labels: HashSet<u64>,
}

impl KeyIndex {
    /// Reads the label and id of every private and public key `session` can see (log in first:
    /// private keys are hidden otherwise). One search per class plus one attribute read per key.
    ///
    /// The index is for provisioning devices, so a token holding a key-ceremony key (a root CA
    /// key, [`crate::hsm::role`]) is refused here, from the ids this read already has.
    pub fn load(session: &HsmSession) -> Result<KeyIndex> {
        let mut idx = KeyIndex::default();
        let mut roles = TokenKeys::default();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for h in session.find_all_of_class(class)? {
                let (label, id) = match session.label_and_id(h) {
                    Ok(x) => x,
                    // Destroyed by another process between the search and this read (a runner
                    // removing a given-up claim's key): gone, so rightly not in the index.
                    Err(e)
                        if e.pkcs11()
                            .is_some_and(|(_, rv)| rv == RvError::ObjectHandleInvalid) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                idx.insert(&label);
                roles.note(class, label, &id);
            }
        }
        roles.refuse_ceremony_keys(session.token_label())?;
        Ok(idx)
    }

    fn hash(&self, label: &str) -> u64 {
        self.hasher.hash_one(label)
    }

    /// Whether a key labelled `label` may exist (false: it did not when the index was loaded and
    /// this process has not generated one since).
    pub fn may_contain(&self, label: &str) -> bool {
        self.labels.contains(&self.hash(label))
    }

    /// Records a key this process generated.
    pub fn insert(&mut self, label: &str) {
        let h = self.hash(label);
        self.labels.insert(h);
    }

    /// Labels indexed.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_until_inserted() {
        let mut idx = KeyIndex::default();
        assert!(!idx.may_contain("device-a"));
        idx.insert("device-a");
        assert!(idx.may_contain("device-a"));
        assert!(!idx.may_contain("device-b"));
        assert_eq!(idx.len(), 1);
    }
}
