//! `key-ceremony`: the four steps on a real SoftHSM2 token, the root certificate as openssl sees
//! it, refusals (existing root key, existing outputs), config validation before the token is
//! touched, `--dry-run`, and `verify-transcript` with tamper detection.
mod common;

use std::path::Path;

use common::{one_line_error, stderr_of, stdout_of, TestToken};

fn openssl(t: &TestToken, args: &[&str]) -> (bool, String) {
    let out = t.tool("openssl").args(args).output().expect("openssl");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn ceremony(t: &TestToken, extra: &[&str]) -> String {
    let a = t
        .cmd_no_token()
        .arg("key-ceremony")
        .args(extra)
        .assert()
        .success();
    stdout_of(&a)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn bogus_module_cmd(t: &TestToken) -> assert_cmd::Command {
    let mut c = t.cmd_bare();
    c.env("HSM_DEMO_MODULE", t.path("no-such-module.so"));
    c
}

#[test]
fn ceremony_four_steps_and_openssl_accepts_the_root() {
    let t = TestToken::new("final-test");
    let out = ceremony(&t, &[]);
    let mut last = 0;
    for i in 1..=4 {
        let pos = out
            .find(&format!("[Step {i}/4]"))
            .unwrap_or_else(|| panic!("step {i} missing: {out}"));
        assert!(pos >= last, "steps out of order: {out}");
        last = pos;
    }
    assert!(
        out.contains("Generated ECDSA P-256 key pair, label: root-ca-key"),
        "{out}"
    );
    let root = t.path("ceremony/root.pem");
    let transcript = t.path("ceremony/transcript.jsonl");
    assert!(root.exists() && transcript.exists(), "{out}");

    let r = root.to_str().unwrap();
    let (ok, v) = openssl(&t, &["verify", "-CAfile", r, r]);
    assert!(ok && v.contains(": OK"), "{v}");
    let (ok, text) = openssl(&t, &["x509", "-in", r, "-noout", "-text"]);
    assert!(ok, "{text}");
    for want in [
        "X509v3 Basic Constraints: critical",
        "CA:TRUE, pathlen:2",
        "X509v3 Key Usage: critical",
        "Certificate Sign, CRL Sign",
        "X509v3 Subject Key Identifier",
        "Signature Algorithm: ecdsa-with-SHA256",
        "Subject: O = hsm-demo, CN = hsm-demo Root CA",
        "Issuer: O = hsm-demo, CN = hsm-demo Root CA",
        "ASN1 OID: prime256v1",
    ] {
        assert!(text.contains(want), "'{want}' missing: {text}");
    }
    // The printed fingerprint and validity are the certificate's.
    let (_, fp) = openssl(&t, &["x509", "-in", r, "-noout", "-fingerprint", "-sha256"]);
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    assert!(
        out.contains(&format!("SHA-256 fingerprint: {fp}")),
        "{fp} / {out}"
    );
    let (_, dates) = openssl(&t, &["x509", "-in", r, "-noout", "-startdate", "-enddate"]);
    let year = |prefix: &str| -> i32 {
        let l = dates.lines().find(|l| l.starts_with(prefix)).unwrap();
        l.split_whitespace().nth(3).unwrap().parse().unwrap()
    };
    assert_eq!(year("notAfter=") - year("notBefore="), 20, "{dates}");
    assert!(out.contains("(20 years)"), "{out}");
    // Serial: 20 bytes, positive.
    let (_, serial) = openssl(&t, &["x509", "-in", r, "-noout", "-serial"]);
    let hexs = serial.trim().trim_start_matches("serial=");
    assert_eq!(hexs.len(), 40, "{serial}");
    assert!(
        u8::from_str_radix(&hexs[..2], 16).unwrap() < 0x80,
        "{serial}"
    );

    // The key really is sensitive and never extractable in the token.
    let po = t
        .tool("pkcs11-tool")
        .arg("--module")
        .arg(t.kind.module_path())
        .args([
            "--login",
            "--pin",
            &t.pin,
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .unwrap();
    let objs = String::from_utf8_lossy(&po.stdout);
    assert!(objs.contains("label:      root-ca-key"), "{objs}");
    assert!(objs.contains("sensitive"), "{objs}");
    assert!(objs.contains("never extractable"), "{objs}");

    // The transcript verifies against the root.
    let a = t
        .cmd_bare()
        .args(["key-ceremony", "verify-transcript"])
        .arg(&transcript)
        .arg("--cert")
        .arg(&root)
        .assert()
        .success();
    let v = stdout_of(&a);
    assert!(
        v.starts_with("Transcript OK: 6 entries, 1 seal(s) by 'root-ca-key'"),
        "{v}"
    );
}

#[test]
fn p384_root() {
    let t = TestToken::new("p384");
    let out = ceremony(
        &t,
        &["--curve", "p384", "--validity", "3650d", "--path-len", "1"],
    );
    assert!(
        out.contains("Generated ECDSA P-384 key pair, label: root-ca-key"),
        "{out}"
    );
    let r = t.path("ceremony/root.pem");
    let r = r.to_str().unwrap();
    let (ok, v) = openssl(&t, &["verify", "-CAfile", r, r]);
    assert!(ok, "{v}");
    let (_, text) = openssl(&t, &["x509", "-in", r, "-noout", "-text"]);
    assert!(text.contains("ecdsa-with-SHA384"), "{text}");
    assert!(text.contains("ASN1 OID: secp384r1"), "{text}");
    assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
}

#[test]
fn refuses_an_existing_root_key_and_writes_nothing() {
    let t = TestToken::new("twice");
    ceremony(&t, &[]);
    let before = read(&t.path("ceremony/root.pem"));
    let a = t
        .cmd_no_token()
        .args(["key-ceremony", "--out-dir", "second"])
        .assert()
        .code(1);
    one_line_error(
        &a,
        "a key labelled 'root-ca-key' already exists on token 'twice'",
    );
    assert!(!t.path("second").exists(), "nothing may be written");
    assert_eq!(read(&t.path("ceremony/root.pem")), before);
    // Still exactly one root key: the look-up finds one (several would be ambiguous) and
    // refuses it as the ceremony's.
    let a = t
        .cmd()
        .args(["sign", "--label", "root-ca-key", "--data", "x"])
        .assert()
        .code(1);
    one_line_error(&a, "key 'root-ca-key' is a key-ceremony key");
}

#[test]
fn refuses_existing_outputs_before_touching_the_token() {
    let t = TestToken::new("outputs");
    std::fs::create_dir(t.path("ceremony")).unwrap();
    std::fs::write(t.path("ceremony/transcript.jsonl"), "keep me\n").unwrap();
    let a = t.cmd_no_token().arg("key-ceremony").assert().code(2);
    one_line_error(&a, "ceremony/transcript.jsonl already exists");
    assert_eq!(read(&t.path("ceremony/transcript.jsonl")), "keep me\n");
    assert!(!t.path("ceremony/root.pem").exists());
    // No key was generated: after removing the file the ceremony runs.
    std::fs::remove_file(t.path("ceremony/transcript.jsonl")).unwrap();
    ceremony(&t, &[]);
}

const GOOD_CONFIG: &str = r#"
operators = ["alice", "bob"]

[key]
label = "corp-root"
curve = "p384"

[subject]
common_name = "Example Root CA"
organization = "Example Ltd"
organizational_unit = "PKI"
country = "DE"

[certificate]
validity = "25y"
path_len = 2

[output]
dir = "out"
root_cert = "corp-root.pem"
transcript = "corp-root.jsonl"
"#;

#[test]
fn config_file_drives_the_ceremony() {
    let t = TestToken::new("cfg");
    std::fs::write(t.path("ceremony.toml"), GOOD_CONFIG).unwrap();
    let out = ceremony(&t, &["--config", "ceremony.toml"]);
    assert!(
        out.contains("operators:    alice, bob (dual control)"),
        "{out}"
    );
    assert!(out.contains("(25 years)"), "{out}");
    let r = t.path("out/corp-root.pem");
    let r = r.to_str().unwrap();
    let (ok, v) = openssl(&t, &["verify", "-CAfile", r, r]);
    assert!(ok, "{v}");
    let (_, text) = openssl(&t, &["x509", "-in", r, "-noout", "-text"]);
    assert!(
        text.contains("Subject: C = DE, O = Example Ltd, OU = PKI, CN = Example Root CA"),
        "{text}"
    );
    assert!(text.contains("CA:TRUE, pathlen:2"), "{text}");
    assert!(text.contains("secp384r1"), "{text}");
    let tr = read(&t.path("out/corp-root.jsonl"));
    assert!(
        tr.lines()
            .next()
            .unwrap()
            .contains(r#""operators":["alice","bob"]"#),
        "{tr}"
    );
    assert!(tr.contains(r#""label":"corp-root""#), "{tr}");
}

/// Each bad config: one-line error naming the problem, and the (bogus) module is never loaded
/// (a loaded module would fail with "cannot load PKCS#11 module" instead), nothing written.
#[test]
fn invalid_configs_are_rejected_before_the_token_is_touched() {
    let t = TestToken::new("badcfg");
    let base = GOOD_CONFIG;
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown key", base.replace("curve = \"p384\"", "curve = \"p384\"\nextractable = true"), "unknown field `extractable`"),
        ("toml syntax", base.replace("[subject]", "[subject"), "invalid ceremony config"),
        ("one operator", base.replace("[\"alice\", \"bob\"]", "[\"alice\"]"), "operators: 1 named, at least 2 required (dual control)"),
        ("duplicate operator", base.replace("[\"alice\", \"bob\"]", "[\"alice\", \"Alice\"]"), "'Alice' is named twice"),
        ("bad curve", base.replace("\"p384\"", "\"p521\""), "key.curve: unsupported curve 'p521'"),
        ("bad country", base.replace("\"DE\"", "\"Germany\""), "subject.country: 'Germany' is not two upper-case letters"),
        ("negative pathLen", base.replace("path_len = 2", "path_len = -1"), "certificate.path_len: -1 is outside"),
        ("bad validity", base.replace("\"25y\"", "\"forever\""), "certificate.validity: validity 'forever' is not of the form"),
        ("too long", base.replace("\"25y\"", "\"99y\""), "longer than 50 years"),
        ("empty CN", base.replace("\"Example Root CA\"", "\"  \""), "subject.common_name must not be empty"),
        ("missing subject", base.replace("[subject]\ncommon_name = \"Example Root CA\"\norganization = \"Example Ltd\"\norganizational_unit = \"PKI\"\ncountry = \"DE\"\n", ""), "missing field `subject`"),
        ("empty label", base.replace("label = \"corp-root\"", "label = \"\""), "key.label must not be empty"),
        ("same file twice", base.replace("\"corp-root.jsonl\"", "\"corp-root.pem\""), "are the same file"),
    ];
    for (name, body, want) in &cases {
        std::fs::write(t.path("bad.toml"), body).unwrap();
        let a = bogus_module_cmd(&t)
            .env("HSM_DEMO_PIN", &t.pin)
            .args(["key-ceremony", "--config", "bad.toml"])
            .assert()
            .code(2);
        let e = one_line_error(&a, want);
        assert!(!e.contains("PKCS#11 module"), "{name}: module touched: {e}");
        assert!(!t.path("out").exists(), "{name}: output written");
    }
    // Several problems at once: all reported on one line.
    let body = base
        .replace("[\"alice\", \"bob\"]", "[\"alice\"]")
        .replace("\"p384\"", "\"ed25519\"")
        .replace("path_len = 2", "path_len = 99");
    std::fs::write(t.path("bad.toml"), body).unwrap();
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "--config", "bad.toml"])
        .assert()
        .code(2);
    let e = one_line_error(&a, "3 problems");
    for want in ["operators:", "key.curve:", "certificate.path_len:"] {
        assert!(e.contains(want), "{e}");
    }
    // A missing config file.
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "--config", "nope.toml"])
        .assert()
        .code(1);
    one_line_error(&a, "cannot read ceremony config nope.toml");
    // Flags are validated the same way.
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "--curve", "p521", "--validity", "0y"])
        .assert()
        .code(2);
    one_line_error(&a, "2 problems");
    assert_eq!(t.scratch_files(), vec!["bad.toml".to_string()]);
}

