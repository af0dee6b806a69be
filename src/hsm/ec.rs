//! Curves, EC points, digests and ECDSA signature encodings (raw r‖s ↔ DER ECDSA-Sig-Value),
//! plus software verification and PEM SubjectPublicKeyInfo export.

use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::Digest;

use crate::error::{Error, Result};

/// DER of the named-curve OID for P-256 (prime256v1, 1.2.840.10045.3.1.7).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the named-curve OID for P-384 (secp384r1, 1.3.132.0.34).
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The curves hsm-demo supports (those AWS Private CA and CloudHSM support too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Curve {
    /// NIST P-256 with SHA-256.
    #[serde(rename = "p256", alias = "P-256")]
    P256,
    /// NIST P-384 with SHA-384.
    #[serde(rename = "p384", alias = "P-384")]
    P384,
}

/// A message digest of the curve's hash, on the stack.
#[derive(Clone, Copy)]
pub enum MessageDigest {
    /// SHA-256.
    Sha256([u8; 32]),
    /// SHA-384.
    Sha384([u8; 48]),
}

impl AsRef<[u8]> for MessageDigest {
    fn as_ref(&self) -> &[u8] {
        match self {
            MessageDigest::Sha256(d) => d,
            MessageDigest::Sha384(d) => d,
        }
    }
}

/// The command line's `--curve` (clap calls this once, so a bad curve is a usage error).
impl std::str::FromStr for Curve {
    type Err = Error;

    fn from_str(s: &str) -> Result<Curve> {
        Curve::parse(s)
    }
}

impl Curve {
    /// Parses the CLI spelling: `p256`/`P-256`/`prime256v1`/`secp256r1`, `p384`/`P-384`/`secp384r1`.
    pub fn parse(s: &str) -> Result<Curve> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "prime256v1" | "secp256r1" => Ok(Curve::P256),
            "p384" | "p-384" | "secp384r1" => Ok(Curve::P384),
            _ => Err(Error::Unsupported(format!(
                "unsupported curve '{s}': use p256 or p384"
            ))),
        }
    }

    /// `P-256` / `P-384`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// `p256` / `p384` (the CLI spelling).
    pub fn id(self) -> &'static str {
        match self {
            Curve::P256 => "p256",
            Curve::P384 => "p384",
        }
    }

    /// CKA_EC_PARAMS (DER OID).
    pub fn ec_params(self) -> &'static [u8] {
        match self {
            Curve::P256 => P256_PARAMS,
            Curve::P384 => P384_PARAMS,
        }
    }

    /// The curve for a CKA_EC_PARAMS value.
    pub fn from_ec_params(params: &[u8]) -> Result<Curve> {
        if params == P256_PARAMS {
            Ok(Curve::P256)
        } else if params == P384_PARAMS {
            Ok(Curve::P384)
        } else {
            Err(Error::Unsupported(format!(
                "unsupported curve (CKA_EC_PARAMS {}): only P-256 and P-384 are supported",
                hex::encode(params)
            )))
        }
    }

    /// Field size in bytes (32 / 48).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// Length of the raw r‖s signature (64 / 96).
    pub fn raw_sig_len(self) -> usize {
        2 * self.field_len()
    }

    /// Length of the uncompressed SEC1 point `04‖X‖Y` (65 / 97).
    pub fn point_len(self) -> usize {
        1 + 2 * self.field_len()
    }

    /// The hash name (`SHA-256` / `SHA-384`).
    pub fn hash_name(self) -> &'static str {
        match self {
            Curve::P256 => "SHA-256",
            Curve::P384 => "SHA-384",
        }
    }

    /// The algorithm name, e.g. `ecdsa-with-SHA256 (P-256)`.
    pub fn algorithm_name(self) -> &'static str {
        match self {
            Curve::P256 => "ECDSA P-256 SHA-256",
            Curve::P384 => "ECDSA P-384 SHA-384",
        }
    }

    /// The rcgen signature algorithm.
    pub fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// Hashes `msg` with the curve's hash (SHA-256 / SHA-384).
    pub fn digest(self, msg: &[u8]) -> MessageDigest {
        match self {
            Curve::P256 => MessageDigest::Sha256(sha2::Sha256::digest(msg).into()),
            Curve::P384 => MessageDigest::Sha384(sha2::Sha384::digest(msg).into()),
        }
    }
}

