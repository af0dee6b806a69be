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
fn refused(a: Assert, needle: &str) -> String {
    let a = a.failure();
    let line = common::one_line_error(&a, needle);
    assert!(
        common::stdout_of(&a).is_empty(),
        "stdout not empty on failure"
    );
    line
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
    let e = refused(
        issue(&env, "d1", "ok.csr", "30m"),
        "'30m' is ambiguous: write 30min (minutes) or 30mo (months)",
    );
    assert!(e.contains("invalid validity"), "{e}");
    refused(
        env.provision_cmd("d2").args(["--validity", "30m"]).assert(),
        "is ambiguous",
    );
    no_issue_call(&env);
    // The unambiguous spelling of months still works.
    issue(&env, "d1", "ok.csr", "2mo").success();
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 1);
}

/// `openssl req -new` in the scratch dir with `newkey` args and an optional config file.
fn openssl_csr(env: &PcaEnv, out: &str, newkey: &[&str], config: Option<&str>) {
    let key = format!("{out}.key");
    let mut c = env.token.tool("openssl");
    c.args(["req", "-new", "-nodes"]).args(newkey);
    c.args(["-keyout", &key, "-out", out]);
    match config {
        Some(cnf) => c.args(["-config", cnf]),
        None => c.args(["-subj", "/CN=hostile"]),
    };
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A valid P-256 CSR of about 1.7 MB (a large private extension), signed by its key.
pub fn big_csr(dir: &std::path::Path, tool: impl Fn() -> std::process::Command, out: &str) {
    let cnf = dir.join("big.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[req]\ndistinguished_name=dn\nreq_extensions=ext\nprompt=no\n[dn]\nCN=big\n[ext]\n1.2.3.4=ASN1:UTF8String:{}\n",
            "x".repeat(1_250_000)
        ),
    )
    .unwrap();
    let o = tool()
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "big.key"])
        .arg("-config")
        .arg(&cnf)
        .args(["-out", out])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let len = std::fs::metadata(dir.join(out)).unwrap().len();
    assert!(len > 1_600_000, "{len}");
}

#[test]
fn a_1_7_mb_csr_is_refused_before_any_aws_call() {
    let env = PcaEnv::new();
    big_csr(
        env.token.dir.path(),
        || env.token.tool("openssl"),
        "big.csr",
    );
    refused(
        issue(&env, "big-1", "big.csr", "30d"),
        "CSR file big.csr is larger than 32768 bytes",
    );
    // The same CSR as DER is refused too.
    let o = env
        .token
        .tool("openssl")
        .args([
            "req", "-in", "big.csr", "-outform", "DER", "-out", "big.der",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    refused(
        issue(&env, "big-1", "big.der", "30d"),
        "larger than 32768 bytes",
    );
    // A DER CSR under 32 KiB whose PEM would exceed it is refused as well.
    let cnf = env.path("mid.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[req]\ndistinguished_name=dn\nreq_extensions=ext\nprompt=no\n[dn]\nCN=mid\n[ext]\n1.2.3.4=ASN1:UTF8String:{}\n",
            "x".repeat(28_000)
        ),
    )
    .unwrap();
    openssl_csr(
        &env,
        "mid.csr",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        Some("mid.cnf"),
    );
    let o = env
        .token
        .tool("openssl")
        .args([
            "req", "-in", "mid.csr", "-outform", "DER", "-out", "mid.der",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(std::fs::metadata(env.path("mid.der")).unwrap().len() < 32_768);
    refused(
        issue(&env, "mid-1", "mid.der", "30d"),
        "more than AWS Private CA's limit of 32768",
    );
    no_issue_call(&env);
}

#[test]
fn one_csr_per_file_and_nothing_after_it() {
    let env = PcaEnv::new();
    env.openssl_csr("a", "a");
    env.openssl_csr("b", "b");
    let a = std::fs::read_to_string(env.path("a.csr")).unwrap();
    let b = std::fs::read_to_string(env.path("b.csr")).unwrap();
    std::fs::write(env.path("two.csr"), format!("{a}{b}")).unwrap();
    std::fs::write(env.path("trail.csr"), format!("{a}garbage\n")).unwrap();
    refused(
        issue(&env, "t-1", "two.csr", "30d"),
        "more than one PEM block",
    );
    refused(
        issue(&env, "t-1", "trail.csr", "30d"),
        "bytes after its PEM block",
    );
    // DER: a second request after the first is trailing bytes.
    let der = |name: &str| {
        let o = env
            .token
            .tool("openssl")
            .args(["req", "-in", name, "-outform", "DER"])
            .output()
            .unwrap();
        assert!(o.status.success());
        o.stdout
    };
    let mut two = der("a.csr");
    two.extend(der("b.csr"));
    std::fs::write(env.path("two.der"), two).unwrap();
    refused(
        issue(&env, "t-1", "two.der", "30d"),
        "trailing bytes after the request",
    );
    no_issue_call(&env);
}

#[test]
fn csr_key_types_aws_would_not_take_are_named_not_called_bad_signatures() {
    let env = PcaEnv::new();
    openssl_csr(&env, "rsa1024.csr", &["-newkey", "rsa:1024"], None);
    openssl_csr(
        &env,
        "p521.csr",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        None,
    );
    let e = refused(
        issue(&env, "k-1", "rsa1024.csr", "30d"),
        "key type not accepted: RSA 1024 bits",
    );
    assert!(!e.contains("signature"), "{e}");
    let e = refused(
        issue(&env, "k-1", "p521.csr", "30d"),
        "key type not accepted: EC P-521",
    );
    assert!(!e.contains("signature"), "{e}");
    no_issue_call(&env);
    // RSA 2048 is accepted.
    openssl_csr(&env, "rsa2048.csr", &["-newkey", "rsa:2048"], None);
    issue(&env, "k-2", "rsa2048.csr", "30d").success();
}

#[test]
fn dns_sans_must_be_host_names() {
    let env = PcaEnv::new();
    env.token.generate_key("k");
    for bad in [
        "bad_dns..name",
        "a..b",
        "-a.example",
        "a.example.",
        &"x".repeat(64),
    ] {
        refused(
            env.cmd()
                .args(["pca", "issue", "--ca-arn", env.ca(), "--device-id", "dns-1"])
                .args(["--label", "k"])
                .arg(format!("--san-dns={bad}"))
                .assert(),
            "invalid --san-dns",
        );
    }
    no_issue_call(&env);
}

#[test]
fn a_manifest_on_dev_stdin_is_read_once() {
    let env = PcaEnv::new();
    let a = env
        .cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "/dev/stdin",
        ])
        .write_stdin("device_id,cn\nstdin-1,\nstdin-2,\n")
        .assert();
    let out = a.get_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 2);
    for d in ["stdin-1", "stdin-2"] {
        assert_eq!(env.show(d)["current"]["status"], "ISSUED", "{d}");
    }
}
