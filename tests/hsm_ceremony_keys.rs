//! The key ceremony's root key is not a device key: after a real `key-ceremony`, every ordinary
//! command (`sign`, `pca csr`, `pca issue`, `provision` single and `--manifest`) refuses the root
//! key with one line, writes nothing and calls no AWS API; `provision` refuses a token that holds
//! a ceremony key at all; `generate-key` cannot forge the mark; `key-ceremony` warns when its
//! token holds device keys; `sign-intermediate` (the ceremony's own step) still signs.
mod common;
mod pca_support;

use common::standin;
use common::{stderr_of, stdout_of, TestToken};
use pca_support::PcaEnv;

const ROOT_REFUSED: &str =
    "error: key 'root-ca-key' is a key-ceremony key: only key-ceremony may sign with it";

/// Asserts a failure (exit 1) with exactly one stderr line containing `want`, and nothing on
/// stdout.
fn refused(a: assert_cmd::assert::Assert, want: &str) -> String {
    refused_with(a, 1, want)
}

/// [`refused`] with the exit status `code` (2: a usage error).
fn refused_with(a: assert_cmd::assert::Assert, code: i32, want: &str) -> String {
    let (a, err) = one_line_stderr(a.code(code), want);
    assert!(
        stdout_of(&a).is_empty(),
        "stdout on failure: {}",
        stdout_of(&a)
    );
    err
}

/// Asserts a failure (exit 1) with exactly one stderr line containing `want` (stdout may hold a
/// ceremony's step headers).
fn one_line_stderr(
    a: assert_cmd::assert::Assert,
    want: &str,
) -> (assert_cmd::assert::Assert, String) {
    let a = a.failure();
    let err = common::one_line_error(&a, want);
    (a, err)
}

fn ceremony(t: &TestToken) -> assert_cmd::assert::Assert {
    t.cmd().arg("key-ceremony").assert().success()
}

fn transcript_entry(t: &TestToken, step: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["step"] == step)
        .unwrap_or_else(|| panic!("no {step} entry in {text}"))
}