/// Decodes CKA_EC_POINT into the uncompressed SEC1 point `04‖X‖Y`. Accepts the point raw or
/// wrapped in a DER OCTET STRING (SoftHSM wraps it, other modules do not).
pub fn decode_ec_point(curve: Curve, value: &[u8]) -> Result<Vec<u8>> {
    let n = curve.point_len();
    if value.len() == n && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    // DER OCTET STRING: 04 <len> <point>; len < 128 short form, else 0x81 <len>.
    let inner = match value {
        [0x04, l, rest @ ..] if (*l as usize) < 0x80 && *l as usize == rest.len() => rest,
        [0x04, 0x81, l, rest @ ..] if *l as usize == rest.len() => rest,
        _ => {
            return Err(Error::Other(format!(
                "CKA_EC_POINT of {} bytes is neither a raw {} point nor a DER-wrapped one",
                value.len(),
                curve.name()
            )))
        }
    };
    if inner.len() == n && inner[0] == 0x04 {
        Ok(inner.to_vec())
    } else {
        Err(Error::Other(format!(
            "CKA_EC_POINT holds {} bytes, not an uncompressed {} point ({n} bytes)",
            inner.len(),
            curve.name()
        )))
    }
}

/// Converts a raw r‖s signature (what CKM_ECDSA returns) into a DER ECDSA-Sig-Value, without
/// allocating: `f` receives the DER bytes.
pub fn with_der_signature<T>(curve: Curve, raw: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<T> {
    if raw.len() != curve.raw_sig_len() {
        return Err(Error::Other(format!(
            "the token returned a {}-byte signature, expected {} for {}",
            raw.len(),
            curve.raw_sig_len(),
            curve.name()
        )));
    }
    let bad = |_| {
        Error::Other("the token returned an invalid ECDSA signature (r or s out of range)".into())
    };
    Ok(match curve {
        Curve::P256 => f(p256::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()),
        Curve::P384 => f(p384::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()),
    })
}

/// Converts a raw r‖s signature into a DER ECDSA-Sig-Value.
pub fn raw_to_der(curve: Curve, raw: &[u8]) -> Result<Vec<u8>> {
    with_der_signature(curve, raw, |d| d.to_vec())
}

/// Parses a signature given as DER ECDSA-Sig-Value or raw r‖s; returns raw r‖s.
pub fn parse_signature(curve: Curve, sig: &[u8]) -> Result<Vec<u8>> {
    let n = curve.raw_sig_len();
    if sig.is_empty() {
        return Err(Error::input("the signature is empty"));
    }
    if sig.len() == n {
        return Ok(sig.to_vec());
    }
    if sig[0] == 0x30 {
        let raw = match curve {
            Curve::P256 => p256::ecdsa::Signature::from_der(sig).map(|s| s.to_bytes().to_vec()),
            Curve::P384 => p384::ecdsa::Signature::from_der(sig).map(|s| s.to_bytes().to_vec()),
        };
        return raw.map_err(|_| {
            Error::input(format!(
                "the signature ({} bytes) is not a valid DER ECDSA-Sig-Value for {}",
                sig.len(),
                curve.name()
            ))
        });
    }
    Err(Error::input(format!(
        "the signature is {} bytes: expected {n} bytes raw r||s or a DER ECDSA-Sig-Value for {}",
        sig.len(),
        curve.name()
    )))
}

/// Verifies `sig` (DER or raw) over `msg` with the uncompressed SEC1 `point`, in software.
pub fn verify(curve: Curve, point: &[u8], msg: &[u8], sig: &[u8]) -> Result<()> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let raw = parse_signature(curve, sig)?;
    let digest = curve.digest(msg);
    let ok = match curve {
        Curve::P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| Error::Other("the public key is not a valid P-256 point".into()))?;
            // An all-zero r or s is a malformed signature, which is a failed verification.
            match p256::ecdsa::Signature::from_slice(&raw) {
                Ok(s) => vk.verify_prehash(digest.as_ref(), &s).is_ok(),
                Err(_) => false,
            }
        }
        Curve::P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| Error::Other("the public key is not a valid P-384 point".into()))?;
            match p384::ecdsa::Signature::from_slice(&raw) {
                Ok(s) => vk.verify_prehash(digest.as_ref(), &s).is_ok(),
                Err(_) => false,
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::VerificationFailed)
    }
}

