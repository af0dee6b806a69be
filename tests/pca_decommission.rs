//! `pca decommission`: the current certificate revoked, the HSM key pair destroyed, the device
//! refused by `provision` until `--recommission`; killed at each step (the stand-in holds the
//! step's request, the test SIGKILLs the process there) and rerun to the same end state.

mod common;
mod csr_support;
mod pca_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::standin;
use common::{stderr_of, stdout_of};
use csr_support::{ec_csr, no_hsm_cmd};
use pca_support::PcaEnv;

fn decommission(env: &PcaEnv, dev: &str) -> serde_json::Value {
    let a = env
        .cmd()
        .args(["--json", "pca", "decommission", "--device-id", dev])
        .assert()
        .success();
    serde_json::from_str(&stdout_of(&a)).unwrap()
}

fn has_key(env: &PcaEnv, dev: &str) -> bool {
    env.objects_json()
        .to_string()
        .contains(&format!("\"device-{dev}\""))
}

/// The registry item of `dev` with sort key `sk`.
fn item(env: &PcaEnv, dev: &str, sk: &str) -> Option<std::collections::HashMap<String, String>> {
    env.table_items()
        .into_iter()
        .find(|i| i["pk"] == format!("DEVICE#{dev}") && i["sk"] == sk)
}

/// The end state: CURRENT revoked (with `reason`), marker DONE, no HSM key.
fn assert_decommissioned(env: &PcaEnv, dev: &str, reason: &str) {
    let cur = item(env, dev, "CURRENT").expect("CURRENT");
    assert_eq!(cur["status"], "REVOKED", "{dev}: {cur:?}");
    assert_eq!(cur["revocation_reason"], reason, "{dev}: {cur:?}");
    let m = item(env, dev, "DECOMMISSIONED").expect("marker");
    assert_eq!(m["state"], "DONE", "{dev}: {m:?}");
    assert!(!has_key(env, dev), "{dev}: the HSM key pair is gone");
}

#[test]
fn decommission_revokes_destroys_the_key_and_provision_refuses_until_recommission() {
    let env = PcaEnv::new();
    let v = env.provision("dd1");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    assert!(has_key(&env, "dd1"));
    let r = decommission(&env, "dd1");
    assert_eq!(r["revoked_serial"], serial.as_str(), "{r}");
    assert_eq!(r["key"]["destroyed"], 2, "{r}");
    assert_eq!(r["reason"], "CESSATION_OF_OPERATION", "{r}");
    assert_decommissioned(&env, "dd1", "CESSATION_OF_OPERATION");
    // The stand-in revoked it too (what a CRL would list).
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        1
    );
    // A rerun does nothing.
    let r = decommission(&env, "dd1");
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        1
    );
    // provision refuses the device, one line, nothing issued, no key made.
    let issued = env.issued_by_ca();
    let a = env.provision_cmd("dd1").assert().failure().code(1);
    let line = common::one_line_error(&a, "");
    assert!(
        line.contains("decommissioned") && line.contains("--recommission"),
        "{line}"
    );
    assert_eq!(env.issued_by_ca(), issued);
    assert!(!has_key(&env, "dd1"));
    // In a manifest too: the device fails, the others are issued.
    std::fs::write(env.path("fleet.csv"), "device_id\ndd1\ndd2\n").unwrap();
    let a = env
        .cmd()
        .args(["provision", "--ca-arn", env.ca(), "--manifest", "fleet.csv"])
        .assert()
        .failure()
        .code(1);
    assert!(
        stdout_of(&a).contains("issued 1, already present 0, failed 1"),
        "{}",
        stdout_of(&a)
    );
    // --recommission: a new key, a new certificate (generation 1), the marker gone.
    let a = env
        .provision_cmd("dd1")
        .arg("--json")
        .arg("--recommission")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["key"], "created", "{v}");
    assert_eq!(v["record"]["generation"], 1, "{v}");
    assert!(item(&env, "dd1", "DECOMMISSIONED").is_none());
    let (ok, msg) = env.openssl_verify(&env.path("dd1.cert.pem"), &env.path("dd1.chain.pem"));
    assert!(ok, "{msg}");
}

#[test]
fn decommission_of_a_device_generated_key_needs_no_hsm() {
    let env = PcaEnv::new();
    ec_csr(&env, "dc1", "P-256", "/CN=dc1", None);
    no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "dc1",
            "--csr",
            "dc1.csr",
        ])
        .assert()
        .success();
    let mut c = no_hsm_cmd(&env, &env.akid);
    c.env_remove("HSM_DEMO_MODULE");
    let a = c
        .args(["--json", "pca", "decommission", "--device-id", "dc1"])
        .args(["--reason", "key-compromise"])
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(r["key"], "not-looked-up", "{r}");
    assert_decommissioned(&env, "dc1", "KEY_COMPROMISE");
    // The key is compromised now: even --recommission with the same CSR is refused.
    let a = no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "dc1",
            "--csr",
            "dc1.csr",
        ])
        .arg("--recommission")
        .assert()
        .failure();
    assert!(common::one_line_error(&a, "").contains("key-compromise"));
    // An unknown device is refused, nothing written.
    let a = env
        .cmd()
        .args(["pca", "decommission", "--device-id", "nobody"])
        .assert()
        .failure();
    assert!(common::one_line_error(&a, "").contains("not in registry"));
    assert!(item(&env, "nobody", "DECOMMISSIONED").is_none());
}

