//! Repair of a device key pair an interrupted run left broken: half a pair (a run killed inside
//! C_GenerateKeyPair, which SoftHSM2 writes one object after the other) or a pair whose curve or
//! point is empty. Such a pair can never have signed anything; the caller decides whether it may
//! be removed (it must hold the right to the label, e.g. the device's intent) and regenerates it.

use cryptoki::object::{AttributeType, ObjectHandle};

use crate::error::Result;
use crate::hsm::keygen::destroy_keys;
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::role;
use crate::hsm::session::HsmSession;

/// False when a key object carries an empty curve or point: SoftHSM2 writes each object file in
/// place, so a run killed inside C_GenerateKeyPair can leave a labelled object whose CKA_EC_PARAMS
/// or CKA_EC_POINT is empty. Such a pair can never have signed a CSR, so it is treated like half a
/// pair ([`remove_broken_pair`]). A key on a curve we don't support is intact (never destroyed): it
/// fails later with a clear error.
pub fn pair_is_intact(
    session: &HsmSession,
    privs: &[ObjectHandle],
    pubs: &[ObjectHandle],
) -> Result<bool> {
    let non_empty =
        |h, ty| -> Result<bool> { Ok(session.get_bytes(h, ty)?.is_some_and(|v| !v.is_empty())) };
    // Some modules do not expose CKA_EC_PARAMS on private keys: only an empty value is broken.
    for &h in privs {
        if session
            .get_bytes(h, AttributeType::EcParams)?
            .is_some_and(|v| v.is_empty())
        {
            return Ok(false);
        }
    }
    for &h in pubs {
        if !non_empty(h, AttributeType::EcParams)? || !non_empty(h, AttributeType::EcPoint)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Destroys the broken or half pair labelled `label` (`privs` and `pubs`, its objects as found),
/// under the token lock the caller holds. Never half of a key-ceremony pair: that is a root key,
/// refused with [`role::require_ordinary`]'s error before anything is destroyed. Returns how many
/// objects were destroyed.
pub fn remove_broken_pair(
    session: &HsmSession,
    label: &str,
    privs: &[ObjectHandle],
    pubs: &[ObjectHandle],
    lock: &TokenLock,
) -> Result<usize> {
    for &h in privs.iter().chain(pubs) {
        let (l, id) = session.label_and_id(h)?;
        role::require_ordinary(&l, &id)?;
    }
    let n = destroy_keys(session, &KeySpec::label(label), lock)?;
    tracing::warn!(label = %label, "removed an incomplete key pair left by an interrupted run");
    Ok(n)
}
