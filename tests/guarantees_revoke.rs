//! `pca revoke` and AWS: the registry never claims a revocation AWS did not make, and a revocation
//! AWS made but the registry missed (a crash between RevokeCertificate and the registry write) is
//! recorded by the rerun, which gets `RequestAlreadyProcessedException` and treats it as success.
//! RevokeCertificate calls are counted by the stand-in per access key.

mod common;
mod pca_support;

use aws_sdk_acmpca::types::RevocationReason;
use common::{standin, stdout_of};
use pca_support::PcaEnv;

#[test]
fn revocation_aws_made_but_the_registry_missed_is_recorded_by_the_rerun() {
    let env = PcaEnv::new();
    let v = env.provision("dev-x");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    // AWS revokes (as if `pca revoke` had died right after its RevokeCertificate).
    let colon: Vec<String> = serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect();
    let ca = env.ca().to_string();
    let pca = standin::pca_client(&env.endpoint);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            pca.revoke_certificate()
                .certificate_authority_arn(&ca)
                .certificate_serial(colon.join(":"))
                .revocation_reason(RevocationReason::KeyCompromise)
                .send()
                .await
                .expect("RevokeCertificate by the SDK")
        });
    assert_eq!(env.show("dev-x")["current"]["status"], "ISSUED");

    // The rerun: AWS answers RequestAlreadyProcessed, the registry records the revocation.
    let a = env
        .cmd()
        .args([
            "--json",
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "key-compromise",
        ])
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        1
    );
    let shown = env.show("dev-x");
    assert_eq!(shown["current"]["status"], "REVOKED");
    assert_eq!(shown["current"]["revocation_reason"], "KEY_COMPROMISE");
}

#[test]
fn a_revocation_aws_refused_is_not_recorded() {
    let env = PcaEnv::new();
    let v = env.provision("dev-y");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    // Every RevokeCertificate of this test's key gets a 5xx (the SDK retries, then gives up).
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 1.0, "fault_operations": ["RevokeCertificate"]}),
    );
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "superseded",
            "--max-attempts",
            "2",
        ])
        .assert()
        .failure();
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        2
    );
    assert_eq!(env.show("dev-y")["current"]["status"], "ISSUED");
    let markers = env.items_with_sk("CA#");
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0]["status"], "ISSUED");
}

/// Two `pca revoke` of one serial at once: the first is held at RevokeCertificate while the
/// second revokes and records; released, the first finds AWS done (RequestAlreadyProcessed) and
/// the registry already REVOKED by the other (its conditional write fails, it reads the marker
/// again) and reports "already revoked", exit 0. One revocation, recorded once.
#[test]
fn two_revocations_of_one_serial_at_once_both_succeed_and_record_it_once() {
    use std::time::{Duration, Instant};
    let env = PcaEnv::new();
    let serial = env.provision("dev-z")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    standin::hold(
        &env.endpoint,
        &env.akid,
        "RevokeCertificate",
        "request",
        None,
    );
    let first = env
        .std_cmd()
        .args([
            "--json",
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "superseded",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while standin::wait_held(&env.endpoint, &env.akid, 5)["held"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "the first revocation never reached AWS"
        );
    }
    // The hold is spent: the second goes through and records the revocation.
    let a = env
        .cmd()
        .args([
            "--json",
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "superseded",
        ])
        .assert()
        .success();
    let second: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(second["changed"], true, "{second}");
    standin::release(&env.endpoint, &env.akid, "proceed");
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["serial"]["status"], "REVOKED", "{r}");
    let shown = env.show("dev-z");
    assert_eq!(shown["current"]["status"], "REVOKED", "{shown}");
}
