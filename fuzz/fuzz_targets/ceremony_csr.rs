//! The CSR file of `sign-intermediate` and the PEM certificate files the ceremony commands read
//! (`--root-cert`): never a panic, every refusal one line.
#![no_main]
use hsm_demo::ceremony::{check_intermediate_csr, read_cert_pem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hsm_demo_fuzz::write_input("intermediate.csr", data);
    if let Err(e) = check_intermediate_csr(&path) {
        hsm_demo_fuzz::check_error(&e);
    }
    match read_cert_pem(&path) {
        Ok((text, der)) => {
            assert_eq!(text.as_bytes(), data);
            assert!(der.len() <= data.len());
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
});
