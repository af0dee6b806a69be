//! `key-ceremony crl`: the root's CRL signed by the HSM root key on a real SoftHSM2 token, as
//! openssl sees it (signature, CRL number, AKI, critical IDP onlyContainsCACerts, revoked serial
//! and reason, `openssl verify -crl_check` on the intermediate), numbers that increase, earlier
//! revocations carried forward, bad input refused before the module is loaded with nothing
//! written, `--dry-run`, `--out -`, `verify-transcript` after the CRL steps, and (with
//! `--features failpoints`) a kill or a failure between the transcript and the CRL file.
mod common;

use std::path::PathBuf;

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

/// A token with a finished key ceremony in ./ceremony (extra options for the ceremony).
fn with_root(label: &str, extra: &[&str]) -> TestToken {
    let t = TestToken::new(label);
    t.cmd_no_token()
        .arg("key-ceremony")
        .args(extra)
        .assert()
        .success();
    t
}

/// `key-ceremony crl ARGS` with the token's module.
fn crl(t: &TestToken, args: &[&str]) -> assert_cmd::assert::Assert {
    t.cmd_no_token()
        .args(["key-ceremony", "crl"])
        .args(args)
        .assert()
}

/// `key-ceremony crl ARGS` with a module path that does not exist: it succeeds (or fails with
/// its own error) only if nothing loads the module.
fn crl_without_module(t: &TestToken, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = t.cmd_bare();
    c.env("HSM_DEMO_MODULE", t.path("no-such-module.so"));
    c.args(["key-ceremony", "crl"]).args(args).assert()
}

/// An intermediate CA certificate signed by the root with `sign-intermediate`.
fn intermediate(t: &TestToken, name: &str) -> PathBuf {
    let (key, csr, out) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    ok_openssl(
        t,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &key,
            "-subj",
            &format!("/O=hsm-demo/CN={name}"),
            "-out",
            &csr,
        ],
    );
    t.cmd_no_token()
        .args([
            "key-ceremony",
            "sign-intermediate",
            "--csr",
            &csr,
            "--out",
            &out,
        ])
        .assert()
        .success();
    t.path(&out)
}

/// The serial of a certificate as `openssl crl -text` prints it (upper-case hex).
fn serial_of(t: &TestToken, cert: &str) -> String {
    let s = ok_openssl(t, &["x509", "-in", cert, "-noout", "-serial"]);
    s.trim().trim_start_matches("serial=").to_string()
}

fn transcript(t: &TestToken) -> String {
    std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap()
}

fn verify_transcript(t: &TestToken) -> String {
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
    stdout_of(&a)
}

fn crl_text(t: &TestToken, file: &str, inform: &str) -> String {
    let v = ok_openssl(
        t,
        &[
            "crl",
            "-in",
            file,
            "-inform",
            inform,
            "-CAfile",
            "ceremony/root.pem",
            "-verify",
            "-noout",
        ],
    );
    assert!(v.contains("verify OK"), "{v}");
    ok_openssl(
        t,
        &["crl", "-in", file, "-inform", inform, "-noout", "-text"],
    )
}

/// The value printed on the line after `header` in `openssl ... -text` output.
fn after(text: &str, header: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(header));
    lines
        .next()
        .unwrap_or_else(|| panic!("{header} missing: {text}"));
    lines.next().unwrap().trim().to_string()
}

