//! Terminal AWS Private CA errors, end to end: a real SoftHSM token (common::TestToken), the real
//! `hsm-demo` binary and the real stand-in, with the stand-in's switches scoped to each test's own
//! access key id and CA hierarchy (so tests run in parallel without disturbing each other).
//!
//! - `LimitExceededException` from IssueCertificate (a resource quota, not a rate): exactly one
//!   attempt, a one-line error, non-zero exit, nothing recorded, the intent released (deleted,
//!   docs/registry-schema.md "Terminal failure") and the HSM key it made removed; the rerun makes
//!   its own key and issues.
//! - `RequestFailedException` from GetCertificate (issuance failed asynchronously): terminal, the
//!   waiter stops at once, a one-line error, nothing recorded, the intent released, its key removed:
//!   the rerun is a new request.
//!
//! Attempts are counted by the stand-in (`GET /_standin/stats`), independent of the code under test.

mod common;
mod pca_support;

use std::time::{Duration, Instant};

use common::{standin, stderr_of, stdout_of};
use pca_support::PcaEnv;

/// The `error:` lines of a failed run's stderr.
fn error_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("error:")).collect()
}

/// IssueCertificate counters of the test's issuing CA.
fn issue_stats(env: &PcaEnv) -> serde_json::Value {
    standin::issue_stats(&env.endpoint, env.ca())["IssueCertificate"].clone()
}

fn provision_args<'a>(env: &'a PcaEnv, device: &'a str) -> Vec<&'a str> {
    vec![
        "-v",
        "--json",
        "provision",
        "--ca-arn",
        env.ca(),
        "--device-id",
        device,
    ]
}

#[test]
fn limit_exceeded_is_terminal_not_retried_and_leaves_nothing_recorded() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"issue_limit_exceeded": true}),
    );
    let a = env
        .cmd()
        .args(provision_args(&env, "lim-1"))
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "one error line expected: {err}");
    assert!(
        errors[0]
            .starts_with("error: AWS Private CA IssueCertificate failed: LimitExceededException: "),
        "{err}"
    );
    assert!(errors[0].contains("not a rate limit: not retried"), "{err}");
    assert_eq!(err.lines().last(), Some(errors[0]), "the error comes last");
    assert!(
        !err.contains("retrying AWS call"),
        "LimitExceeded retried: {err}"
    );
    assert!(stdout_of(&a).trim().is_empty(), "no JSON on failure");

    // Exactly one attempt reached AWS, and it issued nothing.
    let st = issue_stats(&env);
    assert_eq!(st["calls"], 1, "{st}");
    assert_eq!(st["errors"]["LimitExceededException"], 1, "{st}");
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 0);

    // Nothing recorded; the intent was released (deleted), so nothing is left to reconcile.
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    assert!(!env.path("lim-1.cert.pem").exists());
    let a = env.cmd().args(["pca", "reconcile"]).assert().success();
    assert!(stdout_of(&a).contains("no unfinished issuances"));
    let a = env
        .cmd()
        .args(["pca", "show", "--device-id", "lim-1"])
        .assert()
        .failure();
    assert_eq!(error_lines(&stderr_of(&a)).len(), 1);

    // The given-up claim removed the key it made, so no later claim finds a leftover.
    assert_eq!(env.private_keys_labelled("device-lim-1"), 0);

    // Quota raised: the rerun makes its own key and issues once.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"issue_limit_exceeded": false}),
    );
    let a = env
        .cmd()
        .args(provision_args(&env, "lim-1"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).expect("JSON");
    assert_eq!(v["key"], "created", "{v}");
    assert_eq!(env.private_keys_labelled("device-lim-1"), 1);
    assert_eq!(v["called_issue"], true, "{v}");
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 1);
    assert_eq!(standin::issue_calls(&env.endpoint, env.ca()), 2);
    assert_eq!(env.items_with_sk("CURRENT").len(), 1);
    let (ok, msg) = env.openssl_verify(&env.path("lim-1.cert.pem"), &env.path("lim-1.chain.pem"));
    assert!(ok, "{msg}");
}

#[test]
fn limit_exceeded_from_pca_issue_with_a_csr_is_terminal_too() {
    let env = PcaEnv::new();
    env.openssl_csr("d", "lim-csr");
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"issue_limit_exceeded": true}),
    );
    let a = env
        .cmd()
        .args([
            "-v",
            "pca",
            "issue",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "lim-csr",
            "--csr",
            "d.csr",
        ])
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(err.contains("LimitExceededException"), "{err}");
    assert!(!err.contains("retrying AWS call"), "{err}");
    assert_eq!(standin::issue_calls(&env.endpoint, env.ca()), 1);
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
}

#[test]
fn request_failed_is_terminal_waited_on_once_and_leaves_nothing_recorded() {
    let env = PcaEnv::new();
    // One RequestInProgress poll first (the waiter retries that), then the failed state.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fail_issuance": true, "async_pending_gets": 1}),
    );
    let t0 = Instant::now();
    let a = env
        .cmd()
        .args(provision_args(&env, "rf-1"))
        .args(["--wait-secs", "120"])
        .assert()
        .failure()
        .code(1);
    let took = t0.elapsed();
    let err = stderr_of(&a);
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "one error line expected: {err}");
    assert!(
        errors[0]
            .starts_with("error: AWS Private CA GetCertificate failed: RequestFailedException: "),
        "{err}"
    );
    assert!(
        errors[0].contains("(terminal: AWS will not issue this certificate)"),
        "{err}"
    );
    assert!(
        errors[0].contains("may get this failed request back"),
        "{err}"
    );
    assert_eq!(err.lines().last(), Some(errors[0]), "the error comes last");
    assert!(stdout_of(&a).trim().is_empty());
    // Not waited on until --wait-secs: the waiter stopped at the failed state.
    assert!(
        took < Duration::from_secs(60),
        "took {took:?}: RequestFailed waited on like RequestInProgress?"
    );

    // One IssueCertificate (no retry), two GetCertificate polls (in progress, failed), nothing issued.
    let st = issue_stats(&env);
    assert_eq!(
        (st["calls"].as_u64(), st["failed"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 0);
    assert_eq!(standin::get_certificate_calls(&env.endpoint, env.ca()), 2);

    // Registry consistent: nothing recorded, the intent released, nothing for reconcile.
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    assert!(!env.path("rf-1.cert.pem").exists());
    let a = env.cmd().args(["pca", "reconcile"]).assert().success();
    assert!(stdout_of(&a).contains("no unfinished issuances"));

    // The given-up claim removed the key it made: a rerun is a new request (new key, new token),
    // not the failed one replayed: issued once, recorded once.
    assert_eq!(env.private_keys_labelled("device-rf-1"), 0);
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fail_issuance": false, "async_pending_gets": 0}),
    );
    let a = env
        .cmd()
        .args(provision_args(&env, "rf-1"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).expect("JSON");
    assert_eq!(v["fresh"], true, "{v}");
    assert_eq!(v["key"], "created", "{v}");
    assert_eq!(
        issue_stats(&env)["idempotent_replays"],
        0,
        "the failed request was not replayed"
    );
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 1);
    assert_eq!(env.items_with_sk("CA#").len(), 1);
    assert_eq!(env.items_with_sk("CURRENT").len(), 1);
    let (ok, msg) = env.openssl_verify(&env.path("rf-1.cert.pem"), &env.path("rf-1.chain.pem"));
    assert!(ok, "{msg}");
}
