//! Concurrency, retries and terminal errors against the stand-in's switches (scoped to this
//! test's access key id): two processes provisioning one device, throttling, 5xx and dropped
//! connections retried with backoff, asynchronous issuance waited for, MalformedCSR and
//! InvalidState terminal with nothing recorded.

mod common;
mod pca_support;

use x509_parser::prelude::FromDer;

use std::process::Stdio;

use common::{standin, stderr_of, stdout_of};
use pca_support::PcaEnv;

fn run_json(env: &PcaEnv, args: &[&str]) -> (serde_json::Value, String) {
    let a = env.cmd().args(args).assert().success();
    (
        serde_json::from_str(&stdout_of(&a)).expect("JSON"),
        stderr_of(&a),
    )
}

#[test]
fn two_processes_provisioning_the_same_device_get_one_certificate() {
    let env = PcaEnv::new();
    for round in 0..3 {
        let device = format!("twin-{round}");
        let children: Vec<_> = (0..2)
            .map(|_| {
                env.std_cmd()
                    .args([
                        "--json",
                        "provision",
                        "--ca-arn",
                        env.ca(),
                        "--device-id",
                        &device,
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let mut serials = Vec::new();
        let mut issued_calls = 0;
        for o in &outs {
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            serials.push(v["record"]["serial"].as_str().unwrap().to_string());
            if v["called_issue"] == true {
                issued_calls += 1;
            }
        }
        assert_eq!(
            serials[0], serials[1],
            "round {round}: two different certificates"
        );
        assert_eq!(
            issued_calls, 1,
            "round {round}: IssueCertificate called by both"
        );
    }
    assert_eq!(env.items_with_sk("CA#").len(), 3);
    assert_eq!(env.items_with_sk("CERT#").len(), 3);
    assert_eq!(
        env.issued_by_ca(),
        3,
        "the stand-in issued more than one per device"
    );
    // One key per device: the loser never generated a second one.
    let a = env
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    let text = stdout_of(&a);
    for round in 0..3 {
        let n = text.matches(&format!("\"device-twin-{round}\"")).count();
        assert_eq!(
            n, 2,
            "expected one key pair (2 objects) for twin-{round}: {text}"
        );
    }
}

#[test]
fn throttling_is_retried_with_backoff_and_succeeds() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "throttle_enabled": true,
            "throttle_tps": {"IssueCertificate": 1.0, "GetCertificate": 1.0},
        }),
    );
    let mut retried = false;
    for i in 0..3 {
        let dev = format!("thr-{i}");
        let (v, err) = run_json(
            &env,
            &[
                "-v",
                "--json",
                "provision",
                "--ca-arn",
                env.ca(),
                "--device-id",
                &dev,
            ],
        );
        assert_eq!(v["fresh"], true);
        retried |= err.contains("retrying AWS call");
        assert!(!err.contains("error:"), "{err}");
    }
    assert!(retried, "1 TPS for 3 devices in a row never throttled?");
    // Counted by the stand-in, independently of the tool's log: the throttled attempts were
    // repeated (more calls than the 3 IssueCertificate + 3 GetCertificate a calm run makes).
    let calls = |op| standin::calls(&env.endpoint, &env.akid, op);
    assert!(
        calls("IssueCertificate") + calls("GetCertificate") > 6,
        "no call was repeated: {}",
        standin::calls_of(&env.endpoint, &env.akid)
    );
    assert_eq!(env.issued_by_ca(), 3);
    assert_eq!(env.items_with_sk("CA#").len(), 3);
}

#[test]
fn server_errors_and_dropped_connections_are_retried_and_each_device_gets_one_certificate() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "fault_5xx_probability": 0.25,
            "fault_drop_probability": 0.15,
            "fault_seed": 4242,
        }),
    );
    let mut retried = 0;
    for i in 0..4 {
        let dev = format!("flaky-{i}");
        let (v, err) = run_json(
            &env,
            &[
                "-v",
                "--json",
                "provision",
                "--ca-arn",
                env.ca(),
                "--device-id",
                &dev,
                "--max-attempts",
                "12",
            ],
        );
        assert_eq!(v["record"]["device_id"], dev.as_str());
        retried += err.matches("retrying AWS call").count();
    }
    assert!(retried > 0, "40% faults and no retry?");
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"fault_5xx_probability": 0.0, "fault_drop_probability": 0.0}),
    );
    assert_eq!(env.items_with_sk("CA#").len(), 4);
    assert_eq!(env.items_with_sk("CURRENT").len(), 4);
    assert_eq!(
        env.issued_by_ca(),
        4,
        "a retried IssueCertificate issued twice"
    );
}

