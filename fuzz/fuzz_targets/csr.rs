//! CSRs given to `pca issue --csr` (PEM or DER) and issued certificates as PEM: never a panic; an
//! accepted CSR's own PEM parses to the same request.
#![no_main]
use hsm_demo::pca::csr::{cert_facts, Csr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Csr::from_bytes(data, "fuzz.csr") {
        Ok(c) => {
            let again = Csr::from_bytes(c.pem.as_bytes(), "re-encoded")
                .unwrap_or_else(|e| panic!("the accepted CSR's PEM does not parse: {e}"));
            assert_eq!(again.der, c.der);
            assert_eq!(again.subject, c.subject);
            assert_eq!(again.sans, c.sans);
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = cert_facts(s) {
            hsm_demo_fuzz::check_error(&e);
        }
    }
});
