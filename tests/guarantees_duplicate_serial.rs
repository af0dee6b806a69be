//! Serials are unique per CA in the registry: when the CA hands out a serial it already issued
//! (the stand-in's `reissue_serial` switch, a broken CA), the registry refuses the second record
//! (the SERIAL# marker's condition) and the device is left without a certificate: no CURRENT or
//! CERT# item, no ISSUED intent, no certificate file, and the first device's records unchanged.

mod common;
mod pca_support;

use common::{standin, stderr_of};
use pca_support::PcaEnv;

fn device_items(env: &PcaEnv, device: &str) -> Vec<std::collections::HashMap<String, String>> {
    let pk = format!("DEVICE#{device}");
    env.table_items()
        .into_iter()
        .filter(|i| i.get("pk") == Some(&pk))
        .collect()
}

fn sks(items: &[std::collections::HashMap<String, String>]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| i["sk"].clone()).collect();
    v.sort();
    v
}

/// `dev-b` is refused with one `error:` line naming the serial's owner, and left clean.
fn assert_refused_and_clean(env: &PcaEnv, serial: &str) {
    let a = env.provision_cmd("dev-b").assert().failure();
    let err = stderr_of(&a);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(serial) && err.contains("dev-a"),
        "the refusal names the serial and its device: {err}"
    );
    // The serial's marker still names dev-a: exactly one marker per (serial, CA).
    let markers = env.items_with_sk("CA#");
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(markers[0]["serial"], serial);
    assert_eq!(markers[0]["device_id"], "dev-a");
    // dev-b: no certificate recorded, and its intent not marked ISSUED.
    let items = device_items(env, "dev-b");
    assert!(
        items
            .iter()
            .all(|i| i["sk"] != "CURRENT" && !i["sk"].starts_with("CERT#")),
        "dev-b has a certificate record: {items:?}"
    );
    for i in items.iter().filter(|i| i["sk"].starts_with("INTENT#")) {
        assert_ne!(i.get("state").map(String::as_str), Some("ISSUED"), "{i:?}");
    }
    assert!(!env.path("dev-b.cert.pem").exists());
    assert!(!env.path("dev-b.chain.pem").exists());
}

#[test]
fn a_serial_the_ca_reissues_is_refused_and_the_device_left_clean() {
    let env = PcaEnv::new();
    let v = env.provision("dev-a");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    let dev_a = device_items(&env, "dev-a");

    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"reissue_serial": true}),
    );
    assert_refused_and_clean(&env, &serial);
    // AWS did issue the duplicate (that is what the registry refused).
    assert_eq!(env.issued_by_ca(), 2);
    // dev-a's records are untouched.
    assert_eq!(device_items(&env, "dev-a"), dev_a);
    assert_eq!(env.show("dev-a")["current"]["serial"], serial.as_str());

    // A rerun gets the same refusal and leaves the same state; dev-a's certificate stays.
    let before = sks(&device_items(&env, "dev-b"));
    assert_refused_and_clean(&env, &serial);
    assert_eq!(sks(&device_items(&env, "dev-b")), before);
    assert_eq!(device_items(&env, "dev-a"), dev_a);
}