#[test]
fn asynchronous_issuance_is_waited_for_with_the_waiter() {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"async_pending_gets": 2}),
    );
    let (v, _) = run_json(
        &env,
        &[
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "slow-1",
        ],
    );
    assert_eq!(v["fresh"], true);
    // The waiter polled through both in-progress answers: exactly 3 GetCertificate calls.
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "GetCertificate"),
        3
    );
    let (ok, msg) = env.openssl_verify(&env.path("slow-1.cert.pem"), &env.path("slow-1.chain.pem"));
    assert!(ok, "{msg}");
    // A bound shorter than the issuance: a clear error, the ARN kept; the rerun finishes it
    // without a second IssueCertificate.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"async_pending_gets": 3}),
    );
    let a = env
        .cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "slow-2",
            "--wait-secs",
            "1",
        ])
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert!(err.contains("was not issued within"), "{err}");
    let intents = env.items_with_sk("INTENT#");
    let i = intents.iter().find(|i| i["device_id"] == "slow-2").unwrap();
    assert_eq!(i["state"], "ISSUING");
    let (v, _) = run_json(
        &env,
        &[
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "slow-2",
        ],
    );
    assert_eq!(v["called_issue"], false, "{v}");
    assert_eq!(
        v["record"]["cert_arn"].as_str(),
        Some(i["cert_arn"].as_str())
    );
    assert_eq!(env.issued_by_ca(), 2);
}

#[test]
fn malformed_csr_from_aws_is_terminal_not_retried_and_nothing_stays_recorded() {
    let env = PcaEnv::new();
    // Ed25519: a valid, self-verifying CSR that AWS Private CA rejects (no Ed25519 there).
    let o = env
        .token
        .tool("openssl")
        .args([
            "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout", "ed.key", "-out", "ed.csr",
            "-subj", "/CN=ed-1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // hsm-demo refuses the key type itself now, before any AWS call...
    let before = standin::total_calls(&env.endpoint, &env.akid);
    let a = env
        .cmd()
        .args([
            "-v",
            "pca",
            "issue",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "ed-1",
        ])
        .args(["--csr", "ed.csr"])
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert!(err.contains("key type not accepted"), "{err}");
    assert_eq!(
        standin::total_calls(&env.endpoint, &env.akid),
        before,
        "{err}"
    );
    // ...so AWS's own answer (MalformedCSRException, a 4xx) is driven through the library, with
    // a CSR value that skips the local check: terminal, sent once, nothing left recorded.
    let pem = std::fs::read_to_string(env.path("ed.csr")).unwrap();
    let der = pem::parse(&pem).unwrap().contents().to_vec();
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    let csr = hsm_demo::pca::csr::Csr {
        der: der.clone(),
        pem: pem.clone(),
        tbs: req.certification_request_info.raw.to_vec(),
        spki: req.certification_request_info.subject_pki.raw.to_vec(),
        subject: "CN=ed-1".into(),
        sans: Vec::new(),
    };
    let clients = env.clients();
    let (rt, issuer) = env.issuer(&clients);
    let device = hsm_demo::pca::DeviceId::parse("ed-1").unwrap();
    let e = rt
        .block_on(issuer.issue(&device, &csr))
        .expect_err("AWS refuses an Ed25519 CSR");
    assert!(
        e.to_string()
            .starts_with("AWS Private CA IssueCertificate failed: MalformedCSRException"),
        "{e}"
    );
    // One attempt, as the stand-in counted it (not retried).
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "IssueCertificate"),
        1
    );
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    assert_eq!(env.issued_by_ca(), 0);
}

#[test]
fn invalid_state_between_checks_and_issue_is_terminal_and_leaves_nothing() {
    use hsm_demo::pca::csr::Csr;
    use hsm_demo::pca::DeviceId;

    let env = PcaEnv::new();
    env.openssl_csr("k", "st-1");
    let clients = env.clients();
    let (rt, issuer) = env.issuer(&clients);
    // The CA is disabled after the issuer checked it (an operator acting mid-run).
    rt.block_on(
        clients
            .pca
            .update_certificate_authority()
            .certificate_authority_arn(env.ca())
            .status(aws_sdk_acmpca::types::CertificateAuthorityStatus::Disabled)
            .send(),
    )
    .unwrap();
    let csr = Csr::from_file(&env.path("k.csr")).unwrap();
    let dev = DeviceId::parse("st-1").unwrap();
    let e = rt.block_on(issuer.issue(&dev, &csr)).unwrap_err();
    let msg = e.one_line();
    assert!(msg.contains("InvalidStateException"), "{msg}");
    assert!(env.table_items().is_empty(), "{:?}", env.table_items());
    assert_eq!(env.issued_by_ca(), 0);
}
