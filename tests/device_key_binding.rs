//! A device's HSM key is bound to the claim that made it (CKA_ID `hsm-demo/intent/…`), so two
//! keys under one label never stop a device, and the key kept is the one the records name:
//! - an unfinished issuance (its CSR stored in the intent) left with a second key under its label
//!   is finished with the key that signed the stored CSR; the other key is removed;
//! - a recorded device with a second key under its label keeps the certified key;
//! - a key another claim made and gave up is never adopted: it is removed and a new one made;
//! - `generate-key` cannot make a key that looks bound to an intent.
//!
//! Keys are read with `list-slots --objects --json` and `export-pubkey`, certificates with
//! openssl, certificates at AWS counted by the stand-in.

mod common;
mod pca_support;

use common::{standin, stdout_of};
use pca_support::PcaEnv;

/// The hex of the CKA_ID mark of intent-bound keys.
fn intent_mark_hex() -> String {
    hex::encode(b"hsm-demo/intent/")
}

/// The SubjectPublicKeyInfo PEM of a certificate file (openssl).
fn cert_pubkey_pem(env: &PcaEnv, cert: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(env.path(cert))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A second key pair under `label`, made outside any intent (as an older version or a race left).
fn second_key(env: &PcaEnv, label: &str) {
    env.cmd()
        .args(["generate-key", "--label", label, "--allow-duplicate-label"])
        .assert()
        .success();
}

#[test]
fn an_unfinished_issuance_with_two_keys_is_finished_with_the_key_its_csr_names() {
    let env = PcaEnv::new();
    let label = "device-two-1";
    // Every IssueCertificate answers 500: the outcome is unknown, so the intent (with the CSR's
    // digest and token) is kept for a resume.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 1.0, "fault_operations": ["IssueCertificate"]}),
    );
    env.provision_cmd("two-1").assert().failure();
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 0);
    let first = env.private_key_ids(label);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].starts_with(&intent_mark_hex()), "{first:?}");
    let signed_with = env.pubkey_pem(label);
    second_key(&env, label);
    assert_eq!(env.private_keys_labelled(label), 2);

    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 0.0}),
    );
    let a = env
        .cmd()
        .args([
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "two-1",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["key"], "reused", "{v}");
    assert_eq!(v["record"]["generation"], 0, "{v}");
    // The key that signed the stored CSR stays; the other one is gone.
    assert_eq!(env.private_key_ids(label), first);
    assert_eq!(env.pubkey_pem(label), signed_with);
    assert_eq!(cert_pubkey_pem(&env, "two-1.cert.pem"), signed_with);
    assert_eq!(standin::issued_count(&env.endpoint, env.ca()), 1);
}

#[test]
fn a_recorded_device_with_a_second_key_keeps_the_certified_key() {
    let env = PcaEnv::new();
    let label = "device-two-2";
    let v = env.provision("two-2");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    let certified = cert_pubkey_pem(&env, "two-2.cert.pem");
    env.revoke(&serial, "superseded");
    second_key(&env, label);
    assert_eq!(env.private_keys_labelled(label), 2);

    // Generation 1 signs with the key generation 0's certificate carries; the stray goes.
    let v = env.provision("two-2");
    assert_eq!(v["record"]["generation"], 1, "{v}");
    assert_eq!(v["key"], "reused", "{v}");
    assert_eq!(env.private_keys_labelled(label), 1);
    assert_eq!(env.pubkey_pem(label), certified);
    assert_eq!(cert_pubkey_pem(&env, "two-2.cert.pem"), certified);
}

#[test]
fn a_key_another_claim_made_is_never_adopted_and_goes_once_a_record_names_the_kept_one() {
    let env = PcaEnv::new();
    let label = "device-stale-1";
    // Another claim's key (its CKA_ID carries the intent mark), with no intent behind it: this
    // runner cannot tell a given-up claim from one that replaced it, so it neither uses nor
    // removes it.
    let stale_id = format!(
        "{}{}",
        intent_mark_hex(),
        hex::encode("0123456789abcdef0123456789abcdef")
    );
    env.pkcs11_tool_keypair(label, &stale_id);
    let v = env.provision("stale-1");
    assert_eq!(v["key"], "created", "{v}");
    let ids = env.private_key_ids(label);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let own: Vec<&String> = ids.iter().filter(|i| **i != stale_id).collect();
    assert_eq!(own.len(), 1, "{ids:?}");
    assert!(own[0].starts_with(&intent_mark_hex()), "{ids:?}");
    let certified = cert_pubkey_pem(&env, "stale-1.cert.pem");

    // The next claim of the device with a record naming its key (generation 1 after a
    // revocation signs with the certified key) removes the stray.
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    env.revoke(&serial, "superseded");
    let v = env.provision("stale-1");
    assert_eq!(v["record"]["generation"], 1, "{v}");
    assert_eq!(v["key"], "reused", "{v}");
    assert_eq!(env.private_key_ids(label), vec![own[0].clone()]);
    assert_eq!(env.pubkey_pem(label), certified);
}

