//! Hex given to `sign`/`verify` (`--sig`, `--id`) and the signature bytes `verify` checks against a
//! PEM public key: never a panic; parsed hex re-encoded parses to the same bytes.
#![no_main]
use hsm_demo::cli::common::parse_hex;
use hsm_demo::hsm::verify::verify_with_pem;
use libfuzzer_sys::fuzz_target;

/// The P-256 public key of the private scalar 1, as `export-pubkey` would write it.
const PUBKEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaxfR8uEsQkf4vOblY6RA8ncDfYEt
6zOg9KE5RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9Q==
-----END PUBLIC KEY-----
";

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a signature (DER or raw r||s) over a fixed message.
    if let Err(e) = verify_with_pem(PUBKEY_PEM, b"hsm-demo fuzz message", data) {
        hsm_demo_fuzz::check_error(&e);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_hex("--sig", s) {
        Ok(bytes) => {
            assert!(!bytes.is_empty());
            assert_eq!(
                parse_hex("--sig", &hex::encode(&bytes)).ok(),
                Some(bytes.clone())
            );
            assert_eq!(
                parse_hex("--sig", &hex::encode_upper(&bytes)).ok(),
                Some(bytes.clone())
            );
            if let Err(e) = verify_with_pem(PUBKEY_PEM, b"hsm-demo fuzz message", &bytes) {
                hsm_demo_fuzz::check_error(&e);
            }
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    // A PEM public key file given to `verify --pubkey`.
    if let Err(e) = verify_with_pem(s, b"m", &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]) {
        hsm_demo_fuzz::check_error(&e);
    }
});
