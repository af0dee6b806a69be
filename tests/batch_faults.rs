//! Batch provisioning with the stand-in's 5xx and dropped-connection switches on at 10 % each
//! (scoped to this test's access key), under SIGKILL at random moments (≥ 20 trials over a
//! 200-device manifest), then rerun: every device exactly one certificate, every serial
//! recorded, no dangling intent; the faults were retried by the SDK, not surfaced.

mod batch_support;
mod common;
mod pca_support;

use batch_support::*;
use pca_support::PcaEnv;

#[test]
fn sigkill_with_5xx_and_dropped_connections_at_10_percent() {
    let env = PcaEnv::new();
    common::standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 0.1, "fault_drop_probability": 0.1}),
    );
    kill_trials_then_rerun(&env, "f");
    // The faults did happen and were retried: a verbose rerun logs the SDK's retries.
    let m = env.path("fleet.csv");
    let out = batch_cmd(&env, &m, &["-v"]).output().unwrap();
    let r = parse(&out);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("retrying AWS call"),
        "no retries logged: {}",
        r.stderr
    );
}
