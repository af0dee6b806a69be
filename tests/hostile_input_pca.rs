//! Hostile input to `pca issue` / `provision` and the ceremony's `sign-intermediate`: ambiguous
//! durations, oversized CSRs, several CSRs or trailing bytes in one file, key types AWS would not
//! accept, DNS names that are not host names, manifests from pipes. Each refusal is one `error:`
//! line, a non-zero exit, and no AWS call that issues anything.

mod common;
mod pca_support;

use assert_cmd::assert::Assert;
use common::standin;
use pca_support::PcaEnv;

/// Asserts failure with exactly one stderr line starting `error: ` and containing `needle`.
fn one_line_error(a: Assert, needle: &str) -> String {
    let a = a.failure();
    let err = common::stderr_of(&a);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
    assert!(common::stdout_of(&a).is_empty(), "stdout not empty");
    lines[0].to_string()
}

/// Nothing reached IssueCertificate, nothing is in the registry, no certificate file.
fn no_issue_call(env: &PcaEnv) {
    assert_eq!(
        standin::issue_calls(&env.endpoint, env.ca()),
        0,
        "IssueCertificate was called"
    );
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    let files = env.token.scratch_files();
    assert!(!files.iter().any(|f| f.ends_with(".cert.pem")), "{files:?}");
}

fn issue(env: &PcaEnv, device: &str, csr: &str, validity: &str) -> Assert {
    env.cmd()
        .args(["pca", "issue", "--ca-arn", env.ca(), "--csr", csr])
        .args(["--validity", validity, "--device-id", device])
        .assert()
}

#[test]
fn validity_30m_is_ambiguous_and_nothing_is_issued() {
    let env = PcaEnv::new();
    env.openssl_csr("ok", "ok");
    let e = one_line_error(
        issue(&env, "d1", "ok.csr", "30m"),
        "'30m' is ambiguous: write 30min (minutes) or 30mo (months)",
    );
    assert!(e.contains("invalid validity"), "{e}");
    one_line_error(
        env.cmd()
            .args(["provision", "--ca-arn", env.ca(), "--device-id", "d2"])
            .args(["--validity", "30m"])
            .assert(),
        "is ambiguous",
    );
    no_issue_call(&env);
    // The unambiguous spelling of months still works.
    issue(&env, "d1", "ok.csr", "2mo").success();
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 1);
}
