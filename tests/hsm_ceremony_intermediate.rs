//! `key-ceremony sign-intermediate`: openssl-generated CSRs (EC P-256, P-384, RSA) signed by the
//! HSM root key, checked with `openssl verify` and a full root → intermediate (pathLen 1) →
//! issuing (pathLen 0) → leaf chain; validity beyond the root, bad CSRs, a tampered transcript
//! and a foreign root are refused with nothing written.
mod common;

use std::path::{Path, PathBuf};

use common::{one_line_error, stderr_of, stdout_of, TestToken};

fn openssl(t: &TestToken, args: &[&str]) -> (bool, String) {
    let out = t.tool("openssl").args(args).output().expect("openssl");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn ok_openssl(t: &TestToken, args: &[&str]) -> String {
    let (ok, s) = openssl(t, args);
    assert!(ok, "openssl {args:?}: {s}");
    s
}

/// A token with a finished key ceremony in ./ceremony.
fn with_root(label: &str) -> TestToken {
    let t = TestToken::new(label);
    t.cmd_no_token().arg("key-ceremony").assert().success();
    t
}

/// `openssl req -new` with a fresh key of `newkey` (e.g. `ec`, `rsa:2048`).
fn csr(t: &TestToken, name: &str, newkey: &[&str], cn: &str) -> PathBuf {
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(newkey);
    let key = format!("{name}.key");
    let out = format!("{name}.csr");
    let subj = format!("/O=hsm-demo/CN={cn}");
    args.extend_from_slice(&["-keyout", &key, "-subj", &subj, "-out", &out]);
    ok_openssl(t, &args);
    t.path(&out)
}

fn sign(t: &TestToken, csr: &Path, out: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    t.cmd_no_token()
        .args(["key-ceremony", "sign-intermediate", "--csr"])
        .arg(csr)
        .args(["--out", out])
        .args(extra)
        .assert()
}

fn transcript(t: &TestToken) -> String {
    std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap()
}

#[test]
fn signs_ec_and_rsa_csrs_that_openssl_verifies() {
    let t = with_root("inter");
    let cases = [
        (
            "p256",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "EC P-256",
        ),
        (
            "p384",
            vec![
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-sha384",
            ],
            "EC P-384",
        ),
        ("rsa", vec!["-newkey", "rsa:2048"], "RSA 2048"),
        (
            "rsa4096",
            vec!["-newkey", "rsa:4096", "-sha512"],
            "RSA 4096",
        ),
    ];
    let (_, root_text) = openssl(&t, &["x509", "-in", "ceremony/root.pem", "-noout", "-text"]);
    let root_ski = root_text
        .split("X509v3 Subject Key Identifier:")
        .nth(1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    for (i, (name, newkey, desc)) in cases.iter().enumerate() {
        let c = csr(&t, name, newkey, &format!("Intermediate {name}"));
        let out = format!("{name}.pem");
        let a = sign(&t, &c, &out, &[]).success();
        let so = stdout_of(&a);
        for s in 1..=3 {
            assert!(so.contains(&format!("[Step {s}/3]")), "{so}");
        }
        assert!(so.contains(desc), "{desc}: {so}");
        let v = ok_openssl(&t, &["verify", "-CAfile", "ceremony/root.pem", &out]);
        assert!(v.contains(": OK"), "{v}");
        let text = ok_openssl(&t, &["x509", "-in", &out, "-noout", "-text"]);
        for want in [
            "X509v3 Basic Constraints: critical",
            "CA:TRUE, pathlen:1",
            "X509v3 Key Usage: critical",
            "Certificate Sign, CRL Sign",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
            "Issuer: O = hsm-demo, CN = hsm-demo Root CA",
            "Signature Algorithm: ecdsa-with-SHA256",
        ] {
            assert!(text.contains(want), "{name}: '{want}' missing: {text}");
        }
        assert!(
            text.contains(&format!("Subject: O = hsm-demo, CN = Intermediate {name}")),
            "{text}"
        );
        assert!(
            text.contains(&root_ski),
            "AKI = root SKI {root_ski}: {text}"
        );
        // The certificate carries exactly the CSR's public key.
        let k1 = ok_openssl(&t, &["x509", "-in", &out, "-noout", "-pubkey"]);
        let k2 = ok_openssl(
            &t,
            &["req", "-in", c.to_str().unwrap(), "-noout", "-pubkey"],
        );
        assert_eq!(k1, k2, "{name}");
        // The transcript got the step and a new seal, and still verifies.
        let tr = transcript(&t);
        assert_eq!(tr.lines().count(), 6 + 2 * (i + 1), "{tr}");
        let step: serde_json::Value =
            serde_json::from_str(tr.lines().rev().nth(1).unwrap()).unwrap();
        assert_eq!(step["step"], "intermediate-signed");
        assert_eq!(step["details"]["path_len"], 1);
        let der = pem::parse(std::fs::read(t.path(&out)).unwrap()).unwrap();
        assert_eq!(
            step["details"]["sha256"],
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der.contents()))
        );
        let a = t
            .cmd_bare()
            .args([
                "key-ceremony",
                "verify-transcript",
                "ceremony/transcript.jsonl",
            ])
            .args(["--cert", "ceremony/root.pem"])
            .assert()
            .success();
        assert!(
            stdout_of(&a).contains(&format!("{} seal(s)", i + 2)),
            "{}",
            stdout_of(&a)
        );
    }
}