#[test]
fn initial_empty_crl_verifies_with_openssl() {
    let t = with_root("crl-empty", &[]);
    let before = transcript(&t).lines().count();
    let a = crl(&t, &["--out", "ceremony/root-1.crl"]).success();
    let so = stdout_of(&a);
    for s in 1..=3 {
        assert!(so.contains(&format!("[Step {s}/3]")), "{so}");
    }
    let text = crl_text(&t, "ceremony/root-1.crl", "PEM");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "1", "{text}");
    assert!(
        text.contains("X509v3 Issuing Distribution Point: critical"),
        "{text}"
    );
    assert!(text.contains("Only CA Certificates"), "{text}");
    assert!(
        !text.contains("Full Name"),
        "no distribution point name: {text}"
    );
    assert!(text.contains("No Revoked Certificates."), "{text}");
    assert!(
        text.contains("Issuer: O = hsm-demo, CN = hsm-demo Root CA"),
        "{text}"
    );
    let root = ok_openssl(&t, &["x509", "-in", "ceremony/root.pem", "-noout", "-text"]);
    let ski = after(&root, "X509v3 Subject Key Identifier:");
    let aki = after(&text, "X509v3 Authority Key Identifier:");
    assert!(aki.ends_with(&ski), "AKI {aki} = root SKI {ski}");
    // The step and a new seal are in the transcript, which still verifies.
    let tr = transcript(&t);
    assert_eq!(tr.lines().count(), before + 2, "{tr}");
    let step: serde_json::Value = serde_json::from_str(tr.lines().rev().nth(1).unwrap()).unwrap();
    assert_eq!(step["step"], "crl-signed");
    assert_eq!(step["details"]["crl_number"], 1);
    assert_eq!(step["details"]["revoked"], serde_json::json!([]));
    let vt = verify_transcript(&t);
    assert!(
        vt.contains("2 seal(s)") && vt.contains("crl-signed"),
        "{vt}"
    );
    // DER output verifies too, and is CRL number 2.
    crl(&t, &["--out", "root-2.der", "--der"]).success();
    let text = crl_text(&t, "root-2.der", "DER");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "2", "{text}");
}

#[test]
fn revoked_intermediate_is_listed_and_numbers_increase() {
    let t = with_root("crl-revoke", &[]);
    let inter = intermediate(&t, "inter");
    let inter_s = inter.to_str().unwrap();
    let serial = serial_of(&t, inter_s);
    crl(&t, &["--out", "root-1.crl"]).success();
    // Before the revocation the intermediate verifies with CRL checking (the CRL's IDP scope
    // applies to it: a CA certificate, no distribution point name to match).
    let v = ok_openssl(
        &t,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ceremony/root.pem",
            "-CRLfile",
            "root-1.crl",
            inter_s,
        ],
    );
    assert!(v.contains(": OK"), "{v}");
    let a = crl(
        &t,
        &[
            "--out",
            "root-2.crl",
            "--revoke",
            inter_s,
            "--reason",
            "key-compromise",
        ],
    )
    .success();
    assert!(
        stdout_of(&a).contains(&serial.to_lowercase()),
        "{}",
        stdout_of(&a)
    );
    let text = crl_text(&t, "root-2.crl", "PEM");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "2", "{text}");
    assert!(
        text.contains(&format!("Serial Number: {serial}")),
        "{serial}: {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    let (ok, v) = openssl(
        &t,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ceremony/root.pem",
            "-CRLfile",
            "root-2.crl",
            inter_s,
        ],
    );
    assert!(!ok && v.contains("certificate revoked"), "{v}");
    // A later CRL without --revoke still lists it, with the first reason, and is number 3.
    crl(&t, &["--out", "root-3.crl"]).success();
    let text = crl_text(&t, "root-3.crl", "PEM");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "3", "{text}");
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    let vt = verify_transcript(&t);
    assert!(vt.contains("5 seal(s)"), "{vt}");
}

