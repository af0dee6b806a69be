//! `verify`: the public key comes from the token (CKA_EC_POINT, raw or DER-wrapped) or from a PEM
//! file, and the ECDSA verification runs in software. DER and raw r‖s signatures are accepted.

use crate::error::Result;
use crate::hsm::ec::{self, Curve};
use crate::hsm::lookup::{find_public_key, KeySpec};
use crate::hsm::session::HsmSession;

/// Verifies `sig` over `msg` with the token's public key for `spec`. Returns the curve used.
pub fn verify_with_token(
    session: &HsmSession,
    spec: &KeySpec,
    msg: &[u8],
    sig: &[u8],
) -> Result<Curve> {
    let (curve, point) = find_public_key(session, spec)?;
    ec::verify(curve, &point, msg, sig)?;
    Ok(curve)
}

/// Verifies `sig` over `msg` with a PEM SubjectPublicKeyInfo (no HSM involved). Returns the curve.
pub fn verify_with_pem(pem_text: &str, msg: &[u8], sig: &[u8]) -> Result<Curve> {
    let (curve, point) = ec::parse_spki_pem(pem_text)?;
    ec::verify(curve, &point, msg, sig)?;
    Ok(curve)
}