#[test]
fn dry_run_touches_nothing() {
    let t = TestToken::new("dry");
    // Control: without --dry-run the bogus module is noticed.
    let a = bogus_module_cmd(&t)
        .env("HSM_DEMO_PIN", &t.pin)
        .arg("key-ceremony")
        .assert()
        .code(1);
    let e = stderr_of(&a);
    assert!(e.contains("no-such-module.so"), "{e}");
    assert!(t.scratch_files().is_empty(), "{:?}", t.scratch_files());

    // --dry-run: no module, no PIN, nothing written.
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "--dry-run"])
        .assert()
        .success();
    let out = stdout_of(&a);
    assert!(out.starts_with("Key ceremony plan (dry run"), "{out}");
    assert!(out.contains("label 'root-ca-key', ECDSA P-256"), "{out}");
    assert!(out.contains("CA:TRUE pathLen 2"), "{out}");
    assert!(out.contains("validity 20 years"), "{out}");
    assert!(!out.contains("[Step"), "{out}");
    std::fs::write(t.path("c.toml"), GOOD_CONFIG).unwrap();
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "--config", "c.toml", "--dry-run"])
        .assert()
        .success();
    let out = stdout_of(&a);
    assert!(
        out.contains("operators:    alice, bob (dual control)"),
        "{out}"
    );
    assert!(out.contains("out/corp-root.pem"), "{out}");
    assert_eq!(t.scratch_files(), vec!["c.toml".to_string()]);
    // And the token has no key: a real ceremony still works.
    ceremony(&t, &[]);
}

