//! Interoperability: signatures and public keys checked by openssl, signatures made by
//! pkcs11-tool checked by hsm-demo, P-384, all output formats, batch signing.
mod common;

use common::{stdout_of, ModuleKind, TestToken};

fn openssl_ok(t: &TestToken, args: &[&str]) -> String {
    let out = t.tool("openssl").args(args).output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn export(t: &TestToken, label: &str, file: &str) {
    t.cmd()
        .args(["export-pubkey", "--label", label, "--out", file])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn openssl_verifies_signature_and_reads_public_key_p256_and_p384() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "interop");
        for (curve, dgst, bits) in [
            ("p256", "-sha256", "256 bit"),
            ("p384", "-sha384", "384 bit"),
        ] {
            let label = format!("key-{curve}");
            let a = t
                .cmd()
                .args(["generate-key", "--label", &label, "--curve", curve])
                .assert()
                .success();
            let want = if curve == "p256" { "P-256" } else { "P-384" };
            assert_eq!(
                stdout_of(&a),
                format!("Generated ECDSA {want} key pair, label: {label}\n")
            );
            let pem = format!("{curve}.pem");
            export(&t, &label, &pem);
            let text = openssl_ok(&t, &["pkey", "-pubin", "-in", &pem, "-noout", "-text"]);
            assert!(text.contains(bits), "{text}");

            std::fs::write(t.path("msg.txt"), b"hello cert world").unwrap();
            let sig = format!("{curve}.der");
            t.cmd()
                .args([
                    "sign", "--label", &label, "--in", "msg.txt", "--format", "raw", "--out", &sig,
                ])
                .assert()
                .success()
                .stdout("");
            let v = openssl_ok(
                &t,
                &["dgst", dgst, "-verify", &pem, "-signature", &sig, "msg.txt"],
            );
            assert!(v.contains("Verified OK"), "{v}");

            // openssl rejects it for other data: the check is real.
            std::fs::write(t.path("other.txt"), b"hello cert world!").unwrap();
            let out = t
                .tool("openssl")
                .args([
                    "dgst",
                    dgst,
                    "-verify",
                    &pem,
                    "-signature",
                    &sig,
                    "other.txt",
                ])
                .output()
                .unwrap();
            assert!(!out.status.success());

            // hex output = hex of the same kind of DER; hsm-demo verifies with --pubkey (no HSM).
            let a = t
                .cmd()
                .args(["sign", "--label", &label, "--data", "hello cert world"])
                .assert()
                .success();
            let hexsig = stdout_of(&a)
                .trim()
                .strip_prefix("Signature: ")
                .unwrap()
                .to_string();
            std::fs::write(t.path("hex.der"), hex::decode(&hexsig).unwrap()).unwrap();
            openssl_ok(
                &t,
                &[
                    "dgst",
                    dgst,
                    "-verify",
                    &pem,
                    "-signature",
                    "hex.der",
                    "msg.txt",
                ],
            );
            t.cmd_bare()
                .env("HSM_DEMO_MODULE", "/nonexistent/module.so")
                .args([
                    "verify", "--pubkey", &pem, "--in", "msg.txt", "--sig", &hexsig,
                ])
                .assert()
                .success()
                .stdout("Signature verified OK\n");
        }
    }
}

#[test]
fn openssl_signature_verifies_in_hsm_demo() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "interop2");
        t.generate_key("k");
        export(&t, "k", "pub.pem");
        // A software key signed by openssl does NOT verify against the HSM key…
        openssl_ok(
            &t,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "sw.key",
            ],
        );
        std::fs::write(t.path("m"), b"data").unwrap();
        openssl_ok(
            &t,
            &["dgst", "-sha256", "-sign", "sw.key", "-out", "sw.sig", "m"],
        );
        t.cmd()
            .args([
                "verify",
                "--label",
                "k",
                "--in",
                "m",
                "--sig-file",
                "sw.sig",
            ])
            .assert()
            .code(1)
            .stderr("error: signature verification failed\n");
        // …but does verify against its own public key exported by openssl.
        openssl_ok(&t, &["ec", "-in", "sw.key", "-pubout", "-out", "sw.pub"]);
        t.cmd()
            .args([
                "verify",
                "--pubkey",
                "sw.pub",
                "--in",
                "m",
                "--sig-file",
                "sw.sig",
            ])
            .assert()
            .success()
            .stdout("Signature verified OK\n");
    }
}

