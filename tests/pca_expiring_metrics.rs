//! `pca expiring` (soonest first, expired included, `--fail-if-any` exit 3, `--ca-arn` filter)
//! and `pca metrics` (Prometheus text, checked against the registry read independently).

mod common;
mod pca_support;
mod renew_support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::stdout_of;
use pca_support::PcaEnv;
use renew_support::*;

/// Puts raw items (an expired CURRENT certificate, an open intent, a FAILED marker) that a real
/// fleet would hold after time passed or a crash: the commands only read the registry.
fn put_items(env: &PcaEnv, items: Vec<Vec<(&str, &str)>>) {
    let conf = common::standin::sdk_config(&env.endpoint);
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for it in items {
        let mut req = ddb.put_item().table_name(&env.table);
        for (k, v) in it {
            let v = if k == "generation" {
                AttributeValue::N(v.into())
            } else {
                AttributeValue::S(v.into())
            };
            req = req.item(k, v);
        }
        rt.block_on(req.send()).expect("put_item");
    }
}

fn fleet(env: &PcaEnv) {
    provision_for(env, "exp-2h", "2h");
    provision_for(env, "exp-1h", "1h");
    provision_for(env, "exp-30d", "30d");
    provision_for(env, "exp-rev", "1h");
    let serial = current(env, "exp-rev")["serial"].clone();
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "superseded",
        ])
        .assert()
        .success();
    put_items(
        env,
        vec![
            vec![
                ("pk", "DEVICE#exp-old"),
                ("sk", "CURRENT"),
                ("device_id", "exp-old"),
                ("generation", "0"),
                ("serial", "0abc"),
                ("ca_arn", env.ca()),
                ("cert_arn", "arn:old"),
                ("status", "ISSUED"),
                ("not_before", "2020-01-01T00:00:00Z"),
                ("not_after", "2020-02-01T00:00:00Z"),
                ("issued_at", "2020-01-01T00:00:00Z"),
            ],
            vec![
                ("pk", "DEVICE#exp-open"),
                ("sk", "INTENT#000000"),
                ("device_id", "exp-open"),
                ("state", "PENDING"),
            ],
            vec![
                ("pk", "DEVICE#exp-fail"),
                ("sk", "FAILED"),
                ("device_id", "exp-fail"),
            ],
        ],
    );
}

