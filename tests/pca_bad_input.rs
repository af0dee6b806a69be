//! Bad input to `pca issue` / `provision` / `pca revoke`: each case fails with ONE line
//! `error: …`, a non-zero exit, and nothing recorded (the registry table stays empty and the
//! stand-in issued nothing from the CA).

mod common;
mod pca_support;

use assert_cmd::assert::Assert;
use aws_sdk_acmpca::types::CertificateAuthorityStatus;
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

fn nothing_recorded(env: &PcaEnv) {
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    assert_eq!(env.issued_by_ca(), 0, "the stand-in issued a certificate");
    let files = env.token.scratch_files();
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with(".cert.pem") || f.ends_with(".chain.pem")),
        "{files:?}"
    );
}

fn make_csr(env: &PcaEnv, name: &str, der: bool) {
    let extra: &[&str] = if der { &["-outform", "DER"] } else { &[] };
    env.openssl_req(&format!("{name}.key"), name, "bad-input", extra);
}

fn issue(env: &PcaEnv, ca: &str, device: &str, csr: &str, validity: &str) -> Assert {
    env.cmd()
        .args([
            "pca",
            "issue",
            "--ca-arn",
            ca,
            "--csr",
            csr,
            "--validity",
            validity,
        ])
        .arg(format!("--device-id={device}"))
        .assert()
}

#[test]
fn malformed_ca_arn() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    for arn in [
        "not-an-arn",
        "arn:aws:acm-pca:us-east-1:123:certificate-authority/x",
        "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012",
    ] {
        refused(issue(&env, arn, "d1", "ok.csr", "30d"), "malformed CA ARN");
    }
    nothing_recorded(&env);
}

#[test]
fn unknown_ca() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    let arn =
        env.ca().rsplit_once('/').unwrap().0.to_string() + "/00000000-0000-4000-8000-000000000000";
    refused(issue(&env, &arn, "d1", "ok.csr", "30d"), "unknown CA");
    nothing_recorded(&env);
}

#[test]
fn disabled_ca_and_pending_ca() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    let pca = standin::pca_client(&env.endpoint);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        pca.update_certificate_authority()
            .certificate_authority_arn(env.ca())
            .status(CertificateAuthorityStatus::Disabled)
            .send(),
    )
    .expect("disable CA");
    refused(
        issue(&env, env.ca(), "d1", "ok.csr", "30d"),
        "is DISABLED, not ACTIVE",
    );
    // A CA created but never activated (PENDING_CERTIFICATE).
    let cfg = aws_sdk_acmpca::types::CertificateAuthorityConfiguration::builder()
        .key_algorithm(aws_sdk_acmpca::types::KeyAlgorithm::EcPrime256v1)
        .signing_algorithm(aws_sdk_acmpca::types::SigningAlgorithm::Sha256Withecdsa)
        .subject(
            aws_sdk_acmpca::types::Asn1Subject::builder()
                .common_name("pending")
                .build(),
        )
        .build()
        .unwrap();
    let pending = rt
        .block_on(
            pca.create_certificate_authority()
                .certificate_authority_configuration(cfg)
                .certificate_authority_type(
                    aws_sdk_acmpca::types::CertificateAuthorityType::Subordinate,
                )
                .send(),
        )
        .unwrap()
        .certificate_authority_arn()
        .unwrap()
        .to_string();
    refused(
        issue(&env, &pending, "d1", "ok.csr", "30d"),
        "PENDING_CERTIFICATE",
    );
    nothing_recorded(&env);
}

#[test]
fn file_that_is_not_a_csr() {
    let env = PcaEnv::new();
    std::fs::write(env.path("junk.csr"), b"hello, I am not a CSR\n").unwrap();
    refused(
        issue(&env, env.ca(), "d1", "junk.csr", "30d"),
        "is not a CSR",
    );
    // A certificate is not a CSR either.
    refused(
        issue(&env, env.ca(), "d1", "root.pem", "30d"),
        "expected 'CERTIFICATE REQUEST'",
    );
    refused(
        issue(&env, env.ca(), "d1", "missing.csr", "30d"),
        "cannot read CSR file",
    );
    nothing_recorded(&env);
}

#[test]
fn csr_whose_signature_does_not_verify() {
    let env = PcaEnv::new();
    make_csr(&env, "good.der", true);
    let mut der = std::fs::read(env.path("good.der")).unwrap();
    let n = der.len();
    der[n - 3] ^= 0x5a; // inside the signature BIT STRING: still parses, no longer verifies
    std::fs::write(env.path("tampered.der"), &der).unwrap();
    refused(
        issue(&env, env.ca(), "d1", "tampered.der", "30d"),
        "signature does not verify",
    );
    nothing_recorded(&env);
}

#[test]
fn device_id_outside_the_character_set() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    for bad in ["dev/1", "dev 1", "dév", "-dev", &"x".repeat(65), "a#b"] {
        refused(
            issue(&env, env.ca(), bad, "ok.csr", "30d"),
            "invalid device id",
        );
        refused(
            env.cmd()
                .args(["provision", "--ca-arn", env.ca()])
                .arg(format!("--device-id={bad}"))
                .assert(),
            "invalid device id",
        );
    }
    nothing_recorded(&env);
}

#[test]
fn validity_below_one_hour_or_malformed() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    for v in ["30min", "0h", "0d"] {
        refused(
            issue(&env, env.ca(), "d1", "ok.csr", v),
            "below the minimum of 1 hour",
        );
    }
    refused(
        issue(&env, env.ca(), "d1", "ok.csr", "1.5d"),
        "invalid validity",
    );
    nothing_recorded(&env);
}

