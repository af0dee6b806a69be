//! Ceremony transcripts (`verify-transcript`, `sign-intermediate`): parsing, the entries, the
//! hash-chain and seal check, the recorded root and `--expect-head` never panic; a parsed
//! transcript prints back to exactly the input.
#![no_main]
use hsm_demo::hsm::ec::Curve;
use hsm_demo::ceremony::transcript::{
    parse_head, recorded_root_fingerprint, recorded_root_pem, verify, SealKey, Transcript,
};
use libfuzzer_sys::fuzz_target;

/// The P-256 public key of the private scalar 1 (the curve's generator): the seed corpus holds a
/// transcript sealed with that scalar, so the fuzzer starts from inputs that verify.
const SEAL_POINT: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse_head(text) {
        hsm_demo_fuzz::check_error(&e);
    }
    let t = match Transcript::parse(text) {
        Ok(t) => t,
        Err(e) => return hsm_demo_fuzz::check_error(&e),
    };
    assert_eq!(
        t.to_text(),
        text,
        "a parsed transcript prints back unchanged"
    );
    assert_eq!(parse_head(&t.head()).ok(), Some(t.head()));
    let key = SealKey {
        curve: Curve::P256,
        point: hex::decode(SEAL_POINT).unwrap(),
    };
    match verify(&t, &key) {
        Ok(r) => {
            assert_eq!(r.entries, t.len());
            assert!(r.seals >= 1, "a verified transcript has a seal");
            assert_eq!(r.head, t.head());
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    for r in [recorded_root_pem(&t), recorded_root_fingerprint(&t)] {
        if let Err(e) = r {
            hsm_demo_fuzz::check_error(&e);
        }
    }
});