#[test]
fn generate_key_refuses_an_id_with_the_intent_mark() {
    let env = PcaEnv::new();
    let id = format!("{}00", intent_mark_hex());
    let a = env
        .cmd()
        .args(["generate-key", "--label", "mine", "--id", &id])
        .assert()
        .failure()
        .code(2);
    common::one_line_error(&a, "marks device keys made under an issuance intent");
    assert_eq!(env.private_keys_labelled("mine"), 0);
}

/// A holder whose lease ran out while it was alive stores its CSR between another runner's read
/// and that runner's take-over: the take-over of the stale read fails (so the other runner reads
/// again and resumes the stored CSR with its key, instead of removing that key as unnamed), and
/// a take-over of what is stored now succeeds.
#[test]
fn a_take_over_of_an_intent_read_before_its_csr_was_stored_fails() {
    use hsm_demo::pca::issue::Begin;
    use hsm_demo::pca::registry::{IssueParams, Written};
    use hsm_demo::pca::DeviceId;

    let env = PcaEnv::new();
    let clients = env.clients();
    let (rt, issuer) = env.issuer(&clients);
    let device = DeviceId::parse("late-params").unwrap();
    let Begin::Claimed(claim) = rt.block_on(issuer.begin(&device)).unwrap() else {
        panic!("a new device is already done")
    };
    let read_before = claim.intent.clone();
    assert!(read_before.params.is_none());
    let params = IssueParams {
        token: "0123456789abcdef0123456789abcdef".into(),
        csr_sha256: "ab".repeat(32),
        template_arn: "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1".into(),
        signing_algorithm: "SHA256WITHECDSA".into(),
        validity_type: "DAYS".into(),
        validity_value: 30,
    };
    let reg = issuer.registry();
    let stored = rt
        .block_on(reg.set_intent_params(&claim.intent, &claim.intent.owner, &params))
        .unwrap();
    assert_eq!(stored, Written::Yes);
    let lease = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
    let stale = rt
        .block_on(reg.take_over_intent(&read_before, "other:1:1:n", lease))
        .unwrap();
    assert_eq!(stale, Written::ConditionFailed, "took over a stale read");
    let now = rt.block_on(reg.device(&device)).unwrap();
    let current = now.intent(0).unwrap().clone();
    assert_eq!(current.owner, claim.intent.owner, "the holder keeps it");
    assert_eq!(
        current.params.as_ref().map(|p| p.token.as_str()),
        Some(params.token.as_str())
    );
    let fresh = rt
        .block_on(reg.take_over_intent(&current, "other:1:1:n", lease))
        .unwrap();
    assert_eq!(fresh, Written::Yes);
    // The intent remembers whom it was taken from: that claim's key is the taker's to remove.
    let after = rt.block_on(reg.device(&device)).unwrap();
    let taken = after.intent(0).unwrap();
    assert_eq!(taken.owner, "other:1:1:n");
    assert_eq!(taken.previous_owners, vec![claim.intent.owner.clone()]);
}

/// Half a pair under the label (as a run killed inside C_GenerateKeyPair leaves it), either half:
/// removed, and a new pair generated and certified.
#[test]
fn half_a_pair_under_the_label_is_removed_and_a_new_pair_generated() {
    let env = PcaEnv::new();
    for (device, gone) in [("half-1", "pubkey"), ("half-2", "privkey")] {
        let label = format!("device-{device}");
        let id = format!(
            "{}{}",
            intent_mark_hex(),
            hex::encode(format!("{device:0>32}"))
        );
        env.pkcs11_tool_keypair(&label, &id);
        env.pkcs11_tool(&["--delete-object", "--type", gone, "--id", &id]);

        let v = env.provision(device);
        assert_eq!(v["key"], "regenerated", "{device}: {v}");
        let ids = env.private_key_ids(&label);
        assert_eq!(ids.len(), 1, "{device}: {ids:?}");
        assert_ne!(ids[0], id, "{device}: the half pair is gone");
        let cert = format!("{device}.cert.pem");
        assert_eq!(cert_pubkey_pem(&env, &cert), env.pubkey_pem(&label));
    }
}

/// Two private keys with one label and one CKA_ID (made by another tool): nothing tells them
/// apart, so provisioning refuses with one line before any AWS Private CA call and removes
/// neither.
#[test]
fn two_private_keys_with_one_id_are_refused_and_kept() {
    let env = PcaEnv::new();
    let label = "device-twin-1";
    for _ in 0..2 {
        env.pkcs11_tool_keypair(label, "7777");
    }
    assert_eq!(env.private_keys_labelled(label), 2);
    let a = env.provision_cmd("twin-1").assert().failure().code(1);
    common::one_line_error(&a, "look-up is ambiguous");
    assert_eq!(env.private_keys_labelled(label), 2);
    assert_eq!(standin::issue_calls(&env.endpoint, env.ca()), 0);
}
