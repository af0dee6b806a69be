//! `HsmSigner`: an ECDSA key pair in the token, usable directly and as rcgen's
//! [`rcgen::SigningKey`] + [`rcgen::PublicKeyData`] (certificates and CSRs signed in the HSM).
//!
//! The message is hashed in Rust (SHA-256 for P-256, SHA-384 for P-384); CKM_ECDSA signs the
//! digest in the HSM; the raw r‖s it returns is converted to a DER ECDSA-Sig-Value.
//!
//! Every signer is built here, and the key's role is checked here ([`crate::hsm::role`]): the
//! ordinary constructors refuse a key-ceremony key, [`HsmSigner::ceremony`] requires one. No
//! command can forget the check, because no command builds a signer another way.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{AttributeType, ObjectClass, ObjectHandle};

use crate::error::{Error, Result};
use crate::hsm::ec::{self, Curve};
use crate::hsm::keygen::GeneratedKey;
use crate::hsm::lookup::KeySpec;
pub use crate::hsm::lookup::{find_public_key, read_public_key};
use crate::hsm::retry::retry_idempotent;
use crate::hsm::role::{self, KeyRole};
use crate::hsm::session::HsmSession;

/// A private key in the token plus its public point.
#[derive(Debug)]
pub struct HsmSigner<'s> {
    session: &'s HsmSession,
    key: ObjectHandle,
    curve: Curve,
    /// Uncompressed SEC1 point `04‖X‖Y`.
    point: Vec<u8>,
    label: String,
    id: Vec<u8>,
}

fn check_role(role: KeyRole, label: &str, id: &[u8]) -> Result<()> {
    match role {
        KeyRole::Ordinary => role::require_ordinary(label, id),
        KeyRole::Ceremony => role::require_ceremony(label, id),
    }
}

impl<'s> HsmSigner<'s> {
    /// Finds the private key matching `spec` (exactly one) and its public key (same label and
    /// id, exactly one). The session must be logged in. A key-ceremony key is refused
    /// ([`crate::hsm::role`]): ordinary commands never sign with the root.
    pub fn new(session: &'s HsmSession, spec: &KeySpec) -> Result<HsmSigner<'s>> {
        Self::find(session, spec, KeyRole::Ordinary)
    }

    /// The key ceremony's signer: like [`Self::new`], but the key must carry the ceremony mark
    /// (only `key-ceremony` and its later steps call this).
    pub fn ceremony(session: &'s HsmSession, spec: &KeySpec) -> Result<HsmSigner<'s>> {
        Self::find(session, spec, KeyRole::Ceremony)
    }

    fn find(session: &'s HsmSession, spec: &KeySpec, role: KeyRole) -> Result<HsmSigner<'s>> {
        let key = session.find_key(ObjectClass::PRIVATE_KEY, spec)?;
        let (label, id) = session.label_and_id(key)?;
        check_role(role, &label, &id)?;
        // The matching public key: same label and id as the private key found.
        let pub_spec = KeySpec {
            label: Some(label.clone()),
            id: Some(id.clone()),
        };
        let public = session.find_key(ObjectClass::PUBLIC_KEY, &pub_spec)?;
        Self::pair(session, key, public, label, id)
    }

    /// The pair C_GenerateKeyPair just returned: no look-up (its handles, label, id and point are
    /// already known). A key-ceremony key is refused.
    pub fn from_generated(session: &'s HsmSession, key: &GeneratedKey) -> Result<HsmSigner<'s>> {
        role::require_ordinary(&key.label, &key.id)?;
        Ok(HsmSigner {
            session,
            key: key.private_handle,
            curve: key.curve,
            point: key.public_point.clone(),
            label: key.label.clone(),
            id: key.id.clone(),
        })
    }

    /// A private key and its public key found by the caller (e.g. by one label search), with the
    /// private key's CKA_LABEL and CKA_ID already read: reads the public point and cross-checks
    /// the private key's curve. A key-ceremony key is refused.
    pub fn from_pair(
        session: &'s HsmSession,
        key: ObjectHandle,
        public: ObjectHandle,
        label: String,
        id: Vec<u8>,
    ) -> Result<HsmSigner<'s>> {
        role::require_ordinary(&label, &id)?;
        Self::pair(session, key, public, label, id)
    }

    fn pair(
        session: &'s HsmSession,
        key: ObjectHandle,
        public: ObjectHandle,
        label: String,
        id: Vec<u8>,
    ) -> Result<HsmSigner<'s>> {
        let (curve, point) = read_public_key(session, public)?;
        // Cross-check the curve recorded on the private key when the token exposes it.
        if let Some(p) = session.get_bytes(key, AttributeType::EcParams)? {
            if Curve::from_ec_params(&p)? != curve {
                return Err(Error::Other(format!(
                    "private and public key '{label}' are on different curves"
                )));
            }
        }
        Ok(HsmSigner {
            session,
            key,
            curve,
            point,
            label,
            id,
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The uncompressed SEC1 public point `04‖X‖Y`.
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// CKA_LABEL of the private key.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// CKA_ID of the private key.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The private key's object handle (valid while the session stays logged in).
    pub fn handle(&self) -> ObjectHandle {
        self.key
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Result<Vec<u8>> {
        ec::spki_der(self.curve, &self.point)
    }

    /// PEM SubjectPublicKeyInfo.
    pub fn spki_pem(&self) -> Result<String> {
        ec::spki_pem(self.curve, &self.point)
    }

    /// CKM_ECDSA over a digest the caller computed: raw r‖s.
    pub fn sign_digest_raw(&self, digest: &[u8]) -> Result<Vec<u8>> {
        retry_idempotent(|| {
            self.session
                .session()
                .sign(&Mechanism::Ecdsa, self.key, digest)
        })
    }

    /// Hashes `msg` (SHA-256 / SHA-384) and signs it in the HSM: raw r‖s.
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let d = self.curve.digest(msg);
        self.sign_digest_raw(d.as_ref())
    }

    /// Hashes and signs `msg`; `f` receives the DER ECDSA-Sig-Value (no allocation for the DER).
    pub fn sign_with_der<T>(&self, msg: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let raw = self.sign_raw(msg)?;
        ec::with_der_signature(self.curve, &raw, f)
    }

    /// Hashes and signs `msg`: DER ECDSA-Sig-Value (what X.509 and `openssl dgst -verify` want).
    pub fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.sign_with_der(msg, |d| d.to_vec())
    }

    /// Verifies a DER or raw signature over `msg` with this key's public point, in software.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        ec::verify(self.curve, &self.point, msg, sig)
    }
}

impl rcgen::PublicKeyData for HsmSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.curve.rcgen_algorithm()
    }
}

impl rcgen::SigningKey for HsmSigner<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.sign_der(msg).map_err(|e| {
            tracing::error!("HSM signing for rcgen failed: {}", e.one_line());
            rcgen::Error::RemoteKeyError
        })
    }
}
