//! The IssueCertificate idempotency token.
//!
//! `token = hex(sha256("hsm-demo/issue/v1" ‖ 0 ‖ ca_arn ‖ 0 ‖ device_id ‖ 0 ‖ generation ‖ 0 ‖
//! certificationRequestInfo))[..32]` — 32 hex characters (128 bits), within AWS's 1–36 limit.
//!
//! It hashes the CSR's *to-be-signed* part (subject, public key, requested extensions), not the
//! whole DER: ECDSA signatures are randomised, so re-signing the same request with the same HSM key
//! after a crash yields a different CSR DER but the same token. `generation` (0 for a device's
//! first certificate, n after n earlier certificates were revoked) keeps a re-issue after a
//! revocation from colliding with the revoked certificate's token.

use sha2::{Digest, Sha256};

/// Length of the token in characters.
pub const TOKEN_LEN: usize = 32;

/// Computes the deterministic idempotency token.
pub fn idempotency_token(ca_arn: &str, device_id: &str, generation: u32, csr_tbs: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"hsm-demo/issue/v1\0");
    h.update(ca_arn.as_bytes());
    h.update([0]);
    h.update(device_id.as_bytes());
    h.update([0]);
    h.update(generation.to_string().as_bytes());
    h.update([0]);
    h.update(csr_tbs);
    let d = h.finalize();
    let mut s = hex::encode(d);
    s.truncate(TOKEN_LEN);
    s
}

/// sha256 hex of bytes (used for the CSR fingerprint in intent records).
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        let a = idempotency_token("arn:x", "d1", 0, b"tbs");
        assert_eq!(a, idempotency_token("arn:x", "d1", 0, b"tbs"));
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.len() <= 36);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, idempotency_token("arn:y", "d1", 0, b"tbs"));
        assert_ne!(a, idempotency_token("arn:x", "d2", 0, b"tbs"));
        assert_ne!(a, idempotency_token("arn:x", "d1", 1, b"tbs"));
        assert_ne!(a, idempotency_token("arn:x", "d1", 0, b"tbs2"));
        // field boundaries are unambiguous
        assert_ne!(
            idempotency_token("arn:x", "d1", 0, b""),
            idempotency_token("arn:x\0d1", "", 0, b"")
        );
    }
}
