//! Recognising a device key pair an interrupted run left broken: half a pair (a run killed inside
//! C_GenerateKeyPair, which SoftHSM2 writes one object after the other) or a pair whose curve or
//! point is empty. Such a pair can never have signed anything; `pca::device_key` removes it (under
//! the device's intent) and regenerates it.

use cryptoki::object::{AttributeType, ObjectHandle};

use crate::error::Result;
use crate::hsm::session::HsmSession;

/// False when a key object carries an empty curve or point: SoftHSM2 writes each object file in
/// place, so a run killed inside C_GenerateKeyPair can leave a labelled object whose CKA_EC_PARAMS
/// or CKA_EC_POINT is empty. Such a pair can never have signed a CSR, so it is treated like half a
/// pair. A key on a curve we don't support is intact (never destroyed): it fails later with a clear
/// error.
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
