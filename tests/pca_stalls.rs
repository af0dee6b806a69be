//! A stalled answer is slow, not unreachable: the stand-in sends the status line and headers of
//! an IssueCertificate answer and then holds its body (hold stage `"body"`), longer than the
//! SDK's stalled-stream grace period (`--stall-grace-secs`). The call is retried within the retry
//! budget like a throttle — with the same idempotency token, so the device still gets exactly one
//! certificate, counted at the stand-in — and when the budget is spent the error says the
//! endpoint stalled, never that it cannot be reached.

mod common;
mod pca_support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::standin;
use pca_support::PcaEnv;

fn spawn_provision(env: &PcaEnv, dev: &str, budget_secs: &str) -> Child {
    env.std_cmd()
        .args(["-v", "--json", "provision", "--ca-arn", env.ca()])
        .args(["--device-id", dev, "--stall-grace-secs", "1"])
        .args([
            "--attempt-timeout-secs",
            "60",
            "--retry-budget-secs",
            budget_secs,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hsm-demo")
}

/// Waits (long polls at the stand-in) until the armed hold caught a request; panics if the
/// child ended first.
fn wait_for_the_hold(env: &PcaEnv, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = standin::wait_held(&env.endpoint, &env.akid, 5);
        if let Some(h) = v["held"].as_array().and_then(|a| a.first()) {
            return h.clone();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("provision ended ({st}) before its IssueCertificate answer was held");
        }
        assert!(Instant::now() < deadline, "IssueCertificate never held");
    }
}

#[test]
fn a_stalled_answer_is_retried_and_the_device_gets_exactly_one_certificate() {
    let env = PcaEnv::new();
    standin::hold(&env.endpoint, &env.akid, "IssueCertificate", "body", None);
    let mut child = spawn_provision(&env, "stall-1", "60");
    let held = wait_for_the_hold(&env, &mut child);
    assert_eq!(held["stage"], "body", "{held}");
    // The body is never sent while the process runs: it can only finish through a retry.
    let out = child.wait_with_output().unwrap();
    let rel = standin::release(&env.endpoint, &env.akid, "drop");
    assert_eq!(rel["finished"], true, "{rel}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "provision failed: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["record"]["device_id"], "stall-1", "{v}");
    assert!(
        err.contains("stalled: will retry within the retry budget"),
        "the stall was not retried as a stall: {err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "IssueCertificate"),
        2,
        "one stalled attempt and one retry"
    );
    assert_eq!(
        env.issued_by_ca(),
        1,
        "exactly one certificate at the stand-in"
    );
}

#[test]
fn a_stall_that_outlasts_the_budget_is_reported_as_a_stall() {
    let env = PcaEnv::new();
    standin::hold(&env.endpoint, &env.akid, "IssueCertificate", "body", None);
    let mut child = spawn_provision(&env, "stall-2", "0");
    wait_for_the_hold(&env, &mut child);
    let out = child.wait_with_output().unwrap();
    standin::release(&env.endpoint, &env.akid, "drop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: AWS Private CA IssueCertificate")
            && last.contains("stalled")
            && last.contains(&env.endpoint),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
}

/// Requests wait for their slot inside the HTTP client (the shaper): at 0.5 IssueCertificate per
/// second the third device waits 4 s, four times the grace period, and neither the stalled-stream
/// check nor the attempt timeout may count that wait (they did: every wait longer than the grace
/// period became a "0 B/s" failure, retried at the back of the queue until the budget ran out).
#[test]
fn waiting_for_the_clients_own_pacing_is_not_a_stall() {
    let env = PcaEnv::new();
    let devs: Vec<String> = (0..3).map(|i| format!("pace-{i}")).collect();
    let m = env.path("fleet.csv");
    std::fs::write(&m, format!("device_id\n{}\n", devs.join("\n"))).unwrap();
    let out = env
        .std_cmd()
        .args([
            "-v",
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
        ])
        .arg(&m)
        .args(["--issue-tps", "0.5", "--stall-grace-secs", "1"])
        .args(["--concurrency", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("retrying AWS call"), "{err}");
    assert_eq!(env.issued_by_ca(), 3);
}
