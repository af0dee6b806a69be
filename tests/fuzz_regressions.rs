//! Inputs that once made a parser of outside input panic (found by the fuzz targets of `fuzz/` or
//! while writing them, docs/fuzzing.md), kept here so `make test` checks them without the fuzzer:
//! each must now be refused with a one-line error.

use hsm_demo::hsm::uri::Pkcs11Uri;

/// A string whose 7th byte falls inside a multi-byte character: the `pkcs11:` prefix check sliced
/// the first 7 bytes and panicked ("byte index 7 is not a char boundary").
#[test]
fn uri_prefix_check_survives_a_multibyte_character_at_byte_seven() {
    for s in ["pkcs11\u{e9}", "abcdef\u{e9}", "pkcs1\u{1f600}:object=k", "\u{e9}\u{e9}\u{e9}x"] {
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
