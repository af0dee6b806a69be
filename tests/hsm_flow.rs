//! The spec's integration test ("Key Lifecycle"), run verbatim through bash against a fresh
//! SoftHSM2 token in a temp dir: `cargo run -- X` is the hsm-demo binary with arguments X.
mod common;

use common::{stderr_of, stdout_of, ModuleKind, TestToken};

/// The spec's flow, character for character after the token init line (which the fixture runs
/// with the same label and PINs).
const SPEC_FLOW: &str = r#"
cargo run -- list-slots
# Expected: slot 0, label "final-test", initialized

cargo run -- key-ceremony
# Expected: [Step 1-4] output; root-ca-key generated

cargo run -- generate-key --label service-key
# Expected: "Generated ECDSA P-256 key pair, label: service-key"

SIG=$(cargo run -- sign --label service-key --data "hello cert world" | grep "Signature:" | awk '{print $2}')
cargo run -- verify --label service-key --data "hello cert world" --sig $SIG
# Expected: "Signature verified OK"

cargo run -- verify --label service-key --data "tampered data" --sig $SIG
# Expected: error (signature verification failed)
"#;

fn bash_flow(t: &TestToken, body: &str) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("hsm-demo");
    // `cargo run -- ARGS` → the built binary with ARGS (markers echo each step for the asserts).
    let script = format!(
        "cargo() {{ [ \"$1\" = run ] && [ \"$2\" = -- ] || return 99; shift 2; echo \"### $*\"; \"{}\" \"$@\"; echo \"### rc=$?\"; }}\n{body}",
        bin.display()
    );
    t.tool("bash")
        .arg("-c")
        .arg(script)
        .env("HSM_DEMO_PIN", &t.pin)
        .env("HSM_DEMO_MODULE", t.kind.module_path())
        .env_remove("HSM_DEMO_TOKEN")
        .output()
        .expect("bash")
}

/// The spec flow verbatim, including key-ceremony.
#[test]
fn spec_integration_flow_verbatim() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "final-test");
        let out = bash_flow(&t, SPEC_FLOW);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("[{}]\nstdout:\n{stdout}\nstderr:\n{stderr}", kind.name());
        let steps: Vec<&str> = stdout.split("### ").skip(1).collect();
        assert_eq!(steps.len(), 10, "5 commands (+ rc markers) expected: {ctx}");

        // list-slots: slot 0, label "final-test", initialized
        let ls = steps[0];
        assert!(ls.contains("Slot 0 "), "{ctx}");
        assert!(ls.contains("label:           final-test"), "{ctx}");
        assert!(ls.contains("initialized:     yes"), "{ctx}");
        assert_eq!(steps[1].trim(), "rc=0", "{ctx}");

        // key-ceremony: [Step 1/4] … [Step 4/4], root-ca-key generated
        let kc = steps[2];
        for i in 1..=4 {
            assert!(
                kc.contains(&format!("[Step {i}/4]")),
                "step {i} missing: {ctx}"
            );
        }
        assert!(kc.contains("root-ca-key"), "{ctx}");
        assert_eq!(steps[3].trim(), "rc=0", "{ctx}");

        // generate-key
        assert_eq!(
            steps[4].lines().nth(1).unwrap_or(""),
            "Generated ECDSA P-256 key pair, label: service-key",
            "{ctx}"
        );
        assert_eq!(steps[5].trim(), "rc=0", "{ctx}");

        // sign (in $(…), so only its markers are swallowed) → verify OK
        assert!(
            steps[6].starts_with("verify --label service-key --data hello cert world --sig 30"),
            "{ctx}"
        );
        assert!(steps[6].contains("\nSignature verified OK\n"), "{ctx}");
        assert_eq!(steps[7].trim(), "rc=0", "{ctx}");

        // tampered → error, non-zero
        assert!(
            steps[8].starts_with("verify --label service-key --data tampered data"),
            "{ctx}"
        );
        assert_eq!(steps[9].trim(), "rc=1", "{ctx}");
        assert!(
            stderr.contains("error: signature verification failed"),
            "{ctx}"
        );
    }
}

/// The same flow without the key-ceremony step, driven command by command.
#[test]
fn key_lifecycle_without_ceremony() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "final-test");
        let a = t.cmd_no_token().arg("list-slots").assert().success();
        let ls = stdout_of(&a);
        assert!(ls.contains("Slot 0 "), "{ls}");
        assert!(ls.contains("label:           final-test"), "{ls}");

        let a = t
            .cmd_no_token()
            .args(["generate-key", "--label", "service-key"])
            .assert()
            .success();
        assert_eq!(
            stdout_of(&a),
            "Generated ECDSA P-256 key pair, label: service-key\n"
        );

        let a = t
            .cmd_no_token()
            .args([
                "sign",
                "--label",
                "service-key",
                "--data",
                "hello cert world",
            ])
            .assert()
            .success();
        let out = stdout_of(&a);
        let sig = out
            .lines()
            .find(|l| l.starts_with("Signature:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no Signature: line in {out}"))
            .to_string();
        assert!(sig.starts_with("30"), "DER SEQUENCE expected: {sig}");

        let a = t
            .cmd_no_token()
            .args([
                "verify",
                "--label",
                "service-key",
                "--data",
                "hello cert world",
                "--sig",
                &sig,
            ])
            .assert()
            .success();
        assert_eq!(stdout_of(&a), "Signature verified OK\n");

        let a = t
            .cmd_no_token()
            .args([
                "verify",
                "--label",
                "service-key",
                "--data",
                "tampered data",
                "--sig",
                &sig,
            ])
            .assert()
            .code(1);
        assert_eq!(stderr_of(&a), "error: signature verification failed\n");
        assert_eq!(stdout_of(&a), "");
    }
}