fn verify_cmd(t: &TestToken, file: &Path, cert: Option<&Path>) -> assert_cmd::assert::Assert {
    let mut c = bogus_module_cmd(t);
    c.args(["key-ceremony", "verify-transcript"]).arg(file);
    if let Some(c2) = cert {
        c.arg("--cert").arg(c2);
    }
    c.assert()
}

/// The transcript `orig` (its `lines`) changed in every way verification must catch: (what,
/// the changed text, the error expected).
fn tampered_transcripts(orig: &str, lines: &[&str]) -> Vec<(&'static str, String, &'static str)> {
    let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let changed = orig.replace(
        "\"mechanism\":\"CKM_EC_KEY_PAIR_GEN\"",
        "\"mechanism\":\"CKM_RSA_PKCS\"",
    );
    assert_ne!(changed, orig);
    let mut reordered = lines.to_vec();
    reordered.swap(1, 2);
    let appended = {
        let prev = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(lines[5].as_bytes()));
        format!(
            "{orig}{{\"seq\":6,\"time\":\"2026-01-01T00:00:00Z\",\"step\":\"note\",\"details\":{{}},\"prev\":\"{prev}\"}}\n"
        )
    };
    let changed_seal_time = {
        let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let v: serde_json::Value = serde_json::from_str(&ls[5]).unwrap();
        let tm = v["time"].as_str().unwrap().to_string();
        ls[5] = ls[5].replace(&tm, "2030-01-01T00:00:00Z");
        ls.iter().map(|l| format!("{l}\n")).collect::<String>()
    };
    vec![
        (
            "changed entry",
            changed,
            "line 4 (root-certificate): prev does not match",
        ),
        (
            "removed entry",
            join(&[lines[0], lines[2], lines[3], lines[4], lines[5]]),
            "seq is 2 where 1 was expected",
        ),
        (
            "reordered entries",
            join(&reordered),
            "seq is 2 where 1 was expected",
        ),
        (
            "appended entry",
            appended,
            "transcript lines 7..7 come after the last seal",
        ),
        (
            "removed seal",
            join(&lines[..5]),
            "the transcript has no seal",
        ),
        (
            "changed seal time",
            changed_seal_time,
            "line 6: the seal signature does not verify",
        ),
        (
            "truncated line",
            orig[..orig.len() - 10].to_string(),
            "does not end with a newline",
        ),
    ]
}

