//! The PIN never appears in any output: stdout and stderr at the default level, -v, -vv,
//! RUST_LOG=trace and --json, nor in any file a command writes (certificates, CSRs, signatures,
//! the ceremony's root, intermediate and transcript, the registry's files), for generate-key,
//! sign, provision (one device and a manifest), pca csr, pca issue, key-ceremony and key-ceremony sign-intermediate, on every
//! module of `HSM_DEMO_TEST_MODULES`. The PIN is distinctive, and is also looked for hex- and
//! base64-encoded, so a match cannot be a coincidence and an encoded leak is still found.

mod common;
mod pca_support;

use std::path::Path;
use std::process::Output;

use base64::Engine;
use common::{ModuleKind, TestToken};
use pca_support::PcaEnv;

const PIN: &str = "Kq8vT3mZw1";

/// The PIN as it could leak: plain, hex (both cases) and base64.
fn forms() -> Vec<String> {
    vec![
        PIN.to_string(),
        hex::encode(PIN),
        hex::encode_upper(PIN),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(PIN),
    ]
}

/// A token on `kind` whose user PIN is [`PIN`].
fn secret_token(kind: ModuleKind, label: &str) -> TestToken {
    let mut t = TestToken::empty(kind);
    t.init_token(label, PIN, "so-pin-12345");
    t.label = label.into();
    t.pin = PIN.into();
    t
}

/// (name, global flags, RUST_LOG) of the output levels every command runs at.
const LEVELS: [(&str, &[&str], Option<&str>); 5] = [
    ("default", &[], None),
    ("-v", &["-v"], None),
    ("-vv", &["-vv"], None),
    // RUST_LOG applies once -v turns logging on: every crate (the AWS SDK too) at trace.
    ("RUST_LOG=trace", &["-v"], Some("trace")),
    ("json", &["--json"], None),
];

/// Runs `cmd` at `level`, asserts it succeeded and that neither stream holds the PIN; at the
/// verbose levels, asserts something was logged (so the check is not vacuous).
fn run_clean(mut cmd: assert_cmd::Command, level: &(&str, &[&str], Option<&str>), args: &[&str]) {
    let (name, flags, rust_log) = level;
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    let out: Output = cmd.args(*flags).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} at {name}: {stdout}{stderr}");
    for f in forms() {
        assert!(
            !stdout.contains(&f),
            "PIN ({f}) on stdout of {args:?} at {name}: {stdout}"
        );
        assert!(
            !stderr.contains(&f),
            "PIN ({f}) on stderr of {args:?} at {name}: {stderr}"
        );
    }
    if matches!(*name, "-vv" | "RUST_LOG=trace") {
        assert!(
            !stderr.trim().is_empty(),
            "{args:?} at {name} logged nothing"
        );
    }
}

/// Asserts no file under `dir` (the module's own token store and config excepted) holds the PIN;
/// returns how many files were read.
fn files_clean(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "tokens" | "softhsm2.conf" | "kryoptic.conf") {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            n += files_clean(&p);
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for f in forms() {
            assert!(!text.contains(&f), "PIN ({f}) in {}", p.display());
        }
        n += 1;
    }
    n
}

#[test]
fn pin_absent_from_generate_key_sign_and_pca_csr_outputs_and_files() {
    for kind in ModuleKind::enabled() {
        let t = secret_token(kind, "pin-hsm");
        for (i, level) in LEVELS.iter().enumerate() {
            let label = format!("k{i}");
            run_clean(t.cmd(), level, &["generate-key", "--label", &label]);
            run_clean(t.cmd(), level, &["sign", "--label", &label, "--data", "m"]);
            let sig = format!("sig{i}.bin");
            run_clean(
                t.cmd(),
                level,
                &["sign", "--label", &label, "--data", "m", "--out", &sig],
            );
            let csr = format!("k{i}.csr");
            run_clean(
                t.cmd(),
                level,
                &[
                    "pca", "csr", "--label", &label, "--cn", "pin-test", "--out", &csr,
                ],
            );
        }
        assert!(files_clean(t.dir.path()) >= 2 * LEVELS.len());
    }
}

#[test]
fn pin_absent_from_provision_and_pca_issue_outputs_and_files() {
    for kind in ModuleKind::enabled() {
        let env = PcaEnv::with_token(secret_token(kind, "pin-pca"));
        for (i, level) in LEVELS.iter().enumerate() {
            let dev = format!("dev-{i}");
            run_clean(
                env.cmd(),
                level,
                &["provision", "--ca-arn", env.ca(), "--device-id", &dev],
            );
            // A rerun (already done) too: another path through the code.
            run_clean(
                env.cmd(),
                level,
                &["provision", "--ca-arn", env.ca(), "--device-id", &dev],
            );
            // A fleet run (`provision --manifest`): its pool of HSM sessions logs in too.
            let manifest = format!("fleet-{i}.csv");
            std::fs::write(env.path(&manifest), format!("device_id\nfleet-{i}\n")).unwrap();
            run_clean(
                env.cmd(),
                level,
                &["provision", "--ca-arn", env.ca(), "--manifest", &manifest],
            );
            let label = format!("issue-{i}");
            env.token
                .cmd()
                .args(["generate-key", "--label", &label])
                .assert()
                .success();
            let dev = format!("iss-{i}");
            run_clean(
                env.cmd(),
                level,
                &[
                    "pca",
                    "issue",
                    "--ca-arn",
                    env.ca(),
                    "--device-id",
                    &dev,
                    "--label",
                    &label,
                ],
            );
        }
        // Certificates and chains of both commands.
        assert!(files_clean(env.token.dir.path()) >= 4 * LEVELS.len());
        // The registry holds no PIN either.
        for item in env.table_items() {
            for v in item.values() {
                for f in forms() {
                    assert!(!v.contains(&f), "PIN ({f}) in a registry item: {item:?}");
                }
            }
        }
    }
}

#[test]
fn pin_absent_from_key_ceremony_and_sign_intermediate_outputs_and_files() {
    for kind in ModuleKind::enabled() {
        for level in &LEVELS {
            let t = secret_token(kind, "pin-root");
            run_clean(t.cmd_no_token(), level, &["key-ceremony"]);
            let o = t
                .tool("openssl")
                .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-keyout", "inter.key"])
                .args(["-subj", "/O=hsm-demo/CN=pin inter", "-out", "inter.csr"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            run_clean(
                t.cmd_no_token(),
                level,
                &[
                    "key-ceremony",
                    "sign-intermediate",
                    "--csr",
                    "inter.csr",
                    "--out",
                    "inter.pem",
                ],
            );
            let transcript = t.path("ceremony/transcript.jsonl");
            assert!(
                std::fs::read_to_string(&transcript)
                    .unwrap()
                    .lines()
                    .count()
                    > 1
            );
            assert!(t.path("inter.pem").exists() && t.path("ceremony/root.pem").exists());
            assert!(files_clean(t.dir.path()) >= 4);
        }
    }
}
