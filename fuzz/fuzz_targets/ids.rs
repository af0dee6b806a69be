//! Identifiers checked before any AWS call: certificate serials, CA ARNs and device ids. Never a
//! panic; a parsed serial printed back (plain or colon hex) parses to the same serial, and an
//! accepted ARN or device id is kept verbatim.
#![no_main]
use hsm_demo::pca::ids::{CaArn, DeviceId, Serial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Serial::from_bytes(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Serial::parse(s) {
        Ok(n) => {
            assert_eq!(Serial::parse(n.as_str()).ok().as_ref(), Some(&n), "{s:?}");
            assert_eq!(
                Serial::parse(&n.colon_hex()).ok().as_ref(),
                Some(&n),
                "{s:?}"
            );
            let bytes = hex::decode(if n.as_str().len() % 2 == 1 {
                format!("0{n}")
            } else {
                n.to_string()
            })
            .unwrap();
            assert_eq!(Serial::from_bytes(&bytes), n);
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    match CaArn::parse(s) {
        Ok(a) => {
            assert_eq!(a.as_str(), s);
            assert!(s.contains(a.region()));
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    match DeviceId::parse(s) {
        Ok(d) => {
            assert_eq!(d.as_str(), s);
            assert!(s.len() <= hsm_demo::pca::ids::DEVICE_ID_MAX);
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
});
