//! Bad input: each case gives ONE line `error: …` on stderr, exit code 1, nothing on stdout,
//! no file written and no object created on the token.
mod common;

use common::{stdout_of, ModuleKind, TestToken};

/// A token with one key `k` (id 01) and a message file, ready for bad-input cases.
fn setup(kind: ModuleKind) -> TestToken {
    let t = TestToken::with_kind(kind, "bad");
    t.cmd()
        .args(["generate-key", "--label", "k", "--id", "01"])
        .assert()
        .success();
    std::fs::write(t.path("msg.txt"), b"hello").unwrap();
    t
}

fn object_count(t: &TestToken) -> usize {
    let a = t
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["objects"].as_array())
        .map(|o| o.len())
        .sum()
}

/// The cases that are usage errors — a bad flag value or a bad file given to the command — exit
/// 2; every other case is a failure of the command that ran (key look-up, module, PIN, token,
/// signature) and exits 1.
const USAGE: &[&str] = &[
    "--sig is not valid hex",
    "odd number of hex digits",
    "expected 64 bytes raw r||s or a DER",
    "not a valid DER",
    "the message is empty",
    "unsupported curve",
    "--id has an odd number of hex digits",
    "invalid PKCS#11 URI",
    "pin-value is not accepted",
    "sig.der already exists",
    "line 2 of the batch file is empty",
    "not a PEM SubjectPublicKeyInfo",
    "no key selected",
];

/// Runs `cmd`, asserts the bad-input contract, returns the error line.
fn assert_bad(t: &TestToken, mut cmd: assert_cmd::Command, needle: &str) -> String {
    let files_before = t.scratch_files();
    let objects_before = object_count(t);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let usage = USAGE.iter().any(|u| needle.contains(u));
    assert_eq!(
        out.status.code(),
        Some(if usage { 2 } else { 1 }),
        "exit code for '{needle}': {stderr}"
    );
    // A command-line error (clap's) adds one `--help` hint line.
    let stderr = match stderr.split_once("\nFor more information, try '") {
        Some((first, _)) if usage => format!("{first}\n"),
        _ => stderr,
    };
    assert!(
        out.stdout.is_empty(),
        "stdout not empty: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert_eq!(
        t.scratch_files(),
        files_before,
        "files written by a failed command"
    );
    assert_eq!(
        object_count(t),
        objects_before,
        "objects created by a failed command"
    );
    stderr
}

fn verify_cmd(t: &TestToken, sig: &str) -> assert_cmd::Command {
    let mut c = t.cmd();
    c.args(["verify", "--label", "k", "--data", "hello", "--sig", sig]);
    c
}

#[test]
fn bad_inputs() {
    for kind in ModuleKind::enabled() {
        let t = setup(kind);
        let good = {
            let a = t
                .cmd()
                .args(["sign", "--label", "k", "--data", "hello"])
                .assert()
                .success();
            stdout_of(&a)
                .trim()
                .strip_prefix("Signature: ")
                .unwrap()
                .to_string()
        };
        let mut n = 0;
        let mut case = |cmd: assert_cmd::Command, needle: &str| -> String {
            n += 1;
            assert_bad(&t, cmd, needle)
        };
        signature_lookup_and_module_cases(&t, &good, &mut case);
        pin_input_and_key_cases(&t, &mut case);

        // 21. malformed URI
        let mut c = t.cmd();
        c.args(["sign", "--uri", "pkcs11:object=k;colour=red", "--data", "x"]);
        case(c, "invalid PKCS#11 URI: unknown path attribute 'colour'");
        // 22. PIN in a URI refused (and not echoed)
        let mut c = t.cmd();
        c.args([
            "sign",
            "--uri",
            "pkcs11:object=k?pin-value=123456",
            "--data",
            "x",
        ]);
        let line = case(c, "pin-value is not accepted");
        assert!(!line.contains("123456"), "{line}");
        // 23. unknown token label
        let mut c = t.cmd();
        c.env("HSM_DEMO_TOKEN", "nosuch")
            .args(["sign", "--label", "k", "--data", "x"]);
        case(c, "no initialised token with label or serial 'nosuch'");
        // 24. --out to an existing file is refused and the file is untouched
        std::fs::write(t.path("sig.der"), b"keep").unwrap();
        let mut c = t.cmd();
        c.args([
            "sign", "--label", "k", "--id", "01", "--data", "x", "--format", "raw", "--out",
            "sig.der",
        ]);
        case(c, "sig.der already exists");
        assert_eq!(std::fs::read(t.path("sig.der")).unwrap(), b"keep");
        // 25. batch file with an empty line: nothing signed, nothing printed
        std::fs::write(t.path("batch.txt"), "a\n\nb\n").unwrap();
        let mut c = t.cmd();
        c.args(["sign", "--label", "k", "--id", "01", "--batch", "batch.txt"]);
        case(c, "line 2 of the batch file is empty");
        // 26. --pubkey file that is not a PEM public key
        let mut c = t.cmd();
        c.args([
            "verify", "--pubkey", "msg.txt", "--data", "hello", "--sig", &good,
        ]);
        case(c, "not a PEM SubjectPublicKeyInfo");
        // 27. no key selected
        let mut c = t.cmd();
        c.args(["sign", "--data", "x"]);
        case(c, "no key selected: give --label, --id or --uri");

        assert!(n >= 25, "only {n} cases ran");
    }
}