#[test]
fn expiring_lists_soonest_first_with_expired_and_fails_if_any_with_3() {
    let env = PcaEnv::new();
    fleet(&env);
    let a = env
        .cmd()
        .args(["--json", "pca", "expiring", "--within", "3h"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["device_id"].as_str().unwrap())
        .collect();
    // Revoked and 30-day certificates are not listed; the expired one comes first.
    assert_eq!(ids, ["exp-old", "exp-1h", "exp-2h"], "{v}");
    assert_eq!(v[0]["expired"], true);
    assert_eq!(v[1]["expired"], false);

    // --fail-if-any: exit 3 with the list printed; an empty list exits 0.
    let a = env
        .cmd()
        .args(["pca", "expiring", "--within", "3h", "--fail-if-any"])
        .assert()
        .code(3);
    let text = stdout_of(&a);
    assert!(
        text.lines().next().unwrap().starts_with("exp-old\t"),
        "{text}"
    );
    let other = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-0000-0000-000000000000";
    env.cmd()
        .args([
            "pca",
            "expiring",
            "--within",
            "3h",
            "--fail-if-any",
            "--ca-arn",
            other,
        ])
        .assert()
        .success();
    env.cmd()
        .args(["pca", "expiring", "--within", "3x"])
        .assert()
        .code(2);
}

/// `name{labels}` → value of every sample line.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_match_the_registry() {
    let env = PcaEnv::new();
    fleet(&env);
    // One renewal, so that a SUPERSEDED certificate exists.
    renew_json(&env, &["--device-id", "exp-30d", "--force"]);
    let a = env.cmd().args(["pca", "metrics"]).assert().success();
    let text = stdout_of(&a);
    for l in text.lines().filter(|l| l.starts_with("# TYPE")) {
        assert!(l.ends_with(" gauge"), "{l}");
    }
    let m = samples(&text);

    // The registry, read independently.
    let items = env.table_items();
    let count = |sk: &str, st: &str| {
        items
            .iter()
            .filter(|i| i["sk"].starts_with(sk) && i.get("status").map(String::as_str) == Some(st))
            .count() as f64
    };
    for st in ["ISSUED", "SUPERSEDED", "REVOKED"] {
        let key = format!("{{status=\"{}\"}}", st.to_lowercase());
        assert_eq!(
            m[&format!("hsm_demo_certificates{key}")],
            count("CERT#", st),
            "{st}\n{text}"
        );
        assert_eq!(
            m[&format!("hsm_demo_devices{key}")],
            count("CURRENT", st),
            "{st}\n{text}"
        );
    }
    assert_eq!(m["hsm_demo_certificates{status=\"superseded\"}"], 1.0);
    // exp-1h and exp-2h end within 7 days; exp-30d's renewal (30 days) within 30; exp-old expired.
    assert_eq!(
        m["hsm_demo_certificates_expiring{within=\"7d\"}"], 2.0,
        "{text}"
    );
    assert_eq!(
        m["hsm_demo_certificates_expiring{within=\"30d\"}"], 3.0,
        "{text}"
    );
    assert_eq!(m["hsm_demo_certificates_expired"], 1.0);
    assert_eq!(m["hsm_demo_open_intents"], 1.0);
    assert_eq!(m["hsm_demo_failed_markers"], 1.0);
    let earliest = time::OffsetDateTime::parse(
        "2020-02-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp() as f64;
    assert_eq!(m["hsm_demo_earliest_not_after_timestamp_seconds"], earliest);
    assert_eq!(m["hsm_demo_registry_items_scanned"], items.len() as f64);
}

/// Measurement (ignored; `cargo test --test pca_expiring_metrics -- --ignored --nocapture`): a
/// registry of 10,000 devices, each a CURRENT item and a CERT# item of a real certificate's size
/// (3.5 KB), then the time of `pca expiring` and `pca metrics` (one Scan each) against the
/// stand-in. Only a handful of devices end within the window, so the time is the Scan's.
#[test]
#[ignore]
fn expiring_over_10000_devices_measured() {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    const DEVICES: usize = 10_000;
    let env = PcaEnv::new();
    let conf = common::standin::sdk_config(&env.endpoint);
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pem = "A".repeat(3_000);
    let s = |v: &str| AttributeValue::S(v.to_string());
    let t0 = std::time::Instant::now();
    let mut batch = Vec::new();
    for i in 0..DEVICES {
        let id = format!("bench-{i:05}");
        // Every 1,000th device ends within a day; the rest in 25 days.
        let na = if i % 1000 == 0 {
            "2026-01-01T00:00:00Z"
        } else {
            "2099-01-01T00:00:00Z"
        };
        for sk in ["CURRENT", "CERT#000000"] {
            let mut it = std::collections::HashMap::new();
            for (k, v) in [
                ("pk", format!("DEVICE#{id}")),
                ("sk", sk.to_string()),
                ("device_id", id.clone()),
                ("serial", format!("{i:08x}")),
                ("ca_arn", env.ca().to_string()),
                ("cert_arn", format!("{}/certificate/{i:032x}", env.ca())),
                ("status", "ISSUED".into()),
                ("not_before", "2025-12-01T00:00:00Z".into()),
                ("not_after", na.into()),
                ("issued_at", "2025-12-01T00:00:00Z".into()),
                ("token", format!("{i:032x}")),
            ] {
                it.insert(k.to_string(), s(&v));
            }
            it.insert("generation".into(), AttributeValue::N("0".into()));
            if sk != "CURRENT" {
                it.insert("cert_pem".into(), s(&pem));
            }
            batch.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(it)).build().unwrap())
                    .build(),
            );
            if batch.len() == 25 {
                let req = std::mem::take(&mut batch);
                rt.block_on(ddb.batch_write_item().request_items(&env.table, req).send())
                    .expect("batch_write_item");
            }
        }
    }
    eprintln!(
        "loaded {} items in {:.1} s",
        2 * DEVICES,
        t0.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    let a = env
        .cmd()
        .args(["--json", "pca", "expiring", "--within", "7d"])
        .assert()
        .success();
    let expiring = t.elapsed();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), DEVICES / 1000);
    let t = std::time::Instant::now();
    env.cmd().args(["pca", "metrics"]).assert().success();
    let metrics = t.elapsed();
    let scans = common::standin::calls(&env.endpoint, &env.akid, "Scan");
    eprintln!(
        "{DEVICES} devices: pca expiring {:.2} s, pca metrics {:.2} s, {scans} Scan pages in all",
        expiring.as_secs_f64(),
        metrics.as_secs_f64()
    );
}
