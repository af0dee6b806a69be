//! `--out-dir` is created (with its parents) when missing, where certificates are written:
//! `provision` for one device and for a manifest, `pca issue`. A path blocked by a file is refused
//! in one line before any AWS call (counted at the stand-in), and nothing is created.

mod common;
mod pca_support;

use common::standin::total_calls;
use common::stderr_of;
use pca_support::PcaEnv;

#[test]
fn provision_creates_a_missing_out_dir_with_its_parents() {
    let env = PcaEnv::new();
    env.provision_cmd("od-1")
        .args(["--out-dir", "certs/line-a/day-1"])
        .assert()
        .success();
    let dir = env.path("certs/line-a/day-1");
    assert!(dir.join("od-1.cert.pem").is_file());
    assert!(dir.join("od-1.chain.pem").is_file());
    let (ok, why) = env.openssl_verify(&dir.join("od-1.cert.pem"), &dir.join("od-1.chain.pem"));
    assert!(ok, "{why}");

    std::fs::write(env.path("fleet.csv"), "device_id\nod-2\nod-3\n").unwrap();
    env.cmd()
        .args(["provision", "--ca-arn", env.ca(), "--manifest", "fleet.csv"])
        .args(["--out-dir", "fleet-certs/batch"])
        .assert()
        .success();
    for d in ["od-2", "od-3"] {
        assert!(env
            .path(&format!("fleet-certs/batch/{d}.cert.pem"))
            .is_file());
    }
}

#[test]
fn an_out_dir_blocked_by_a_file_is_refused_before_any_aws_call() {
    let env = PcaEnv::new();
    std::fs::write(env.path("blocker"), b"x").unwrap();
    std::fs::write(env.path("fleet.csv"), "device_id\nod-9\n").unwrap();
    let before = std::fs::read_dir(env.path(".")).unwrap().count();
    let calls_before = total_calls(&env.endpoint, &env.akid); // the table's creation
    for args in [
        vec!["provision", "--device-id", "od-8"],
        vec!["provision", "--manifest", "fleet.csv"],
        vec!["pca", "issue", "--device-id", "od-7", "--label", "k"],
    ] {
        for out_dir in ["blocker", "blocker/sub"] {
            let a = env
                .cmd()
                .args(&args)
                .args(["--ca-arn", env.ca(), "--out-dir", out_dir])
                .assert()
                .failure()
                .code(2);
            let err = stderr_of(&a);
            assert_eq!(err.lines().count(), 1, "{args:?} {out_dir}: {err}");
            assert!(err.contains("is not a directory"), "{err}");
        }
    }
    assert_eq!(
        total_calls(&env.endpoint, &env.akid),
        calls_before,
        "no AWS call at all"
    );
    assert_eq!(std::fs::read_dir(env.path(".")).unwrap().count(), before);
    assert_eq!(std::fs::read(env.path("blocker")).unwrap(), b"x");
}
