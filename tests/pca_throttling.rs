//! Throttling is waited out, not raced: against the stand-in throttled at 1 request per second
//! (scoped to this test's access key id), several processes at once each provision a device and
//! all succeed with exactly one certificate each; a call still throttled when its retry budget
//! (`--retry-budget-secs`) is spent fails saying so; an endpoint that accepts connections and never
//! answers fails after the attempt timeout with a "waiting" line meanwhile; missing credentials and
//! a malformed endpoint URL are named as such.

mod common;
mod pca_support;

use std::io::Read;
use std::process::Stdio;

use common::{standin, stderr_of};
use pca_support::PcaEnv;

/// Lines of `-v` output that report a throttled answer the retry budget waited out.
fn throttled_answers(stderr: &str) -> usize {
    stderr
        .matches("throttled: will retry within the retry budget")
        .count()
}

#[test]
fn several_processes_at_one_request_per_second_all_get_exactly_one_certificate() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "throttle_enabled": true,
            "throttle_tps": {"IssueCertificate": 1.0, "GetCertificate": 1.0},
        }),
    );
    let n = 5;
    let children: Vec<_> = (0..n)
        .map(|i| {
            env.std_cmd()
                .args(["-v", "--json", "provision", "--ca-arn", env.ca()])
                .args(["--device-id", &format!("thr-{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut throttled = 0;
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "thr-{i} failed: {err}");
        assert!(!err.contains("error:"), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(v["record"]["device_id"], format!("thr-{i}").as_str());
        throttled += throttled_answers(&err);
    }
    assert!(
        throttled > 0,
        "{n} processes at 1 TPS and not one throttled answer: the throttled path did not run"
    );
    assert_eq!(
        env.issued_by_ca(),
        n,
        "exactly one certificate per device (counted at the stand-in)"
    );
    assert_eq!(env.items_with_sk("CA#").len(), n);
    eprintln!("throttled answers waited out: {throttled}");
}

#[test]
fn a_call_throttled_for_its_whole_budget_fails_naming_the_budget_and_leaves_nothing() {
    let env = PcaEnv::new();
    // Below 1 TPS the stand-in's bucket never holds a whole token: every call is throttled.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "throttle_enabled": true,
            "throttle_tps": {"IssueCertificate": 0.5},
        }),
    );
    let a = env
        .cmd()
        .args([
            "-v",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "thr-x",
        ])
        .args(["--retry-budget-secs", "3"])
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: AWS Private CA IssueCertificate failed: ThrottlingException")
            && last.contains("retry budget ran out"),
        "{err}"
    );
    assert!(throttled_answers(&err) > 1, "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
    assert_eq!(env.issued_by_ca(), 0);
    assert!(env.items_with_sk("CA#").is_empty());
}

/// A TCP listener that accepts connections and never answers (keeps them open).
fn silent_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            let mut s2 = s.try_clone().unwrap();
            // Read (and drop) the request so the client's upload completes; never write.
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(s2.read(&mut buf), Ok(n) if n > 0) {}
            });
            held.push(s);
        }
    });
    format!("http://{addr}")
}

fn aws_cmd(endpoint: &str) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("hsm-demo").unwrap();
    pca_support::aws_env(&mut c, endpoint, "AKIDSILENT", "reg-silent");
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn an_endpoint_that_never_answers_fails_after_the_attempt_timeout_with_a_waiting_line() {
    let endpoint = silent_endpoint();
    let t0 = std::time::Instant::now();
    let a = aws_cmd(&endpoint)
        .args([
            "pca",
            "list",
            "--attempt-timeout-secs",
            "7",
            "--retry-budget-secs",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .failure()
        .code(1);
    let took = t0.elapsed();
    let err = stderr_of(&a);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiting: no answer from ") && l.contains(&endpoint)),
        "no waiting line: {err}"
    );
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: DynamoDB")
            && last.contains("no answer from")
            && last.contains(&endpoint),
        "{err}"
    );
    assert!(!last.contains("cannot reach"), "{err}");
    // One 7 s attempt (the 1 s budget allows no second): far below the old 165 s.
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
}

#[test]
fn missing_credentials_are_named_not_reported_as_an_unreachable_endpoint() {
    let endpoint = silent_endpoint();
    let a = aws_cmd(&endpoint)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .args(["pca", "list"])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no AWS credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
}

#[test]
fn an_unknown_profile_is_named_not_blamed_on_the_instance_metadata_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let creds = dir.path().join("credentials");
    std::fs::write(
        &config,
        "[default]\nregion = us-east-1\n[profile ops]\nregion = eu-west-1\n",
    )
    .unwrap();
    std::fs::write(
        &creds,
        "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = x\n",
    )
    .unwrap();
    let a = aws_cmd("http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_PROFILE", "opps")
        .args(["pca", "list"])
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: AWS_PROFILE \"opps\" is not defined in "),
        "{err}"
    );
    assert!(
        err.contains("default, ops, ci"),
        "names the profiles there: {err}"
    );
    assert!(
        !err.contains("IMDS") && !err.contains("cannot reach"),
        "{err}"
    );
    // A profile that exists gets past the check (and then fails on the closed port).
    let a = aws_cmd("http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_PROFILE", "ci")
        .args(["pca", "list", "--retry-budget-secs", "0"])
        .assert()
        .failure()
        .code(1);
    assert!(stderr_of(&a).contains("cannot reach"), "{}", stderr_of(&a));
}

#[test]
fn a_malformed_endpoint_url_is_named_in_one_line() {
    for (var, value) in [
        ("AWS_ENDPOINT_URL", "not a url"),
        ("AWS_ENDPOINT_URL", "ftp://127.0.0.1:4566"),
        ("AWS_ENDPOINT_URL_ACM_PCA", "http://"),
    ] {
        let a = aws_cmd("http://127.0.0.1:9")
            .env(var, value)
            .args(["pca", "list"])
            .assert()
            .failure()
            .code(1);
        let err = stderr_of(&a);
        assert_eq!(err.lines().count(), 1, "{var}={value}: {err}");
        assert!(
            err.starts_with(&format!("error: {var}=\"{value}\" is not an http(s) URL")),
            "{var}={value}: {err}"
        );
        assert!(!err.contains("amazonaws.com:"), "{err}");
    }
}

/// A TCP listener that answers every request with HTTP headers and one byte of a longer body,
/// then stalls (keeps the connection open).
fn stalling_endpoint() -> String {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            let mut s2 = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut seen = Vec::new();
                while let Ok(n) = s2.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = s2.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 1000\r\n\r\n{",
                );
                let _ = s2.flush();
                while matches!(s2.read(&mut buf), Ok(n) if n > 0) {}
            });
            held.push(s);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_stalled_answer_is_retried_within_the_budget_and_reported_as_stalled() {
    let endpoint = stalling_endpoint();
    let a = aws_cmd(&endpoint)
        .args([
            "pca",
            "list",
            "--retry-budget-secs",
            "8",
            "--attempt-timeout-secs",
            "60",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiting: DynamoDB Scan at ") && l.contains(": stalled for ")),
        "the stall was not retried with a waiting line: {err}"
    );
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: DynamoDB Scan: the AWS endpoint ")
            && last.contains(&format!("{endpoint} stalled")),
        "{err}"
    );
    assert!(!last.contains("cannot reach"), "{err}");
}