#[test]
fn transcript_verifies_and_detects_tampering() {
    let t = TestToken::new("tamper");
    ceremony(&t, &[]);
    let root = t.path("ceremony/root.pem");
    let orig = read(&t.path("ceremony/transcript.jsonl"));
    let lines: Vec<&str> = orig.lines().collect();
    assert_eq!(lines.len(), 6);
    // Structure: seq, prev chain, seal last.
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["seq"], i as u64);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
    let last: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(last["step"], "seal");
    assert_eq!(last["details"]["algorithm"], "ecdsa-with-SHA256");

    // Intact (no module is needed: the bogus one is never loaded).
    let f = t.path("t.jsonl");
    std::fs::write(&f, &orig).unwrap();
    let a = verify_cmd(&t, &f, Some(&root)).success();
    let out = stdout_of(&a);
    assert!(
        out.starts_with("Transcript OK: 6 entries, 1 seal(s)"),
        "{out}"
    );
    let head = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("head:"))
        .unwrap()
        .trim()
        .to_string();
    verify_cmd(&t, &f, None).success();
    bogus_module_cmd(&t)
        .args(["key-ceremony", "verify-transcript"])
        .arg(&f)
        .args(["--expect-head", &head])
        .assert()
        .success();

    let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let cases = tampered_transcripts(&orig, &lines);
    for (name, body, want) in &cases {
        std::fs::write(&f, body).unwrap();
        for cert in [Some(root.as_path()), None] {
            let a = verify_cmd(&t, &f, cert).code(1);
            let e = stderr_of(&a);
            assert!(
                e.lines().count() == 1 && e.contains(want),
                "{name} (cert {cert:?}): '{want}' expected in {e}"
            );
        }
    }
    // Renumbering after a removal still breaks the chain.
    let renumbered = join(&[lines[0], lines[2]]).replace("\"seq\":2", "\"seq\":1");
    std::fs::write(&f, renumbered).unwrap();
    let a = verify_cmd(&t, &f, Some(&root)).code(1);
    assert!(stderr_of(&a).contains("prev does not match the hash of line 1"));

    // Another root's certificate is rejected.
    let t2 = TestToken::new("other");
    ceremony(&t2, &[]);
    std::fs::write(&f, &orig).unwrap();
    // An intact transcript with another root's certificate says so: it is not tampering.
    let a = verify_cmd(&t, &f, Some(&t2.path("ceremony/root.pem"))).code(1);
    let e = one_line_error(
        &a,
        "is another root's certificate: the transcript is intact",
    );
    assert!(!e.contains("does not verify"), "{e}");
    // A tampered transcript with another root's certificate still reads as tampering.
    std::fs::write(&f, &cases[0].1).unwrap();
    let a = verify_cmd(&t, &f, Some(&t2.path("ceremony/root.pem"))).code(1);
    one_line_error(&a, "prev does not match");
    std::fs::write(&f, &orig).unwrap();

    // A transcript cut back to an earlier seal is caught by --expect-head.
    let a = bogus_module_cmd(&t)
        .args(["key-ceremony", "verify-transcript"])
        .arg(&f)
        .args(["--expect-head", &"0".repeat(64)])
        .assert()
        .code(1);
    one_line_error(&a, "entries were removed from (or added to) its end");
}

#[test]
fn help_has_examples() {
    let t = TestToken::new("help");
    for args in [
        vec!["key-ceremony", "--help"],
        vec!["key-ceremony", "verify-transcript", "--help"],
        vec!["key-ceremony", "sign-intermediate", "--help"],
    ] {
        let a = t.cmd_bare().args(&args).assert().success();
        let out = stdout_of(&a);
        let ex = out
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?}: {out}"));
        assert!(ex.contains("hsm-demo key-ceremony"), "{args:?}: {out}");
    }
}
