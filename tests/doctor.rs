//! `hsm-demo doctor` against a real SoftHSM2 token and the stand-in: every link passes when the
//! set-up is whole (and nothing is written: only describe calls reach the stand-in); each broken
//! link — PIN, module, key capacity, table, CA state, endpoint — is the one line marked ✗ with its
//! fix, exit 1; what is not configured is skipped, exit 0; the PIN never appears.

mod common;
mod pca_support;

use assert_cmd::Command;
use common::standin::{self, calls_of};
use common::stdout_of;
use pca_support::PcaEnv;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn enable_pitr(env: &PcaEnv) {
    let ddb = aws_sdk_dynamodb::Client::new(&standin::sdk_config(&env.endpoint));
    let spec = aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .unwrap();
    rt().block_on(
        ddb.update_continuous_backups()
            .table_name(&env.table)
            .point_in_time_recovery_specification(spec)
            .send(),
    )
    .expect("enable PITR");
}

/// Runs `--json doctor` with `extra` args; returns (exit code, checks by name → (status, line)).
fn doctor(c: &mut Command, extra: &[&str]) -> (i32, Vec<(String, String, String)>) {
    let out = c.args(["--json", "doctor"]).args(extra).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                format!("{} {}", c["detail"], c["fix"]),
            )
        })
        .collect();
    (out.status.code().unwrap(), checks)
}

fn status_of<'a>(checks: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    let c = checks
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"));
    (c.1.as_str(), c.2.as_str())
}

const ORDER: [&str; 10] = [
    "module",
    "token",
    "login",
    "keys",
    "credentials",
    "endpoint",
    "clock",
    "ca",
    "table",
    "crl",
];

