//! RFC 7512 PKCS#11 URIs (`--uri`): never a panic; a parsed URI printed back parses to the same URI.
#![no_main]
use hsm_demo::hsm::uri::{percent_decode, Pkcs11Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Pkcs11Uri::is_uri(s);
    let _ = percent_decode(s);
    match Pkcs11Uri::parse(s) {
        Ok(u) => {
            let printed = u.to_string();
            let again = Pkcs11Uri::parse(&printed)
                .unwrap_or_else(|e| panic!("{printed:?} (printed from {s:?}) does not parse: {e}"));
            assert_eq!(again, u, "round trip of {s:?} through {printed:?}");
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
});