/// root (pathLen 2) → intermediate (pathLen 1, signed in the HSM) → issuing CA (pathLen 0,
/// openssl) → leaf: the three-tier hierarchy of docs/acm-pca-design.md verifies.
#[test]
fn three_tier_chain_verifies() {
    let t = with_root("chain");
    let c = csr(
        &t,
        "inter",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "Intermediate",
    );
    sign(&t, &c, "inter.pem", &["--validity", "5y"]).success();
    std::fs::write(
        t.path("ca0.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    let ic = csr(
        &t,
        "issuing",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "Issuing",
    );
    ok_openssl(
        &t,
        &[
            "x509",
            "-req",
            "-in",
            ic.to_str().unwrap(),
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "ca0.ext",
            "-out",
            "issuing.pem",
        ],
    );
    std::fs::write(t.path("leaf.ext"), "basicConstraints=critical,CA:FALSE\n").unwrap();
    let lc = csr(
        &t,
        "leaf",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "device-1",
    );
    ok_openssl(
        &t,
        &[
            "x509",
            "-req",
            "-in",
            lc.to_str().unwrap(),
            "-CA",
            "issuing.pem",
            "-CAkey",
            "issuing.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(t.path("inter.pem")).unwrap(),
        std::fs::read_to_string(t.path("issuing.pem")).unwrap()
    );
    std::fs::write(t.path("chain.pem"), chain).unwrap();
    let v = ok_openssl(
        &t,
        &[
            "verify",
            "-CAfile",
            "ceremony/root.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(v.contains("leaf.pem: OK"), "{v}");
}

#[test]
fn validity_beyond_the_root_and_bad_path_len_are_rejected() {
    let t = with_root("validity");
    let c = csr(
        &t,
        "i",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "I",
    );
    let before = transcript(&t);
    let a = sign(&t, &c, "i.pem", &["--validity", "21y"]).code(2);
    one_line_error(&a, "validity 21 years ends");
    assert!(stderr_of(&a).contains("after the root certificate"));
    let a = sign(&t, &c, "i.pem", &["--path-len", "2"]).code(2);
    one_line_error(&a, "--path-len 2 is not below the root's pathLen 2");
    let a = sign(&t, &c, "i.pem", &["--validity", "ten years"]).code(2);
    one_line_error(&a, "--validity: validity 'ten years' is not of the form");
    assert!(!t.path("i.pem").exists());
    assert_eq!(transcript(&t), before, "transcript untouched");
    // Within the root's validity it works, and an existing output is never overwritten.
    let a = sign(&t, &c, "i.pem", &["--validity", "7310d"]).code(2);
    one_line_error(&a, "validity 7310 days ends");
    sign(&t, &c, "i.pem", &["--validity", "19y"]).success();
    let after = transcript(&t);
    let a = sign(&t, &c, "i.pem", &[]).code(2);
    one_line_error(&a, "i.pem already exists");
    assert_eq!(transcript(&t), after);
}

#[test]
fn bad_csrs_are_rejected() {
    let t = with_root("badcsr");
    let before = transcript(&t);
    std::fs::write(t.path("garbage.csr"), "this is not a CSR\n").unwrap();
    let a = sign(&t, &t.path("garbage.csr"), "g.pem", &[]).code(2);
    one_line_error(&a, "is not a PEM certificate request");

    // A certificate where a CSR is expected.
    let a = sign(&t, &t.path("ceremony/root.pem"), "g.pem", &[]).code(2);
    one_line_error(&a, "holds a PEM 'CERTIFICATE', not a CERTIFICATE REQUEST");

    // Valid PEM, broken DER.
    std::fs::write(
        t.path("broken.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAjCBqAIBADA=\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let a = sign(&t, &t.path("broken.csr"), "g.pem", &[]).code(2);
    one_line_error(&a, "is not a valid PKCS#10 CSR");

    // A CSR whose signature does not match its contents: change one byte of the subject.
    let c = csr(&t, "rsa", &["-newkey", "rsa:2048"], "Intermediate AAAA");
    let der = ok_openssl(
        &t,
        &[
            "req",
            "-in",
            c.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            "rsa.der",
        ],
    );
    let _ = der;
    let mut bytes = std::fs::read(t.path("rsa.der")).unwrap();
    let pos = bytes.windows(4).position(|w| w == b"AAAA").unwrap();
    bytes[pos] = b'B';
    let pem_text = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes));
    std::fs::write(t.path("tampered.csr"), pem_text).unwrap();
    let a = sign(&t, &t.path("tampered.csr"), "g.pem", &[]).code(2);
    one_line_error(&a, "has an invalid signature");

    // Too small an RSA key.
    let c = csr(&t, "small", &["-newkey", "rsa:1024"], "Small");
    let a = sign(&t, &c, "g.pem", &[]).code(1);
    one_line_error(&a, "RSA key has 1024 bits: at least 2048 are required");

    // A missing CSR file.
    let a = sign(&t, &t.path("nope.csr"), "g.pem", &[]).code(1);
    one_line_error(&a, "cannot read CSR");

    assert!(!t.path("g.pem").exists());
    assert_eq!(transcript(&t), before, "transcript untouched");
}

#[test]
fn tampered_transcript_or_foreign_root_is_refused_before_the_hsm() {
    let t = with_root("refuse");
    let c = csr(
        &t,
        "i",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "I",
    );
    let good = transcript(&t);
    // Tampered transcript: refused even with a bogus module (verification needs no HSM).
    std::fs::write(
        t.path("ceremony/transcript.jsonl"),
        good.replace("\"logged_in\":true", "\"logged_in\":false"),
    )
    .unwrap();
    let a = t
        .cmd_bare()
        .env("HSM_DEMO_MODULE", t.path("no-such-module.so"))
        .args(["key-ceremony", "sign-intermediate", "--csr"])
        .arg(&c)
        .args(["--out", "i.pem"])
        .assert()
        .code(1);
    one_line_error(&a, "prev does not match");
    assert!(!t.path("i.pem").exists());
    std::fs::write(t.path("ceremony/transcript.jsonl"), &good).unwrap();

    // Another ceremony's root (and transcript) with this token's key: the key does not match.
    let t2 = with_root("foreign");
    let a = sign(
        &t,
        &c,
        "i.pem",
        &["--ceremony-dir", t2.path("ceremony").to_str().unwrap()],
    )
    .code(1);
    one_line_error(&a, "is not the key of");
    // This ceremony's transcript with the other root certificate.
    let a = sign(
        &t,
        &c,
        "i.pem",
        &[
            "--root-cert",
            t2.path("ceremony/root.pem").to_str().unwrap(),
        ],
    )
    .code(1);
    one_line_error(
        &a,
        "is another root's certificate: the transcript is intact",
    );
    assert!(!t.path("i.pem").exists());
    assert_eq!(transcript(&t), good);
}

#[test]
fn out_dash_prints_only_the_certificate_on_stdout_and_records_it() {
    let t = with_root("inter-stdout");
    let c = csr(
        &t,
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "Intermediate stdout",
    );
    let a = sign(&t, &c, "-", &[]).success();
    let so = stdout_of(&a);
    let se = stderr_of(&a);
    // stdout is exactly one PEM certificate; the steps went to stderr.
    assert!(
        so.starts_with("-----BEGIN CERTIFICATE-----\n")
            && so.trim_end().ends_with("-----END CERTIFICATE-----")
            && so.matches("BEGIN").count() == 1,
        "{so}"
    );
    assert!(
        se.contains("[Step 3/3]") && se.contains("certificate:  (stdout)"),
        "{se}"
    );
    assert!(!t.path("-").exists(), "a file named '-' was created");
    std::fs::write(t.path("from-stdout.pem"), &so).unwrap();
    let v = ok_openssl(
        &t,
        &["verify", "-CAfile", "ceremony/root.pem", "from-stdout.pem"],
    );
    assert!(v.contains(": OK"), "{v}");
    // The transcript records this very certificate, and still verifies.
    let der_sha = {
        let d = ok_openssl(
            &t,
            &[
                "x509",
                "-in",
                "from-stdout.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        d.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase()
    };
    assert!(
        transcript(&t).contains(&der_sha),
        "transcript lacks {der_sha}"
    );
    t.cmd_no_token()
        .args([
            "key-ceremony",
            "verify-transcript",
            "ceremony/transcript.jsonl",
        ])
        .assert()
        .success();
}
