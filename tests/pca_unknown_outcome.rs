//! An IssueCertificate whose outcome is unknown (5xx or a dropped connection after the last
//! retry) keeps the intent and its idempotency token, so a rerun resends the same token and AWS
//! answers with the same certificate; only a 4xx rejection frees the intent.

mod common;
mod pca_support;

use common::{standin, stderr_of};
use pca_support::PcaEnv;

#[test]
fn unknown_issue_outcome_keeps_the_intent_and_the_rerun_resumes_with_the_same_token() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "fault_5xx_probability": 1.0,
            "fault_operations": ["IssueCertificate"],
        }),
    );
    let a = env
        .cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "lost-1",
            "--max-attempts",
            "2",
        ])
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("IssueCertificate"), "{err}");

    // The intent survives with its token: a certificate may exist at AWS under that token.
    let intents = env.items_with_sk("INTENT#");
    let kept = intents
        .iter()
        .find(|i| i["device_id"] == "lost-1")
        .unwrap_or_else(|| panic!("intent deleted after an unknown outcome: {intents:?}"));
    assert_eq!(kept["state"], "PENDING");
    let token = kept["token"].clone();
    assert_eq!(
        token.len(),
        32,
        "intent without its idempotency token: {kept:?}"
    );
    assert!(env.items_with_sk("CURRENT").is_empty());

    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 0.0, "fault_operations": []}),
    );
    let v = env.provision("lost-1");
    assert_eq!(v["record"]["device_id"], "lost-1");
    assert_eq!(
        env.issued_by_ca(),
        1,
        "the rerun issued a second certificate"
    );
    let after = env.items_with_sk("INTENT#");
    let done = after.iter().find(|i| i["device_id"] == "lost-1").unwrap();
    assert_eq!(done["state"], "ISSUED");
    assert_eq!(
        done["token"], token,
        "the rerun used another idempotency token"
    );
}