#[test]
fn a_whole_setup_passes_every_link_and_only_describes() {
    let env = PcaEnv::new();
    enable_pitr(&env);
    env.token.generate_key("doctor-key");
    let before = calls_of(&env.endpoint, &env.akid);
    let (code, checks) = doctor(
        &mut env.cmd(),
        &["--ca-arn", env.ca(), "--hsm-key-capacity", "100"],
    );
    assert_eq!(code, 0, "{checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ORDER);
    for name in &ORDER[..9] {
        assert_eq!(status_of(&checks, name).0, "pass", "{name}: {checks:#?}");
    }
    assert!(status_of(&checks, "keys")
        .1
        .contains("2 key objects (1 private, 1 public)"));
    assert!(status_of(&checks, "ca").1.contains("ACTIVE"));
    assert!(status_of(&checks, "table")
        .1
        .contains("point-in-time recovery on"));
    let creds = status_of(&checks, "credentials").1;
    assert!(creds.contains(&env.akid[env.akid.len() - 4..]), "{creds}");
    assert!(
        !creds.contains(&env.akid),
        "the access key id is shortened: {creds}"
    );
    assert!(
        !format!("{checks:?}").contains(&env.token.pin),
        "the PIN is never printed"
    );

    let after = calls_of(&env.endpoint, &env.akid);
    let ops = after["operations"].as_object().unwrap();
    for (op, n) in ops {
        let was = before["operations"][op].as_u64().unwrap_or(0);
        if n.as_u64().unwrap() > was {
            assert!(op.starts_with("Describe"), "doctor called {op}");
        }
    }
    assert!(
        after["operations"]["DescribeCertificateAuthority"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );

    // With CRLs enabled on the CA, the CRL is fetched and verified.
    env.enable_crl(env.ca(), &format!("crl-{}", env.table.to_lowercase()));
    let (code, checks) = doctor(&mut env.cmd(), &["--ca-arn", env.ca()]);
    assert_eq!(code, 0, "{checks:#?}");
    let (s, line) = status_of(&checks, "crl");
    assert_eq!(s, "pass", "{line}");
    assert!(line.contains("CRL number 1, 0 revoked"), "{line}");

    // Text form: one line per check, each starting with its mark.
    let a = env
        .cmd()
        .args(["doctor", "--ca-arn", env.ca()])
        .assert()
        .success();
    let text = stdout_of(&a);
    assert_eq!(text.lines().count(), ORDER.len(), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with(['✓', '!', '-'])),
        "{text}"
    );
}

#[test]
fn each_broken_link_is_the_line_that_fails_with_its_fix() {
    let env = PcaEnv::new();
    env.token.generate_key("doctor-key");
    let ca = env.ca().to_string();

    // Wrong PIN: login fails, key count falls back to public keys, AWS still checked.
    let (code, checks) = doctor(env.cmd().env("HSM_DEMO_PIN", "999999"), &["--ca-arn", &ca]);
    assert_eq!(code, 1);
    let (s, line) = status_of(&checks, "login");
    assert_eq!(s, "fail");
    assert!(line.contains("CKR_PIN_INCORRECT"), "{line}");
    assert!(!line.contains("999999"), "{line}");
    assert_eq!(status_of(&checks, "ca").0, "pass");
    assert_eq!(status_of(&checks, "table").0, "warn", "PITR off by default");

    // Key capacity: 2 objects on a capacity of 1 fails, of 2 warns.
    let (code, checks) = doctor(&mut env.cmd(), &["--hsm-key-capacity", "1"]);
    assert_eq!((code, status_of(&checks, "keys").0), (1, "fail"));
    let (code, checks) = doctor(&mut env.cmd(), &["--hsm-key-capacity", "2"]);
    assert_eq!((code, status_of(&checks, "keys").0), (0, "warn"));

    // A missing table names init-table.
    let (code, checks) = doctor(
        &mut env.cmd(),
        &["--ca-arn", &ca, "--table", "no-such-table"],
    );
    assert_eq!(code, 1);
    let (s, line) = status_of(&checks, "table");
    assert_eq!(s, "fail");
    assert!(line.contains("pca init-table"), "{line}");

    // A disabled CA.
    let pca = standin::pca_client(&env.endpoint);
    rt().block_on(
        pca.update_certificate_authority()
            .certificate_authority_arn(&ca)
            .status(aws_sdk_acmpca::types::CertificateAuthorityStatus::Disabled)
            .send(),
    )
    .unwrap();
    let (code, checks) = doctor(&mut env.cmd(), &["--ca-arn", &ca]);
    assert_eq!(code, 1);
    let (s, line) = status_of(&checks, "ca");
    assert_eq!(s, "fail");
    assert!(
        line.contains("DISABLED") && line.contains("--status ACTIVE"),
        "{line}"
    );

    // A module path that does not exist: the HSM checks after it are skipped.
    let (code, checks) = doctor(env.cmd().env("HSM_DEMO_MODULE", "/nonexistent/p11.so"), &[]);
    assert_eq!(code, 1);
    assert_eq!(status_of(&checks, "module").0, "fail");
    assert_eq!(status_of(&checks, "token").0, "skip");

    // Nothing listens: the endpoint fails within the budget, the checks needing it are skipped.
    let (code, checks) = doctor(
        env.cmd().env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        &["--ca-arn", &ca, "--timeout-secs", "2"],
    );
    assert_eq!(code, 1);
    let (s, line) = status_of(&checks, "endpoint");
    assert_eq!(s, "fail", "{checks:#?}");
    assert!(line.contains("127.0.0.1:9"), "{line}");
    assert_eq!(status_of(&checks, "clock").0, "skip");
}

#[test]
fn what_is_not_configured_is_skipped_and_passes() {
    let env = PcaEnv::new();
    let home = tempfile::tempdir().unwrap();
    let mut c = env.token.cmd();
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "HSM_DEMO_CA_ARN",
        "HSM_DEMO_PIN",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"));
    let (code, checks) = doctor(&mut c, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert_eq!(status_of(&checks, "module").0, "pass");
    assert_eq!(status_of(&checks, "token").0, "pass");
    assert_eq!(
        status_of(&checks, "login").0,
        "skip",
        "no PIN source, no terminal"
    );
    for name in &ORDER[4..] {
        assert_eq!(status_of(&checks, name).0, "skip", "{name}");
    }
}