/// The CKA_ID (hex) the ceremony gave the root key, from its transcript.
fn root_key_id(t: &TestToken) -> String {
    transcript_entry(t, "key-generated")["details"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn sign_and_pca_csr_refuse_the_root_key_and_write_nothing() {
    let t = TestToken::new("root-sign");
    ceremony(&t);
    let id = root_key_id(&t);
    assert!(
        hex::decode(&id).unwrap().starts_with(b"hsm-demo/ceremony/"),
        "the root key carries the ceremony mark: {id}"
    );
    // A TBSCertificate-sized message: what an attacker would have the root sign.
    std::fs::write(t.path("tbs.der"), [0x30u8; 300]).unwrap();
    let before = t.scratch_files();
    let err = refused(
        t.cmd()
            .args(["sign", "--label", "root-ca-key", "--in", "tbs.der"])
            .args(["--format", "raw"])
            .assert(),
        ROOT_REFUSED,
    );
    assert!(err.starts_with(ROOT_REFUSED), "{err}");
    // By id, by URI, and for a CSR: the same refusal.
    refused(
        t.cmd().args(["sign", "--id", &id, "--data", "x"]).assert(),
        ROOT_REFUSED,
    );
    refused(
        t.cmd()
            .args(["sign", "--uri", "pkcs11:object=root-ca-key;type=private"])
            .args(["--data", "x"])
            .assert(),
        ROOT_REFUSED,
    );
    refused(
        t.cmd()
            .args(["pca", "csr", "--label", "root-ca-key", "--cn", "evil"])
            .args(["--out", "evil.csr"])
            .assert(),
        ROOT_REFUSED,
    );
    assert_eq!(t.scratch_files(), before, "nothing written");
    // generate-key cannot forge the mark onto an ordinary key.
    let forged = hex::encode(b"hsm-demo/ceremony/forged");
    refused_with(
        t.cmd()
            .args(["generate-key", "--label", "fake-root", "--id", &forged])
            .assert(),
        2,
        "that prefix marks key-ceremony keys",
    );
    // An ordinary key on the same token still signs.
    t.generate_key("ordinary");
    let a = t
        .cmd()
        .args(["sign", "--label", "ordinary", "--data", "x"])
        .assert()
        .success();
    assert!(stdout_of(&a).starts_with("Signature: 30"));
}

#[test]
fn provision_and_pca_issue_refuse_the_root_key_before_any_aws_call() {
    let env = PcaEnv::new();
    ceremony(&env.token);
    let calls = || standin::issue_calls(&env.endpoint, env.ca());
    let provision = |extra: &[&str]| {
        env.cmd()
            .args(["provision", "--ca-arn", env.ca()])
            .args(extra)
            .assert()
    };
    // The root key as a device key: refused (the token holds a ceremony key).
    refused(
        provision(&["--device-id", "d1", "--key-label", "root-ca-key"]),
        "key 'root-ca-key' on token 'pca' is a key-ceremony key: provision refuses a token that holds a root CA key (keep the root on a separate token)",
    );
    // Any device on this token: refused the same way, single device and batch.
    refused(
        provision(&["--device-id", "d2"]),
        "provision refuses a token that holds a root CA key",
    );
    std::fs::write(
        env.path("fleet.csv"),
        "device_id,cn,san_dns,san_uri,template\nm1,,,,\nm2,,,,\n",
    )
    .unwrap();
    refused(
        provision(&["--manifest", "fleet.csv"]),
        "provision refuses a token that holds a root CA key",
    );
    // pca issue builds the CSR from the HSM key before AWS: the signer refuses the root key.
    refused(
        env.cmd()
            .args(["pca", "issue", "--ca-arn", env.ca(), "--device-id", "d3"])
            .args(["--label", "root-ca-key"])
            .assert(),
        ROOT_REFUSED,
    );
    assert_eq!(calls(), 0, "no IssueCertificate reached the stand-in");
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    // No device key was generated on the root's token.
    let keys = env.objects_json();
    assert!(
        !keys.to_string().contains("device-"),
        "a device key was generated: {keys}"
    );
}

#[test]
fn key_ceremony_warns_on_a_token_with_device_keys() {
    // A clean token: no warning, and the transcript records no other keys.
    let clean = TestToken::new("clean");
    let a = ceremony(&clean);
    assert_eq!(stderr_of(&a), "", "no warning on a clean token");
    let d = &transcript_entry(&clean, "token-checked")["details"];
    assert_eq!(d["other_private_keys"], 0, "{d}");

    let t = TestToken::new("shared");
    t.generate_key("device-a");
    t.generate_key("device-b");
    let a = ceremony(&t);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "one warning line: {err}");
    assert!(
        err.starts_with(
            "warning: token 'shared' also holds 2 private key(s) that are not key-ceremony keys"
        ),
        "{err}"
    );
    assert!(err.contains("keep the root on a separate token"), "{err}");
    let d = &transcript_entry(&t, "token-checked")["details"];
    assert_eq!(d["other_private_keys"], 2, "{d}");
    // The transcript with the new field still verifies.
    t.cmd_bare()
        .args([
            "key-ceremony",
            "verify-transcript",
            "ceremony/transcript.jsonl",
        ])
        .args(["--cert", "ceremony/root.pem"])
        .assert()
        .success();
}

#[test]
fn sign_intermediate_still_signs_and_refuses_an_ordinary_key() {
    let t = TestToken::new("inter");
    ceremony(&t);
    t.generate_key("device-x");
    let out = t
        .tool("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-keyout", "i.key"])
        .args(["-subj", "/CN=Intermediate", "-out", "i.csr"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An ordinary key under the ceremony: refused by the ceremony's own signer.
    one_line_stderr(
        t.cmd()
            .args(["key-ceremony", "sign-intermediate", "--csr", "i.csr"])
            .args(["--out", "x.pem", "--key-label", "device-x"])
            .assert()
            .code(1),
        "key 'device-x' is not a key-ceremony key",
    );
    assert!(!t.path("x.pem").exists());
    t.cmd()
        .args(["key-ceremony", "sign-intermediate", "--csr", "i.csr"])
        .args(["--out", "i.pem"])
        .assert()
        .success();
    let v = t
        .tool("openssl")
        .args(["verify", "-CAfile", "ceremony/root.pem", "i.pem"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