/// Writes leaf.pem (an end-entity certificate, self-signed), other-root.pem (another root with
/// the same name as ours), foreign.pem (a CA certificate that other root issued) and bad.pem.
fn bad_certificates(t: &TestToken) {
    // An end-entity certificate (self-signed), another root with the same name as ours, and a
    // CA certificate that other root issued.
    std::fs::write(t.path("leaf.ext"), "basicConstraints=critical,CA:FALSE\n").unwrap();
    std::fs::write(t.path("ca.ext"), "basicConstraints=critical,CA:TRUE\n").unwrap();
    for (name, subj) in [
        ("leaf", "/CN=device-1"),
        ("other", "/O=hsm-demo/CN=hsm-demo Root CA"),
        ("foreign", "/O=hsm-demo/CN=foreign"),
    ] {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        ok_openssl(
            t,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                &key,
                "-subj",
                subj,
                "-out",
                &csr,
            ],
        );
    }
    for (csr, signer, ext, out) in [
        (
            "leaf.csr",
            &["-signkey", "leaf.key"][..],
            "leaf.ext",
            "leaf.pem",
        ),
        (
            "other.csr",
            &["-signkey", "other.key"][..],
            "ca.ext",
            "other-root.pem",
        ),
        (
            "foreign.csr",
            &[
                "-CA",
                "other-root.pem",
                "-CAkey",
                "other.key",
                "-CAcreateserial",
            ][..],
            "ca.ext",
            "foreign.pem",
        ),
    ] {
        let mut args = vec!["x509", "-req", "-in", csr, "-days", "30", "-extfile", ext];
        args.extend_from_slice(signer);
        args.extend_from_slice(&["-out", out]);
        ok_openssl(t, &args);
    }
    std::fs::write(
        t.path("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nthis is not base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
}

/// Every bad input: one error line, non-zero exit, no CRL, the transcript unchanged, and no
/// module loaded (the module path does not exist).
#[test]
fn bad_input_is_refused_before_the_hsm_with_nothing_written() {
    let t = with_root("crl-bad", &[]);
    let before = transcript(&t);
    bad_certificates(&t);
    std::fs::write(t.path("existing.crl"), "keep me").unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["--next-update", "13mo"],
            "more than 12 months after thisUpdate",
        ),
        (
            &["--next-update", "400d"],
            "more than 12 months after thisUpdate",
        ),
        (
            &["--next-update", "0d"],
            "nextUpdate must be later than thisUpdate",
        ),
        (&["--revoke", "leaf.pem"], "is not a CA certificate"),
        (&["--revoke", "foreign.pem"], "was not issued by this root"),
        (
            &["--revoke", "other-root.pem"],
            "was not issued by this root",
        ),
        (
            &["--revoke", "ceremony/root.pem"],
            "is the root certificate itself",
        ),
        (&["--revoke", "bad.pem"], "bad.pem"),
        (
            &["--revoke", "foreign.pem", "--reason", "stolen"],
            "unknown revocation reason",
        ),
    ];
    for (args, want) in cases {
        let a = crl_without_module(&t, &[&["--out", "new.crl"], args].concat()).failure();
        one_line_error(&a, want);
        assert!(!t.path("new.crl").exists(), "{args:?}");
        assert_eq!(transcript(&t), before, "{args:?}");
    }
    let a = crl_without_module(&t, &["--out", "existing.crl"]).failure();
    one_line_error(&a, "existing.crl");
    assert_eq!(
        std::fs::read_to_string(t.path("existing.crl")).unwrap(),
        "keep me"
    );
    assert_eq!(transcript(&t), before);
    verify_transcript(&t);
}

#[test]
fn next_update_past_the_root_validity_is_refused() {
    let t = with_root("crl-short", &["--validity", "30d"]);
    let before = transcript(&t);
    let a = crl_without_module(&t, &["--out", "new.crl", "--next-update", "60d"]).failure();
    one_line_error(&a, "must lie within the root certificate's validity");
    assert!(!t.path("new.crl").exists());
    assert_eq!(transcript(&t), before);
    // Within the root's validity it works.
    crl(&t, &["--out", "new.crl", "--next-update", "20d"]).success();
    crl_text(&t, "new.crl", "PEM");
}

#[test]
fn dry_run_writes_nothing_and_keeps_the_transcript() {
    let t = with_root("crl-dry", &[]);
    let inter = intermediate(&t, "inter");
    let serial = serial_of(&t, inter.to_str().unwrap()).to_lowercase();
    let before = transcript(&t);
    let a = crl_without_module(
        &t,
        &[
            "--out",
            "root-1.crl",
            "--revoke",
            inter.to_str().unwrap(),
            "--dry-run",
        ],
    )
    .success();
    let so = stdout_of(&a);
    assert!(
        so.contains("CRL number:   1") && so.contains(&serial),
        "{so}"
    );
    assert!(so.contains("Dry run"), "{so}");
    assert!(!t.path("root-1.crl").exists());
    assert_eq!(transcript(&t), before);
    // The real run afterwards is still number 1.
    crl(
        &t,
        &["--out", "root-1.crl", "--revoke", inter.to_str().unwrap()],
    )
    .success();
    let text = crl_text(&t, "root-1.crl", "PEM");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "1", "{text}");
}

