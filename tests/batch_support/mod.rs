//! Shared helpers for the batch provisioning tests (`provision --manifest`): manifests, runs,
//! and the registry/stand-in checks "every device exactly one certificate, every serial recorded,
//! no dangling intent".
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pca_support::PcaEnv;

/// Device ids `<prefix>-0000` … for `n` devices.
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// A CSV manifest for `ids` in the env's scratch dir: a comment, a blank line, the header, and
/// a mix of SANs and templates.
pub fn write_csv(env: &PcaEnv, name: &str, ids: &[String]) -> PathBuf {
    let mut body = String::from("# fleet for a test\n\ndevice_id,cn,san_dns,san_uri,template\n");
    for (i, id) in ids.iter().enumerate() {
        let line = match i % 4 {
            0 => format!("{id},,,,\n"),
            1 => format!("{id},{id}.example.org,{id}.example.org;alt-{id}.example.org,,server\n"),
            2 => format!("{id},,,spiffe://example.org/device/{id},client\n"),
            _ => format!("{id},\"{id}\",,,plain\n"),
        };
        body.push_str(&line);
    }
    let p = env.path(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// `provision --manifest FILE --json` + extra args as a std Command (for spawning / killing).
pub fn batch_cmd(env: &PcaEnv, manifest: &PathBuf, extra: &[&str]) -> Command {
    let mut c = env.std_cmd();
    c.args(["--json", "provision", "--ca-arn", env.ca(), "--manifest"])
        .arg(manifest)
        .args(extra);
    c
}

/// Parsed `--json` output: per-device objects and the summary (if printed).
pub struct Run {
    pub code: Option<i32>,
    pub devices: Vec<serde_json::Value>,
    pub summary: Option<serde_json::Value>,
    pub stderr: String,
}

pub fn parse(out: &Output) -> Run {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut devices = Vec::new();
    let mut summary = None;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        if let Some(s) = v.get("summary") {
            summary = Some(s.clone());
        } else {
            devices.push(v);
        }
    }
    Run {
        code: out.status.code(),
        devices,
        summary,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the batch to completion and asserts exit 0.
pub fn run_ok(env: &PcaEnv, manifest: &PathBuf, extra: &[&str]) -> Run {
    let out = batch_cmd(env, manifest, extra)
        .output()
        .expect("run hsm-demo");
    let r = parse(&out);
    assert_eq!(r.code, Some(0), "batch failed: {}", r.stderr);
    r
}

/// Every device: exactly one serial marker, one CERT#, CURRENT ISSUED, no intent other than
/// ISSUED ones; no FAILED markers; the stand-in issued exactly one certificate per device.
pub fn assert_exactly_one_each(env: &PcaEnv, devices: &[String]) {
    let items = env.table_items();
    let mut per: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for it in &items {
        let (Some(d), Some(sk)) = (it.get("device_id"), it.get("sk")) else {
            continue;
        };
        let kind = if sk.starts_with("CA#") {
            "marker"
        } else if sk.starts_with("CERT#") {
            "cert"
        } else if sk == "CURRENT" {
            assert_eq!(it["status"], "ISSUED", "{d}: CURRENT not ISSUED");
            "current"
        } else if sk.starts_with("INTENT#") {
            assert_eq!(it["state"], "ISSUED", "{d}: dangling intent {it:?}");
            "intent"
        } else if sk == "FAILED" {
            panic!("{d}: FAILED marker left: {it:?}");
        } else {
            "other"
        };
        *per.entry(d.as_str()).or_default().entry(kind).or_default() += 1;
    }
    for d in devices {
        let m = per
            .get(d.as_str())
            .unwrap_or_else(|| panic!("{d}: nothing recorded"));
        for k in ["marker", "cert", "current", "intent"] {
            assert_eq!(m.get(k).copied().unwrap_or(0), 1, "{d}: {k} items: {m:?}");
        }
    }
    assert_eq!(
        per.len(),
        devices.len(),
        "devices recorded that are not in the manifest"
    );
    // Serials are unique across the table.
    let mut serials: Vec<&String> = items
        .iter()
        .filter(|i| i.get("sk").is_some_and(|s| s.starts_with("CA#")))
        .map(|i| &i["serial"])
        .collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), devices.len(), "serial markers");
    assert_eq!(
        env.issued_by_ca(),
        devices.len(),
        "the stand-in issued a different number of certificates than there are devices"
    );
}

/// Sends SIGINT to a child (the `kill` utility; no libc in the test deps).
pub fn sigint(pid: u32) {
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

const DEVICES: usize = 200;
const TRIALS: usize = 20;

/// Runs `TRIALS` batches of the same manifest, each killed with SIGKILL at a random moment, then
/// reruns to completion (and a `--retry-failed` pass, which clears FAILED markers that devices
/// failed by faults left before a later run provisioned them).
pub fn kill_trials_then_rerun(env: &PcaEnv, prefix: &str) {
    let devs = ids(prefix, DEVICES);
    let m = write_csv(env, "fleet.csv", &devs);
    let mut killed = 0;
    let mut finished_early = 0;
    let t_trials = Instant::now();
    let trials: usize = std::env::var("BATCH_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TRIALS);
    for _ in 0..trials {
        let mut child = batch_cmd(env, &m, &["--concurrency", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // The random moment of the kill (any moment must be survivable; not a synchronisation).
        let at = Duration::from_millis(rand::random_range(150..=1500));
        let t0 = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                finished_early += 1;
                break;
            }
            if t0.elapsed() >= at {
                child.kill().expect("SIGKILL");
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
    }
    eprintln!(
        "{killed} killed, {finished_early} finished, trials took {:.1} s",
        t_trials.elapsed().as_secs_f64()
    );
    assert!(
        killed >= trials / 2,
        "only {killed} of {trials} runs were killed mid-flight ({finished_early} finished)"
    );
    // Rerun to completion (faults may fail a few devices: their rerun is the retry).
    let mut last = None;
    for _ in 0..3 {
        let out = batch_cmd(env, &m, &["--concurrency", "2"])
            .output()
            .unwrap();
        let r = parse(&out);
        let s = r
            .summary
            .clone()
            .unwrap_or_else(|| panic!("no summary: {}", r.stderr));
        let done = s["issued"].as_u64().unwrap() + s["already_present"].as_u64().unwrap();
        eprintln!(
            "rerun: issued {} already present {} failed {} in {:.1} s",
            s["issued"],
            s["already_present"],
            s["failed"],
            s["elapsed_s"].as_f64().unwrap_or(0.0)
        );
        last = Some(s);
        if r.code == Some(0) {
            assert_eq!(done, DEVICES as u64);
            break;
        }
    }
    let s = last.unwrap();
    assert_eq!(s["failed"], 0, "devices still failing after reruns: {s}");
    let r = run_ok(env, &m, &["--retry-failed"]);
    let s = r.summary.unwrap();
    assert_eq!(s["issued"], 0, "{s}");
    assert_exactly_one_each(env, &devs);
}
