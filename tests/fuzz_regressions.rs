//! Inputs that once made a parser of outside input panic (found by the fuzz targets of `fuzz/` or
//! while writing them, docs/fuzzing.md), kept here so `make test` checks them without the fuzzer:
//! each must now be refused with a one-line error.

use hsm_demo::hsm::uri::Pkcs11Uri;
use hsm_demo::pca::validity::ValiditySpec;

/// A string whose 7th byte falls inside a multi-byte character: the `pkcs11:` prefix check sliced
/// the first 7 bytes and panicked ("byte index 7 is not a char boundary").
#[test]
fn uri_prefix_check_survives_a_multibyte_character_at_byte_seven() {
    for s in [
        "pkcs11\u{e9}",
        "abcdef\u{e9}",
        "pkcs1\u{1f600}:object=k",
        "\u{e9}\u{e9}\u{e9}\u{e9}",
    ] {
        assert!(!Pkcs11Uri::is_uri(s), "{s:?}");
        let e = Pkcs11Uri::parse(s).expect_err(s);
        let m = e.one_line();
        assert!(m.contains("does not start with pkcs11:"), "{m}");
        assert!(!m.contains('\n'), "{m}");
    }
    // The prefix check still takes any case, and only the prefix.
    assert!(Pkcs11Uri::is_uri("PKCS11:object=k"));
    for s in ["pKcS11:object=\u{e9}t\u{e9}", "pkcs11:object=%C3%A9t%C3%A9"] {
        let u = Pkcs11Uri::parse(s).unwrap();
        assert_eq!(u.object.as_deref(), Some("\u{e9}t\u{e9}"), "{s}");
    }
}

/// The `duration` target's crash `2w`: a validity in days or hours resolved near the end of the
/// calendar (9999-12-31) added with `+` and panicked ("resulting value is out of range"); it is now
/// the one-line "validity is out of range", as months and years already were.
#[test]
fn validity_resolved_past_the_end_of_the_calendar_is_an_error() {
    let last_day = time::OffsetDateTime::from_unix_timestamp(253_402_214_400).unwrap();
    for s in ["2w", "30d", "36h"] {
        let v = ValiditySpec::parse(s).unwrap();
        let e = v.resolve(last_day).expect_err(s);
        assert_eq!(e.one_line(), "validity is out of range", "{s}");
        let start = time::OffsetDateTime::from_unix_timestamp(1_796_601_600).unwrap();
        assert!(v.resolve(start).unwrap().not_after > start, "{s}");
    }
}
