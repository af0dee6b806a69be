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