#[test]
fn validity_beyond_the_ca() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    // The issuing CA of the fixture hierarchy is valid for 5 years.
    refused(
        issue(&env, env.ca(), "d1", "ok.csr", "6y"),
        "after the CA's own NotAfter",
    );
    refused(
        env.cmd()
            .args([
                "provision",
                "--ca-arn",
                env.ca(),
                "--device-id",
                "d1",
                "--validity",
                "70mo",
            ])
            .assert(),
        "after the CA's own NotAfter",
    );
    nothing_recorded(&env);
    // and no key was generated for the device
    let a = env
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    assert!(!common::stdout_of(&a).contains("device-d1"));
}

#[test]
fn missing_region() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    let mut c = env.cmd();
    c.env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION");
    c.args([
        "pca",
        "issue",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "d1",
        "--csr",
        "ok.csr",
    ]);
    refused(c.assert(), "no AWS region configured");
    // ARN in another region than the configured one
    let other = env.ca().replace(":us-east-1:", ":eu-west-1:");
    refused(
        issue(&env, &other, "d1", "ok.csr", "30d"),
        "configured AWS region is us-east-1",
    );
    nothing_recorded(&env);
}

#[test]
fn unreachable_endpoint_is_named() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let mut c = env.cmd();
    c.env("AWS_ENDPOINT_URL", &url).args([
        "pca",
        "issue",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "d1",
        "--csr",
        "ok.csr",
        "--max-attempts",
        "2",
    ]);
    let line = refused(
        c.assert(),
        &format!("cannot reach the AWS Private CA endpoint {url}"),
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    let mut c = env.cmd();
    c.env("AWS_ENDPOINT_URL", &url)
        .args(["pca", "list", "--max-attempts", "1"]);
    refused(
        c.assert(),
        &format!("cannot reach the DynamoDB endpoint {url}"),
    );
    nothing_recorded(&env);
}

#[test]
fn missing_table() {
    let env = PcaEnv::new();
    make_csr(&env, "ok.csr", false);
    let mut c = env.cmd();
    c.env("HSM_DEMO_TABLE", "no-such-table-here").args([
        "pca",
        "issue",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "d1",
        "--csr",
        "ok.csr",
    ]);
    refused(c.assert(), "registry table 'no-such-table-here' not found");
    let mut c = env.cmd();
    c.env("HSM_DEMO_TABLE", "no-such-table-here").args([
        "provision",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "d2",
    ]);
    refused(c.assert(), "pca init-table");
    nothing_recorded(&env);
}

#[test]
fn wrong_pin_fails_before_any_aws_call() {
    let env = PcaEnv::new();
    // An access key of this run alone: the stand-in counts every request signed with it, of any
    // operation and service, so "before any AWS call" is a total of exactly zero.
    let akid = format!("{}WRONGPIN", env.akid);
    let mut c = env.cmd();
    c.env("HSM_DEMO_PIN", "999999")
        .env("AWS_ACCESS_KEY_ID", &akid)
        .args(["provision", "--ca-arn", env.ca(), "--device-id", "d1"]);
    refused(c.assert(), "CKR_PIN_INCORRECT");
    let calls = standin::calls_of(&env.endpoint, &akid);
    assert_eq!(calls["total"], 0, "AWS calls before the HSM login: {calls}");
    nothing_recorded(&env);
    // The counter sees this command's calls: with the right PIN the same command calls AWS.
    let ok_akid = format!("{}RIGHTPIN", env.akid);
    env.cmd()
        .env("AWS_ACCESS_KEY_ID", &ok_akid)
        .args(["provision", "--ca-arn", env.ca(), "--device-id", "d1"])
        .assert()
        .success();
    assert!(standin::calls(&env.endpoint, &ok_akid, "IssueCertificate") >= 1);
}

#[test]
fn revoke_and_show_bad_input() {
    let env = PcaEnv::new();
    refused(
        env.cmd()
            .args([
                "pca",
                "revoke",
                "--serial",
                "zz:11",
                "--reason",
                "superseded",
            ])
            .assert(),
        "invalid serial",
    );
    refused(
        env.cmd()
            .args(["pca", "revoke", "--serial", "0a1b", "--reason", "bored"])
            .assert(),
        "unknown revocation reason",
    );
    refused(
        env.cmd()
            .args([
                "pca",
                "revoke",
                "--serial",
                "0a1b",
                "--reason",
                "superseded",
            ])
            .assert(),
        "not in registry table",
    );
    refused(
        env.cmd()
            .args(["pca", "show", "--device-id", "nobody"])
            .assert(),
        "not in the registry",
    );
    refused(
        env.cmd().args(["pca", "list", "--status", "lost"]).assert(),
        "unknown --status",
    );
    nothing_recorded(&env);
}

#[test]
fn out_dir_behind_a_file() {
    // A missing --out-dir is created (tests/out_dir_created.rs); one that cannot be, because a
    // file is in the way, is refused before anything is recorded.
    let env = PcaEnv::new();
    std::fs::write(env.path("blocker"), b"x").unwrap();
    refused(
        env.cmd()
            .args([
                "provision",
                "--ca-arn",
                env.ca(),
                "--device-id",
                "d1",
                "--out-dir",
                "blocker/dir",
            ])
            .assert(),
        "is not a directory",
    );
    nothing_recorded(&env);
}
