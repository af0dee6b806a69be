//! AWS's refusals of the credentials or the signature, against the stand-in emulating them: a
//! clock 15 minutes off is refused at the first attempt and corrected by the SDK (which reads
//! the answer's `Date`), and `doctor` names the offset; expired credentials are named as such in
//! one line.

mod common;
mod pca_support;

use common::stderr_of;
use pca_support::PcaEnv;

fn refused(env: &PcaEnv, args: &[&str]) -> String {
    let a = env.cmd().args(args).assert().code(1);
    common::one_line_error(&a, "")
}

fn switch(env: &PcaEnv, v: serde_json::Value) {
    common::standin::set_switches_for(&env.endpoint, &env.akid, v);
}

#[test]
fn a_clock_off_by_more_than_5_minutes_is_corrected_by_the_sdk_and_named_by_doctor() {
    let env = PcaEnv::new();
    let bucket = format!("crl-{}", env.table.to_lowercase());
    env.enable_crl(env.ca(), &bucket);
    // AWS's clock (the stand-in's) 15 minutes ahead: this host is 900 s behind. The first
    // attempt of each call is refused as AWS refuses it; the SDK reads the answer's Date,
    // signs again with the offset and succeeds (DynamoDB, PCA and S3 alike).
    switch(&env, serde_json::json!({"clock_offset_seconds": 900}));
    let a = env
        .cmd()
        .args(["-v", "pca", "crl", "--ca-arn", env.ca()])
        .assert()
        .success();
    let log = stderr_of(&a);
    assert!(
        log.contains("retrying AWS call"),
        "no refused first attempt: {log}"
    );
    env.cmd().args(["pca", "list"]).assert().success();
    // doctor names the offset: the signatures work, the host's clock is still wrong.
    let out = env
        .cmd()
        .args(["--json", "doctor", "--ca-arn", env.ca()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let clock = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "clock")
        .unwrap_or_else(|| panic!("no clock check: {v}"));
    let text = clock.to_string();
    assert!(
        text.contains("\"fail\"") && (899..=901).any(|s| text.contains(&format!("{s} s behind"))),
        "{text}"
    );
}

#[test]
fn expired_credentials_are_named_as_such() {
    let env = PcaEnv::new();
    switch(&env, serde_json::json!({"expired_credentials": true}));
    let err = refused(&env, &["pca", "list"]);
    assert!(
        err.contains("the AWS credentials have expired (ExpiredTokenException)"),
        "{err}"
    );
}