/// A bad-input case: runs the command and asserts the contract ([`assert_bad`]); returns the line.
type Case<'a> = dyn FnMut(assert_cmd::Command, &str) -> String + 'a;

/// Cases 1-10: signatures, key look-up, module loading.
fn signature_lookup_and_module_cases(t: &TestToken, good: &str, case: &mut Case<'_>) {
    // 1. malformed hex
    case(
        verify_cmd(t, "30zz"),
        "--sig is not valid hex: 'z' at position 3",
    );
    // 2. odd-length hex
    case(
        verify_cmd(t, &good[..good.len() - 1]),
        "odd number of hex digits",
    );
    // 3. a signature of the wrong length (neither raw r||s nor DER)
    case(
        verify_cmd(t, "0102030405"),
        "expected 64 bytes raw r||s or a DER",
    );
    // 4. a DER-looking signature that is not valid DER
    case(
        verify_cmd(t, &format!("30{}", &good[2..good.len() - 2])),
        "not a valid DER",
    );
    // 5. a valid signature for other data
    let mut c = t.cmd();
    c.args(["verify", "--label", "k", "--data", "hellO", "--sig", good]);
    case(c, "signature verification failed");
    // 6. unknown label
    let mut c = t.cmd();
    c.args(["sign", "--label", "nope", "--data", "hello"]);
    case(c, "no private key with label 'nope' found on token 'bad'");
    // 7. ambiguous label
    t.cmd()
        .args([
            "generate-key",
            "--label",
            "k",
            "--id",
            "02",
            "--allow-duplicate-label",
        ])
        .assert()
        .success();
    let mut c = t.cmd();
    c.args(["sign", "--label", "k", "--data", "hello"]);
    case(c, "2 objects match private key with label 'k'");
    // 8. missing module path
    let mut c = t.cmd();
    c.args(["--module", "/nonexistent/libpkcs11.so", "list-slots"]);
    case(
        c,
        "cannot load PKCS#11 module /nonexistent/libpkcs11.so: no such file",
    );
    // 9. a library that is not a PKCS#11 module
    let not_p11 = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(p) = not_p11 {
        let mut c = t.cmd();
        c.args(["--module", p, "list-slots"]);
        case(c, "is not a PKCS#11 module: it has no C_GetFunctionList");
    }
    // 10. a file that is not a shared library at all
    let mut c = t.cmd();
    c.args(["--module", "msg.txt", "list-slots"]);
    case(c, "cannot load PKCS#11 module msg.txt");
}

