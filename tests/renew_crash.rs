//! Crash safety of `renew --all`: SIGKILL at each step of a renewal (the stand-in holds one
//! request of the run until the kill), then a rerun: exactly two certificates per device (the
//! original and one renewal), counted at the stand-in, every device at generation 1 with its old
//! certificate SUPERSEDED, no intent left open.

mod common;
mod pca_support;
mod renew_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::standin;
use pca_support::PcaEnv;
use renew_support::*;

/// Where the run is killed: the stand-in holds the first `operation` request (at `stage`, once
/// an `after` request was answered).
const POINTS: [(&str, &str, Option<&str>); 6] = [
    ("PutItem", "request", None),
    ("IssueCertificate", "request", None),
    ("IssueCertificate", "answer", None),
    ("UpdateItem", "request", Some("IssueCertificate")),
    ("GetCertificate", "request", None),
    ("TransactWriteItems", "answer", None),
];

/// Rounds over [`POINTS`]: 4 x 6 = 24 SIGKILL trials.
const ROUNDS: usize = 4;

const ARGS: [&str; 6] = [
    "--all",
    "--within",
    "3h",
    "--min-interval",
    "0s",
    "--concurrency",
];

fn kill_renew_at(env: &PcaEnv, op: &str, stage: &str, after: Option<&str>) {
    standin::hold(&env.endpoint, &env.akid, op, stage, after);
    let mut child = env
        .std_cmd()
        .args(["renew", "--ca-arn", env.ca()])
        .args(ARGS)
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = standin::wait_held(&env.endpoint, &env.akid, 5);
        if v["held"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "renew ended before {op} {stage}"
        );
        assert!(Instant::now() < deadline, "{op} {stage} never reached");
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let rel = standin::release(&env.endpoint, &env.akid, "drop");
    assert_eq!(rel["finished"], true, "{rel}");
}

#[test]
fn sigkill_during_renew_all_then_rerun_gives_exactly_two_certificates_per_device() {
    let env = PcaEnv::new();
    let mut devices = Vec::new();
    let mut trials = 0;
    for round in 0..ROUNDS {
        for (i, (op, stage, after)) in POINTS.iter().enumerate() {
            let trial: Vec<String> = (0..2).map(|k| format!("crash-{round}-{i}-{k}")).collect();
            for d in &trial {
                provision_for(&env, d, "2h");
            }
            kill_renew_at(&env, op, stage, *after);
            trials += 1;
            let r = renew_json(&env, &[&ARGS[..], &["1"]].concat());
            let summary = &r.last().unwrap()["summary"];
            assert_eq!(summary["failed"], 0, "{op} {stage}: {summary}");
            for d in &trial {
                let h = history(&env, d);
                assert_eq!(
                    h,
                    vec![(0, "SUPERSEDED".to_string()), (1, "ISSUED".to_string())],
                    "{d} after a kill at {op} {stage}"
                );
                assert_eq!(current(&env, d)["generation"], "1", "{d}");
            }
            devices.extend(trial);
        }
    }
    // Counted at the stand-in: the originals and one renewal each, nothing more.
    assert_eq!(env.issued_by_ca(), 2 * devices.len(), "{trials} trials");
    let open: Vec<_> = env
        .items_with_sk("INTENT#")
        .into_iter()
        .filter(|i| i["state"] != "ISSUED")
        .collect();
    assert!(open.is_empty(), "open intents: {open:?}");
    eprintln!("{trials} SIGKILL trials, {} devices", devices.len());
}
