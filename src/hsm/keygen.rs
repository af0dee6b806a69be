//! `generate-key`: an ECDSA key pair inside the token. The private key is CKA_TOKEN, CKA_PRIVATE,
//! CKA_SENSITIVE and not extractable. A label (or id) that already exists is refused unless asked
//! otherwise; if anything fails after the pair was created, both halves are destroyed.
//!
//! The label check and C_GenerateKeyPair run under the token's cross-process lock
//! ([`TokenLock`]), so concurrent processes cannot both pass the check. C_GenerateKeyPair is never
//! retried: a failed call may still have written one or both objects (SoftHSM2 writes them one
//! after the other), so the objects with this label and our fresh id are looked up and destroyed
//! before the error is returned.
//!
//! An `--id` carrying the key-ceremony mark ([`crate::hsm::role`]) is refused: only
//! [`generate_ceremony_key`] creates a key with it.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::{read_public_key, KeySpec};
use crate::hsm::role::{self, KeyRole};
use crate::hsm::session::HsmSession;

/// What to generate.
#[derive(Debug, Clone)]
pub struct KeygenRequest {
    /// CKA_LABEL of both halves.
    pub label: String,
    /// The curve.
    pub curve: Curve,
    /// CKA_ID; `None` = 8 random bytes.
    pub id: Option<Vec<u8>>,
    /// Allow a label that already exists (the id must still be new).
    pub allow_duplicate_label: bool,
    /// The caller vouches that `id` is new (derived from something unique, e.g. the claim of
    /// a device key): generation then skips the search that would check it.
    pub id_is_new: bool,
}

impl KeygenRequest {
    /// A P-256 key with a random id, refusing an existing label.
    pub fn new(label: impl Into<String>, curve: Curve) -> Self {
        KeygenRequest {
            label: label.into(),
            curve,
            id: None,
            allow_duplicate_label: false,
            id_is_new: false,
        }
    }
}

/// The generated pair.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// The curve.
    pub curve: Curve,
    /// Uncompressed SEC1 public point.
    pub public_point: Vec<u8>,
    /// Public key handle (this session only).
    pub public_handle: ObjectHandle,
    /// Private key handle (this session only).
    pub private_handle: ObjectHandle,
}

