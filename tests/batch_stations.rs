//! Runners on several hosts: each station has its own HSM token (its own SoftHSM2 store, as a
//! factory line per station would have its own HSM or partition) and all share the registry, the
//! CA and the account's quota. Three such runners on one manifest: every device is issued exactly
//! once (counted at the stand-in), its key pair lives on exactly one station's token, its
//! certificate certifies that key, and a rerun on any station changes nothing.

mod batch_support;
mod common;
mod pca_support;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use batch_support::{assert_exactly_one_each, ids, parse, write_csv, Run};
use common::TestToken;
use pca_support::PcaEnv;

/// `provision --manifest` on `station`'s token, with the shared AWS set-up of `env`.
fn station_cmd(env: &PcaEnv, station: &TestToken, manifest: &std::path::Path) -> Command {
    let mut c = env.std_cmd();
    for (k, v) in station.module_env() {
        c.env(k, v);
    }
    c.env("HSM_DEMO_MODULE", station.kind.module_path())
        .env("HSM_DEMO_TOKEN", &station.label)
        .env("HSM_DEMO_PIN", &station.pin)
        .current_dir(station.dir.path())
        .args(["--json", "provision", "--ca-arn", env.ca(), "--manifest"])
        .arg(manifest)
        .args(["--concurrency", "1"]);
    c
}

/// Device key labels (`device-<id>`) on a station's token: private keys only.
fn device_keys(station: &TestToken) -> Vec<String> {
    let out = station
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["objects"].as_array())
        .flatten()
        .filter(|o| o["class"] == "private-key")
        .filter_map(|o| {
            o["label"]
                .as_str()?
                .strip_prefix("device-")
                .map(str::to_string)
        })
        .collect()
}

/// The public key (PEM) of `device-<id>` on a station's token.
fn hsm_public_key(station: &TestToken, id: &str) -> String {
    let out = station
        .cmd()
        .args(["export-pubkey", "--label", &format!("device-{id}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{id}: export-pubkey failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The public key (PEM) of a certificate, read by openssl.
fn cert_public_key(station: &TestToken, cert_pem: &str) -> String {
    let f = station.path("cert-under-test.pem");
    std::fs::write(&f, cert_pem).unwrap();
    let out = station
        .tool("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn three_stations_with_their_own_tokens_share_one_manifest() {
    let env = PcaEnv::new();
    let stations = [
        TestToken::with_kind(env.token.kind, "station-a"),
        TestToken::with_kind(env.token.kind, "station-b"),
        TestToken::with_kind(env.token.kind, "station-c"),
    ];
    let devs = ids("st", 60);
    let m = write_csv(&env, "fleet.csv", &devs);
    let children: Vec<_> = stations
        .iter()
        .map(|s| {
            station_cmd(&env, s, &m)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| parse(&c.wait_with_output().unwrap()))
        .collect();
    let mut issued = 0;
    for r in &runs {
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let s = r.summary.as_ref().unwrap();
        assert_eq!(s["failed"], 0, "{s}");
        issued += s["issued"].as_u64().unwrap();
    }
    assert_eq!(issued, 60, "each device issued by exactly one station");
    assert_exactly_one_each(&env, &devs);

    // Each device's key on exactly one station, the one whose run issued it.
    let mut holder: HashMap<String, usize> = HashMap::new();
    for (i, s) in stations.iter().enumerate() {
        for d in device_keys(s) {
            assert!(
                holder.insert(d.clone(), i).is_none(),
                "{d}: a key on two stations"
            );
        }
    }
    let mut held: Vec<&String> = holder.keys().collect();
    held.sort();
    let mut want: Vec<&String> = devs.iter().collect();
    want.sort();
    assert_eq!(held, want, "one key per device, no orphan keys");
    // Each certificate certifies the key its holder station has. (The station that reports a
    // device "issued" is usually the holder; it may also be another station that completed the
    // holder's issuance after IssueCertificate returned, which any runner may do.)
    for it in env.items_with_sk("CERT#") {
        let id = &it["device_id"];
        let station = &stations[holder[id]];
        assert_eq!(
            cert_public_key(station, &it["cert_pem"]),
            hsm_public_key(station, id),
            "{id}: the certificate does not certify the key on its station"
        );
    }

    // A rerun on any station: everything already present, no new key, no new certificate.
    let before = env.issued_by_ca();
    let out = station_cmd(&env, &stations[1], &m).output().unwrap();
    let r = parse(&out);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.summary.as_ref().unwrap()["already_present"], 60);
    assert_eq!(env.issued_by_ca(), before);
    let total: usize = stations.iter().map(|s| device_keys(s).len()).sum();
    assert_eq!(total, 60);
}
