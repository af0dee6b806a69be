//! Helpers shared by the renewal tests (`renew`, `pca expiring`, `pca metrics`).
#![allow(dead_code)]

use crate::common::standin;
use crate::common::stdout_of;
use crate::pca_support::PcaEnv;

/// `provision --validity <v> --out-dir <dir>` of one device (asserts success).
pub fn provision_for(env: &PcaEnv, dev: &str, validity: &str) {
    let dir = env.path(&format!("{dev}-g0"));
    std::fs::create_dir_all(&dir).unwrap();
    env.cmd()
        .args([
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            dev,
        ])
        .args(["--validity", validity, "--out-dir"])
        .arg(&dir)
        .assert()
        .success();
}

/// `--json renew <args>` (asserts success): every JSON line.
pub fn renew_json(env: &PcaEnv, args: &[&str]) -> Vec<serde_json::Value> {
    let a = env
        .cmd()
        .args(["--json", "renew", "--ca-arn", env.ca()])
        .args(args)
        .assert()
        .success();
    stdout_of(&a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The per-device lines of a batch run, by device id → status.
pub fn statuses(lines: &[serde_json::Value]) -> std::collections::BTreeMap<String, String> {
    lines
        .iter()
        .filter(|l| l.get("device_id").is_some())
        .map(|l| {
            (
                l["device_id"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Stand-in calls of this test's key: IssueCertificate, and every registry write.
pub fn issue_calls(env: &PcaEnv) -> u64 {
    standin::calls(&env.endpoint, &env.akid, "IssueCertificate")
}

/// Registry writes of this test's key (PutItem, UpdateItem, DeleteItem, TransactWriteItems).
pub fn writes(env: &PcaEnv) -> u64 {
    ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"]
        .iter()
        .map(|op| standin::calls(&env.endpoint, &env.akid, op))
        .sum()
}

/// The device's `CERT#` items (generation → status), read with the SDK.
pub fn history(env: &PcaEnv, dev: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = env
        .items_with_sk("CERT#")
        .into_iter()
        .filter(|i| i["device_id"] == dev)
        .map(|i| (i["generation"].parse().unwrap(), i["status"].clone()))
        .collect();
    v.sort();
    v
}

/// The device's CURRENT item.
pub fn current(env: &PcaEnv, dev: &str) -> std::collections::HashMap<String, String> {
    env.items_with_sk("CURRENT")
        .into_iter()
        .find(|i| i["device_id"] == dev)
        .unwrap_or_else(|| panic!("{dev}: no CURRENT"))
}

/// DER SubjectPublicKeyInfo of a PEM certificate file.
pub fn spki_of(path: &std::path::Path) -> Vec<u8> {
    hsm_demo::pca::csr::cert_facts(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .spki
}