#[test]
fn out_dash_prints_pem_on_stdout_and_steps_on_stderr() {
    let t = with_root("crl-stdout", &[]);
    let a = crl(&t, &["--out", "-"]).success();
    let so = stdout_of(&a);
    assert!(so.starts_with("-----BEGIN X509 CRL-----"), "{so}");
    assert!(!so.contains("[Step"), "{so}");
    assert!(stderr_of(&a).contains("[Step 3/3]"), "{}", stderr_of(&a));
    std::fs::write(t.path("stdout.crl"), so).unwrap();
    let text = crl_text(&t, "stdout.crl", "PEM");
    assert_eq!(after(&text, "X509v3 CRL Number:"), "1", "{text}");
    verify_transcript(&t);
}

/// SIGKILL, and an injected failure, between the transcript write and the CRL file.
#[cfg(feature = "failpoints")]
mod kill {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    use super::*;

    const POINT: &str = "crl-transcript-written";

    fn std_cmd(t: &TestToken) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("hsm-demo"));
        for k in [
            "RUST_LOG",
            "HSM_DEMO_TOKEN",
            "SOFTHSM2_CONF",
            "KRYOPTIC_CONF",
        ] {
            c.env_remove(k);
        }
        for (k, v) in t.module_env() {
            c.env(k, v);
        }
        c.env("HSM_DEMO_MODULE", t.kind.module_path())
            .env("HSM_DEMO_PIN", &t.pin)
            .current_dir(t.dir.path());
        c
    }

    #[test]
    fn a_kill_after_the_transcript_never_reuses_the_crl_number() {
        let t = with_root("crl-kill", &[]);
        let mut child = std_cmd(&t)
            .args(["key-ceremony", "crl", "--out", "root-1.crl"])
            .env("FAILPOINTS", format!("{POINT}=return"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let want = format!("kill point {POINT}: waiting for SIGKILL");
        let reader = BufReader::new(child.stderr.take().unwrap());
        let at_point = reader.lines().any(|l| l.unwrap() == want);
        let _ = child.kill();
        assert!(at_point && child.wait().unwrap().signal() == Some(9));
        // The transcript records CRL 1 (and the CRL itself, which verifies); no file was written.
        assert!(!t.path("root-1.crl").exists());
        verify_transcript(&t);
        let tr = transcript(&t);
        let step: serde_json::Value =
            serde_json::from_str(tr.lines().rev().nth(1).unwrap()).unwrap();
        assert_eq!(step["step"], "crl-signed");
        assert_eq!(step["details"]["crl_number"], 1);
        std::fs::write(
            t.path("recorded.crl"),
            step["details"]["crl_pem"].as_str().unwrap(),
        )
        .unwrap();
        let text = crl_text(&t, "recorded.crl", "PEM");
        assert_eq!(after(&text, "X509v3 CRL Number:"), "1", "{text}");
        // The rerun signs number 2.
        crl(&t, &["--out", "root-1.crl"]).success();
        let text = crl_text(&t, "root-1.crl", "PEM");
        assert_eq!(after(&text, "X509v3 CRL Number:"), "2", "{text}");
    }

    #[test]
    fn a_failure_writing_the_crl_puts_the_transcript_back() {
        let t = with_root("crl-fail", &[]);
        let before = transcript(&t);
        let a = t
            .cmd_no_token()
            .args(["key-ceremony", "crl", "--out", "root-1.crl"])
            .env("FAILPOINTS", format!("{POINT}=return(error)"))
            .assert()
            .failure();
        one_line_error(&a, "injected failure");
        assert!(!t.path("root-1.crl").exists());
        assert_eq!(transcript(&t), before);
        crl(&t, &["--out", "root-1.crl"]).success();
        let text = crl_text(&t, "root-1.crl", "PEM");
        assert_eq!(after(&text, "X509v3 CRL Number:"), "1", "{text}");
    }
}
