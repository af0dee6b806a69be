//! Durations (`--validity` of every command, the ceremony config's `certificate.validity`): the
//! one parser and the two validity types on top of it never panic, also when resolved to an end
//! date; a parsed duration or validity printed back parses to the same value.
#![no_main]
use hsm_demo::duration;
use hsm_demo::ceremony::config::Validity;
use hsm_demo::pca::validity::ValiditySpec;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match duration::parse(s) {
        Ok(d) => assert_eq!(duration::parse(&d.to_string()), Ok(d), "{s:?} -> {d}"),
        Err(e) => {
            let m = e.message(s);
            assert!(!m.contains(['\n', '\r']), "multi-line message {m:?}");
        }
    }
    // A fixed instant (2026-12-07T00:00:00Z) and the last representable day's start.
    let starts = [
        OffsetDateTime::from_unix_timestamp(1_796_601_600).unwrap(),
        OffsetDateTime::from_unix_timestamp(253_402_214_400).unwrap(),
    ];
    match ValiditySpec::parse(s) {
        Ok(v) => {
            assert_eq!(
                ValiditySpec::parse(&v.to_string()).ok(),
                Some(v),
                "{s:?} -> {v}"
            );
            for t in starts {
                if let Err(e) = v.resolve(t) {
                    hsm_demo_fuzz::check_error(&e);
                }
            }
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    match Validity::parse(s) {
        Ok(v) => {
            for t in starts {
                if let Err(e) = v.end(t) {
                    hsm_demo_fuzz::check_error(&e);
                }
            }
        }
        Err(m) => assert!(!m.contains(['\n', '\r']), "multi-line message {m:?}"),
    }
});