/// One kill point: the stand-in holds `operation` at `stage`; `left` is what the kill must leave.
struct Point {
    name: &'static str,
    operation: &'static str,
    stage: &'static str,
    /// Held only once a request of this operation was answered.
    after: Option<&'static str>,
    /// (marker written, registry says REVOKED, key still on the token)
    left: (bool, bool, bool),
}

const POINTS: [Point; 5] = [
    Point {
        name: "marker creation sent",
        operation: "UpdateItem",
        stage: "request",
        after: None,
        left: (false, false, true),
    },
    Point {
        name: "marker written, revocation sent",
        operation: "RevokeCertificate",
        stage: "request",
        after: None,
        left: (true, false, true),
    },
    Point {
        name: "revoked at AWS, answer lost",
        operation: "RevokeCertificate",
        stage: "answer",
        after: None,
        left: (true, false, true),
    },
    Point {
        name: "revocation recorded, key not destroyed",
        operation: "TransactWriteItems",
        stage: "answer",
        after: None,
        left: (true, true, true),
    },
    Point {
        name: "key destroyed, marker not DONE",
        operation: "UpdateItem",
        stage: "request",
        after: Some("TransactWriteItems"),
        left: (true, true, false),
    },
];

#[test]
fn decommission_killed_at_each_step_then_rerun_finishes() {
    let env = PcaEnv::new();
    for (i, p) in POINTS.iter().enumerate() {
        let dev = format!("dk{i}");
        env.provision(&dev);
        standin::hold(&env.endpoint, &env.akid, p.operation, p.stage, p.after);
        let mut child = env
            .std_cmd()
            .args(["pca", "decommission", "--device-id", &dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = standin::wait_held(&env.endpoint, &env.akid, 5);
            if v["held"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{dev}: ended before '{}'",
                p.name
            );
            assert!(
                Instant::now() < deadline,
                "{dev}: '{}' never reached",
                p.name
            );
        }
        child.kill().unwrap();
        let _ = child.wait();
        let rel = standin::release(&env.endpoint, &env.akid, "drop");
        assert_eq!(rel["finished"], true, "{rel}");
        let marker = item(&env, &dev, "DECOMMISSIONED");
        let cur = item(&env, &dev, "CURRENT").unwrap();
        let left = (
            marker.is_some(),
            cur["status"] == "REVOKED",
            has_key(&env, &dev),
        );
        assert_eq!(
            left, p.left,
            "{dev}: the kill at '{}' left {left:?}",
            p.name
        );
        if let Some(m) = marker {
            assert_eq!(m["state"], "IN_PROGRESS", "{dev}");
            // Meanwhile provision refuses the device and names the way out.
            let a = env.provision_cmd(&dev).assert().failure();
            let line = common::one_line_error(&a, "");
            assert!(line.contains("rerun `hsm-demo pca decommission"), "{line}");
        }
        let r = decommission(&env, &dev);
        assert_eq!(r["changed"], true, "{r}");
        assert_decommissioned(&env, &dev, "CESSATION_OF_OPERATION");
    }
    // Every device: exactly one certificate, revoked once in the registry.
    assert_eq!(env.issued_by_ca(), POINTS.len());
}

#[test]
fn decommission_a_manifest_without_reading_its_csrs_and_rerun() {
    let env = PcaEnv::new();
    env.provision("mf1");
    env.provision("mf2");
    ec_csr(&env, "mc1", "P-256", "/CN=mc1", None);
    no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "mc1",
            "--csr",
            "mc1.csr",
        ])
        .assert()
        .success();
    std::fs::write(
        env.path("fleet.csv"),
        "device_id,csr\nmf1,\nmf2,\nmc1,mc1.csr\n",
    )
    .unwrap();
    // The CSR file is gone: decommissioning does not need it.
    std::fs::remove_file(env.path("mc1.csr")).unwrap();
    let a = env
        .cmd()
        .args(["--json", "pca", "decommission", "--manifest", "fleet.csv"])
        .assert()
        .success();
    let out = stdout_of(&a);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().all(|r| r["changed"] == true), "{out}");
    for d in ["mf1", "mf2", "mc1"] {
        assert_decommissioned(&env, d, "CESSATION_OF_OPERATION");
    }
    // A rerun has nothing to do; an unknown device fails alone, the others are untouched.
    std::fs::write(env.path("more.csv"), "device_id\nmf1\nghost\n").unwrap();
    let a = env
        .cmd()
        .args(["pca", "decommission", "--manifest", "more.csv"])
        .assert()
        .failure()
        .code(1);
    let err = stderr_of(&a);
    assert!(
        err.contains("device ghost: ") && err.contains("not in registry"),
        "{err}"
    );
    assert!(
        err.contains("error: 1 of 2 devices not decommissioned"),
        "{err}"
    );
    assert!(
        stdout_of(&a).contains("device mf1 was already decommissioned"),
        "{}",
        stdout_of(&a)
    );
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        3
    );
}