fn exists(session: &HsmSession, spec: &KeySpec) -> Result<bool> {
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if !session.find_keys(class, spec)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Destroys every private and public key matching `spec` (e.g. half a key pair), under the
/// token lock the caller holds. Returns how many objects were destroyed.
pub fn destroy_keys(session: &HsmSession, spec: &KeySpec, _lock: &TokenLock) -> Result<usize> {
    let mut n = 0;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        for h in session.find_keys(class, spec)? {
            session.session().destroy_object(h)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Whatever a failed C_GenerateKeyPair left behind carries our label and our fresh id: remove it
/// so no half pair remains.
fn clean_up_failed_generation(session: &HsmSession, label: &str, id: &[u8], lock: &TokenLock) {
    let ours = KeySpec {
        label: Some(label.to_string()),
        id: Some(id.to_vec()),
    };
    match destroy_keys(session, &ours, lock) {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!(label = %label, n, "removed objects left by a failed C_GenerateKeyPair")
        }
        Err(ce) => {
            tracing::warn!(label = %label, "could not clean up after a failed C_GenerateKeyPair: {}", ce.one_line())
        }
    }
}

/// Generates the key pair under the token's cross-process lock. The session must be logged in.
pub fn generate_key(session: &HsmSession, req: &KeygenRequest) -> Result<GeneratedKey> {
    validate(session, req)?;
    let lock = TokenLock::acquire(session)?;
    generate_key_locked(session, req, &lock)
}

/// Generates the root key pair of a key ceremony: CKA_ID `ceremony_id` (which must carry the
/// ceremony mark, see [`role::ceremony_key_id`]), under the token lock. The label must be new.
pub fn generate_ceremony_key(
    session: &HsmSession,
    label: &str,
    curve: Curve,
    ceremony_id: &[u8],
) -> Result<GeneratedKey> {
    if role::role_of(ceremony_id) != KeyRole::Ceremony {
        return Err(Error::input(
            "a key-ceremony key needs a CKA_ID with the ceremony mark",
        ));
    }
    let req = KeygenRequest {
        id: Some(ceremony_id.to_vec()),
        ..KeygenRequest::new(label, curve)
    };
    validate_shape(session, &req)?;
    let lock = TokenLock::acquire(session)?;
    generate_unchecked(session, &req, &lock)
}

fn validate(session: &HsmSession, req: &KeygenRequest) -> Result<()> {
    validate_shape(session, req)?;
    if req
        .id
        .as_deref()
        .is_some_and(|i| role::role_of(i) == KeyRole::Ceremony)
    {
        return Err(Error::input(format!(
            "the key id may not start with '{}': that prefix marks key-ceremony keys",
            String::from_utf8_lossy(role::CEREMONY_ID_PREFIX)
        )));
    }
    Ok(())
}

fn validate_shape(session: &HsmSession, req: &KeygenRequest) -> Result<()> {
    if req.label.is_empty() {
        return Err(Error::input("the key label must not be empty"));
    }
    if req.id.as_ref().is_some_and(|i| i.is_empty()) {
        return Err(Error::input("the key id must not be empty"));
    }
    if !session.is_logged_in() {
        return Err(Error::input("generate-key needs a logged-in session"));
    }
    Ok(())
}

/// [`generate_key`] for a caller that already holds the token lock (e.g. to remove a half key
/// pair and regenerate it atomically).
pub fn generate_key_locked(
    session: &HsmSession,
    req: &KeygenRequest,
    lock: &TokenLock,
) -> Result<GeneratedKey> {
    validate(session, req)?;
    generate_unchecked(session, req, lock)
}

/// Test-only: C_GenerateKeyPair "fails" after it created the pair (as a module that fails
/// half-way would), so the clean-up after a failed generation is exercised.
#[cfg(feature = "failpoints")]
fn fails_after_creating(
    h: (ObjectHandle, ObjectHandle),
) -> std::result::Result<(ObjectHandle, ObjectHandle), cryptoki::error::Error> {
    fail::fail_point!("keygen-fails-after-creating", |_| Err(
        cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::DeviceError,
            cryptoki::context::Function::GenerateKeyPair
        )
    ));
    Ok(h)
}

fn generate_unchecked(
    session: &HsmSession,
    req: &KeygenRequest,
    lock: &TokenLock,
) -> Result<GeneratedKey> {
    let token = session.token_label().to_string();
    if !req.allow_duplicate_label && exists(session, &KeySpec::label(req.label.clone()))? {
        return Err(Error::KeyExists {
            what: format!("label '{}'", req.label),
            token,
        });
    }
    let id = match &req.id {
        Some(i) => {
            let spec = KeySpec {
                label: None,
                id: Some(i.clone()),
            };
            if !req.id_is_new && exists(session, &spec)? {
                return Err(Error::KeyExists {
                    what: format!("id {}", hex::encode(i)),
                    token,
                });
            }
            i.clone()
        }
        None => rand::random::<[u8; 8]>().to_vec(),
    };
    let label = req.label.as_bytes().to_vec();
    let public_tpl = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(req.curve.ec_params().to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let private_tpl = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Label(label),
        Attribute::Id(id.clone()),
    ];
    let generated =
        session
            .session()
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public_tpl, &private_tpl);
    #[cfg(feature = "failpoints")]
    let generated = generated.and_then(fails_after_creating);
    let (public_handle, private_handle) = match generated {
        Ok(h) => h,
        Err(e) => {
            // Not retried (a retry could leave two pairs).
            clean_up_failed_generation(session, &req.label, &id, lock);
            return Err(e.into());
        }
    };
    // From here on, failure must not leave a half key pair behind.
    let check = || -> Result<Vec<u8>> {
        let (curve, point) = read_public_key(session, public_handle)?;
        if curve != req.curve {
            return Err(Error::Other(format!(
                "the token generated a {} key when {} was asked for",
                curve.name(),
                req.curve.name()
            )));
        }
        Ok(point)
    };
    match check() {
        Ok(public_point) => {
            tracing::debug!(label = %req.label, id = %hex::encode(&id), "generated key pair");
            Ok(GeneratedKey {
                label: req.label.clone(),
                id,
                curve: req.curve,
                public_point,
                public_handle,
                private_handle,
            })
        }
        Err(e) => {
            let _ = session.session().destroy_object(private_handle);
            let _ = session.session().destroy_object(public_handle);
            Err(e)
        }
    }
}