/// Cases 11-20: PINs, messages, input files, curves, labels, ids.
fn pin_input_and_key_cases(t: &TestToken, case: &mut Case<'_>) {
    // 11. wrong PIN
    let mut c = t.cmd();
    c.env("HSM_DEMO_PIN", "999999")
        .args(["sign", "--label", "k", "--id", "01", "--data", "x"]);
    case(
        c,
        "C_Login failed: CKR_PIN_INCORRECT: wrong user PIN for token 'bad'",
    );
    // 12. empty message
    let mut c = t.cmd();
    c.args(["sign", "--label", "k", "--id", "01", "--data", ""]);
    case(c, "the message is empty");
    // 13. empty message on stdin
    let mut c = t.cmd();
    c.args(["sign", "--label", "k", "--id", "01"])
        .write_stdin("");
    case(c, "the message is empty");
    // 14. missing input file
    let mut c = t.cmd();
    c.args(["sign", "--label", "k", "--id", "01", "--in", "no-such-file"]);
    case(c, "cannot read input file no-such-file");
    // 15. unsupported curve
    let mut c = t.cmd();
    c.args(["generate-key", "--label", "c", "--curve", "p521"]);
    case(c, "unsupported curve 'p521': use p256 or p384");
    // 16. existing label refused, nothing created
    let mut c = t.cmd();
    c.args(["generate-key", "--label", "k"]);
    case(c, "a key with label 'k' already exists on token 'bad'");
    // 17. malformed --id
    let mut c = t.cmd();
    c.args(["generate-key", "--label", "n", "--id", "abc"]);
    case(c, "--id has an odd number of hex digits");
    // 18. no PIN anywhere (no env, no file, no terminal)
    let mut c = t.cmd();
    c.env_remove("HSM_DEMO_PIN")
        .args(["sign", "--label", "k", "--id", "01", "--data", "x"]);
    case(
        c,
        "no PIN for token 'bad': set HSM_DEMO_PIN, pass --pin-file FILE",
    );
    // 19. empty PIN file
    std::fs::write(t.path("empty.pin"), "").unwrap();
    let mut c = t.cmd();
    c.env_remove("HSM_DEMO_PIN").args([
        "--pin-file",
        "empty.pin",
        "sign",
        "--label",
        "k",
        "--id",
        "01",
        "--data",
        "x",
    ]);
    case(c, "PIN file empty.pin is empty");
    // 20. missing PIN file
    let mut c = t.cmd();
    c.env_remove("HSM_DEMO_PIN").args([
        "--pin-file",
        "nope.pin",
        "sign",
        "--label",
        "k",
        "--id",
        "01",
        "--data",
        "x",
    ]);
    case(c, "cannot read PIN file nope.pin");
}

#[test]
fn uninitialised_token_and_pin_states() {
    for kind in ModuleKind::enabled() {
        // No initialised token at all.
        let t = TestToken::empty(kind);
        let out = t
            .cmd_no_token()
            .args(["generate-key", "--label", "k"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("error: no initialised token in "), "{e}");
        let init_tool = match kind {
            ModuleKind::SoftHsm => "softhsm2-util --init-token",
            ModuleKind::Kryoptic => "pkcs11-tool --module ",
        };
        assert!(e.contains(init_tool), "{e}");
        assert!(out.stdout.is_empty());
        // list-slots still works and says the slot is not initialised.
        let a = t.cmd_no_token().arg("list-slots").assert().success();
        assert!(stdout_of(&a).contains("initialized:     no"));

        // A token whose user PIN was never set.
        t.init_token_without_user_pin("nopin");
        let out = t
            .cmd_no_token()
            .args(["sign", "--label", "k", "--data", "x"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("error: C_Login failed: CKR_USER_PIN_NOT_INITIALIZED: token 'nopin' has no user PIN yet"),
            "{e}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let t = TestToken::new("usage");
    // clap usage errors: exit 2 (no --pin flag exists at all: PINs never go in argv).
    for args in [
        vec!["sign", "--pin", "123456", "--label", "k"],
        vec!["generate-key"],
        vec!["verify", "--label", "k", "--data", "x"],
        vec!["sign", "--label", "k", "--data", "x", "--in", "f"],
    ] {
        let out = t.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}