/// DER SubjectPublicKeyInfo of a SEC1 point.
pub fn spki_der(curve: Curve, point: &[u8]) -> Result<Vec<u8>> {
    let bad = |_| {
        Error::Other(format!(
            "the public key is not a valid {} point",
            curve.name()
        ))
    };
    let doc = match curve {
        Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
            .map_err(bad)?
            .to_public_key_der(),
        Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
            .map_err(bad)?
            .to_public_key_der(),
    }
    .map_err(|e| Error::Other(format!("cannot encode the public key: {e}")))?;
    Ok(doc.as_bytes().to_vec())
}

/// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`) of a SEC1 point.
pub fn spki_pem(curve: Curve, point: &[u8]) -> Result<String> {
    let bad = |_| {
        Error::Other(format!(
            "the public key is not a valid {} point",
            curve.name()
        ))
    };
    match curve {
        Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
            .map_err(bad)?
            .to_public_key_pem(LineEnding::LF),
        Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
            .map_err(bad)?
            .to_public_key_pem(LineEnding::LF),
    }
    .map_err(|e| Error::Other(format!("cannot encode the public key: {e}")))
}

/// Reads a PEM SubjectPublicKeyInfo (P-256 or P-384): returns the curve and the SEC1 point.
pub fn parse_spki_pem(pem_text: &str) -> Result<(Curve, Vec<u8>)> {
    if let Ok(k) = p256::PublicKey::from_public_key_pem(pem_text) {
        return Ok((Curve::P256, k.to_sec1_bytes().to_vec()));
    }
    if let Ok(k) = p384::PublicKey::from_public_key_pem(pem_text) {
        return Ok((Curve::P384, k.to_sec1_bytes().to_vec()));
    }
    Err(Error::input(
        "the public key file is not a PEM SubjectPublicKeyInfo ('BEGIN PUBLIC KEY') of a P-256 or P-384 key",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_to_der_and_back() {
        // r with the top bit set needs a leading 0x00 in DER; s small needs stripping.
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 1;
        raw[63] = 7;
        let der = raw_to_der(Curve::P256, &raw).unwrap();
        // SEQUENCE { INTEGER 00 80..01 (33 bytes), INTEGER 07 }
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x07]);
        assert_eq!(der.len(), 2 + 2 + 33 + 3);
        assert_eq!(parse_signature(Curve::P256, &der).unwrap(), raw.to_vec());
        assert_eq!(parse_signature(Curve::P256, &raw).unwrap(), raw.to_vec());
    }

    #[test]
    fn der_conversion_p384() {
        let mut raw = [0x11u8; 96];
        raw[48] = 0xff;
        let der = raw_to_der(Curve::P384, &raw).unwrap();
        assert_eq!(parse_signature(Curve::P384, &der).unwrap(), raw.to_vec());
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert!(raw_to_der(Curve::P256, &[1u8; 63]).is_err());
        let e = parse_signature(Curve::P256, &[1u8; 10])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 64 bytes"), "{e}");
        let e = parse_signature(Curve::P256, &[0x30, 1, 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid DER"), "{e}");
    }

    #[test]
    fn ec_point_raw_or_wrapped() {
        let sk = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let point = sk.public_key().to_sec1_bytes().to_vec();
        assert_eq!(point.len(), 65);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(&point);
        assert_eq!(decode_ec_point(Curve::P256, &point).unwrap(), point);
        assert_eq!(decode_ec_point(Curve::P256, &wrapped).unwrap(), point);
        assert!(decode_ec_point(Curve::P256, &wrapped[..60]).is_err());
        assert!(decode_ec_point(Curve::P384, &wrapped).is_err());
    }

    #[test]
    fn software_sign_verifies_and_tamper_fails() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sk = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let point = sk.verifying_key().to_sec1_bytes().to_vec();
        let d = Curve::P256.digest(b"hello cert world");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(d.as_ref()).unwrap();
        let der = raw_to_der(Curve::P256, &sig.to_bytes()).unwrap();
        verify(Curve::P256, &point, b"hello cert world", &der).unwrap();
        verify(Curve::P256, &point, b"hello cert world", &sig.to_bytes()).unwrap();
        assert!(matches!(
            verify(Curve::P256, &point, b"tampered data", &der),
            Err(Error::VerificationFailed)
        ));
        let pem = spki_pem(Curve::P256, &point).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(parse_spki_pem(&pem).unwrap(), (Curve::P256, point));
    }

    #[test]
    fn curve_names() {
        assert_eq!(Curve::parse("P-384").unwrap(), Curve::P384);
        assert!(Curve::parse("p521")
            .unwrap_err()
            .to_string()
            .contains("unsupported curve"));
        assert_eq!(Curve::from_ec_params(P256_PARAMS).unwrap(), Curve::P256);
    }
}