#[test]
fn pkcs11_tool_raw_signature_verifies() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "interop3");
        t.cmd()
            .args(["generate-key", "--label", "k", "--id", "c0ffee"])
            .assert()
            .success();
        std::fs::write(t.path("m"), b"signed by pkcs11-tool").unwrap();
        // pkcs11-tool hashes with SHA-256 itself (ECDSA-SHA256 is absent in SoftHSM), so hash
        // with openssl and sign the digest with plain ECDSA: raw r||s output.
        let d = t
            .tool("openssl")
            .args(["dgst", "-sha256", "-binary", "-out", "m.sha256", "m"])
            .status()
            .unwrap();
        assert!(d.success());
        let out = t
            .tool("pkcs11-tool")
            .arg("--module")
            .arg(t.kind.module_path())
            .args(["--token-label", "interop3", "--login", "--pin", &t.pin])
            .args([
                "--sign", "--id", "c0ffee", "-m", "ECDSA", "-i", "m.sha256", "-o", "m.sig",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let raw = std::fs::read(t.path("m.sig")).unwrap();
        assert_eq!(raw.len(), 64, "raw r||s");
        t.cmd()
            .args([
                "verify",
                "--id",
                "c0ffee",
                "--in",
                "m",
                "--sig",
                &hex::encode(&raw),
            ])
            .assert()
            .success()
            .stdout("Signature verified OK\n");
    }
}

#[test]
fn base64_format_and_batch_signing() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "batch");
        t.generate_key("b");
        export(&t, "b", "pub.pem");
        let a = t
            .cmd()
            .args(["sign", "--label", "b", "--data", "x", "--format", "base64"])
            .assert()
            .success();
        let b64 = stdout_of(&a)
            .trim()
            .strip_prefix("Signature: ")
            .unwrap()
            .to_string();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap();
        t.cmd()
            .args([
                "verify",
                "--label",
                "b",
                "--data",
                "x",
                "--sig",
                &hex::encode(&der),
            ])
            .assert()
            .success();

        let msgs: Vec<String> = (0..50).map(|i| format!("device-{i:03}")).collect();
        std::fs::write(t.path("batch.txt"), msgs.join("\r\n") + "\n").unwrap();
        let a = t
            .cmd()
            .args(["sign", "--label", "b", "--batch", "batch.txt"])
            .assert()
            .success();
        let out = stdout_of(&a);
        let sigs: Vec<&str> = out.lines().collect();
        assert_eq!(sigs.len(), msgs.len());
        // Every line's signature is for its own message, checked by openssl.
        for (i, (m, s)) in msgs.iter().zip(&sigs).enumerate().step_by(7) {
            std::fs::write(t.path("bm"), m).unwrap();
            std::fs::write(t.path("bs"), hex::decode(s).unwrap()).unwrap();
            openssl_ok(
                &t,
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    "pub.pem",
                    "-signature",
                    "bs",
                    "bm",
                ],
            );
            if i + 1 < sigs.len() {
                std::fs::write(t.path("bs"), hex::decode(sigs[i + 1]).unwrap()).unwrap();
                let o = t
                    .tool("openssl")
                    .args([
                        "dgst",
                        "-sha256",
                        "-verify",
                        "pub.pem",
                        "-signature",
                        "bs",
                        "bm",
                    ])
                    .output()
                    .unwrap();
                assert!(
                    !o.status.success(),
                    "line {i} verified with the next line's signature"
                );
            }
        }
    }
}

/// A key pair made by pkcs11-tool with `--private` (its public key visible only after login):
/// `export-pubkey` finds it by logging in when a PIN source is configured; without one it says
/// the key is not found, one line, and never tries to log in or prompt.
#[test]
fn a_public_key_visible_only_after_login_is_found_when_a_pin_is_available() {
    let t = TestToken::new("interop-private");
    let out = t
        .tool("pkcs11-tool")
        .arg("--module")
        .arg(t.kind.module_path())
        .args([
            "--token-label",
            "interop-private",
            "--login",
            "--pin",
            &t.pin,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "hidden",
        ])
        .args(["--id", "0d0d", "--private"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // HSM_DEMO_PIN set (TestToken::cmd): the look-up logs in and finds it.
    let a = t
        .cmd()
        .args(["export-pubkey", "--label", "hidden"])
        .assert()
        .success();
    assert!(
        stdout_of(&a).contains("BEGIN PUBLIC KEY"),
        "{}",
        stdout_of(&a)
    );
    // No PIN source at all: not found, without a login attempt or a prompt.
    let a = t
        .cmd()
        .env_remove("HSM_DEMO_PIN")
        .args(["export-pubkey", "--label", "hidden"])
        .assert()
        .failure();
    let line = common::one_line_error(&a, "hidden");
    assert!(!line.contains("PIN"), "{line}");
}
