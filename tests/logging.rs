//! Logs: `-v` or a `RUST_LOG` filter turns them on (nothing is logged otherwise);
//! `--log-format json` makes every stderr line a JSON object; each AWS call attempt is one debug
//! event with its service, operation, attempt, HTTP status, AWS request id and latency; the PIN is
//! in no line.

mod common;
mod pca_support;

use common::PIN;
use pca_support::PcaEnv;

/// Runs `provision` for `device` with `args` before the command and `envs`; returns stderr lines.
fn provision_stderr(
    env: &PcaEnv,
    device: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Vec<String> {
    let mut c = env.cmd();
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c
        .args(args)
        .args(["provision", "--ca-arn", env.ca(), "--device-id", device])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(PIN), "the PIN is never logged");
    err.lines().map(str::to_string).collect()
}

/// The JSON events named "AWS call" for `operation`.
fn aws_calls(lines: &[String], operation: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .filter(|v| v["fields"]["message"] == "AWS call" && v["fields"]["operation"] == operation)
        .collect()
}

#[test]
fn json_logs_carry_one_event_per_aws_call_with_request_id_and_latency() {
    let env = PcaEnv::new();
    let lines = provision_stderr(&env, "log-1", &["-v", "--log-format", "json"], &[]);
    assert!(!lines.is_empty());
    let issue = aws_calls(&lines, "IssueCertificate");
    assert_eq!(issue.len(), 1, "one IssueCertificate attempt: {issue:?}");
    let f = &issue[0]["fields"];
    assert_eq!(f["service"], "ACM PCA", "{f}");
    assert_eq!(f["attempt"], 1, "{f}");
    assert_eq!(f["status"], 200, "{f}");
    assert!(f["latency_ms"].is_u64(), "{f}");
    assert!(
        !f["request_id"].as_str().unwrap_or("").is_empty(),
        "the request id AWS returned: {f}"
    );
    assert_eq!(issue[0]["level"], "DEBUG");
    // DynamoDB calls are logged the same way.
    assert!(
        !aws_calls(&lines, "TransactWriteItems").is_empty()
            || !aws_calls(&lines, "PutItem").is_empty()
    );
}

#[test]
fn rust_log_alone_turns_logging_on_and_nothing_is_logged_without_it() {
    let env = PcaEnv::new();
    let quiet = provision_stderr(&env, "log-2", &[], &[]);
    assert!(
        quiet.is_empty(),
        "no log lines without -v or RUST_LOG: {quiet:?}"
    );
    let lines = provision_stderr(
        &env,
        "log-3",
        &["--log-format", "json"],
        &[("RUST_LOG", "hsm_demo=debug")],
    );
    assert_eq!(aws_calls(&lines, "IssueCertificate").len(), 1);
    // Text format: the same event, human-readable.
    let text = provision_stderr(&env, "log-4", &["-v"], &[]);
    assert!(
        text.iter()
            .any(|l| l.contains("AWS call") && l.contains("operation=\"IssueCertificate\"")),
        "{text:?}"
    );
}
