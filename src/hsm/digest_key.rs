//! The `sign` command's key: a private key found for signing only. One C_FindObjects (the
//! private key) and one C_GetAttributeValue (label, id, EC params) — no public-key look-up and no
//! EC point, which a signature does not need. [`crate::hsm::signer::HsmSigner`] stays the type
//! for certificates and CSRs (they need the public key).
//!
//! The key's role is checked as for every signer ([`crate::hsm::role`]): a key-ceremony key is
//! refused.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};

use crate::error::Result;
use crate::hsm::ec::Curve;
use crate::hsm::lookup::{find_public_key, KeySpec};
use crate::hsm::retry::retry_idempotent;
use crate::hsm::role;
use crate::hsm::session::HsmSession;

/// A private EC key and what signing with it needs.
#[derive(Debug)]
pub struct DigestKey<'s> {
    session: &'s HsmSession,
    key: ObjectHandle,
    curve: Curve,
    label: String,
    id: Vec<u8>,
}

impl<'s> DigestKey<'s> {
    /// Finds exactly one private key matching `spec` (the session must be logged in) and reads
    /// its label, id and curve in one call. A module that keeps no CKA_EC_PARAMS on private keys
    /// gets the curve from the public half (same label and id).
    pub fn find(session: &'s HsmSession, spec: &KeySpec) -> Result<DigestKey<'s>> {
        let key = session.find_key(ObjectClass::PRIVATE_KEY, spec)?;
        let want = [
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::EcParams,
        ];
        let attrs = retry_idempotent(|| session.session().get_attributes(key, &want))?;
        let (mut label, mut id, mut params) = (String::new(), Vec::new(), None);
        for a in attrs {
            match a {
                Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                Attribute::Id(v) => id = v,
                Attribute::EcParams(v) => params = Some(v),
                _ => {}
            }
        }
        role::require_ordinary(&label, &id)?;
        let curve = match params {
            Some(p) => Curve::from_ec_params(&p)?,
            None => {
                let spec = KeySpec {
                    label: Some(label.clone()),
                    id: Some(id.clone()),
                };
                find_public_key(session, &spec)?.0
            }
        };
        Ok(DigestKey {
            session,
            key,
            curve,
            label,
            id,
        })
    }

    /// The key's curve (it decides the hash: SHA-256 for P-256, SHA-384 for P-384).
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// CKA_LABEL.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// CKA_ID.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// CKM_ECDSA over a digest the caller computed: raw r‖s.
    pub fn sign_digest_raw(&self, digest: &[u8]) -> Result<Vec<u8>> {
        retry_idempotent(|| {
            self.session
                .session()
                .sign(&Mechanism::Ecdsa, self.key, digest)
        })
    }

    /// Hashes and signs `msg`; `f` receives the DER ECDSA-Sig-Value.
    pub fn sign_with_der<T>(&self, msg: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let d = self.curve.digest(msg);
        let raw = self.sign_digest_raw(d.as_ref())?;
        crate::hsm::ec::with_der_signature(self.curve, &raw, f)
    }
}
