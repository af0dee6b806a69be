//! Batch provisioning end to end (`provision --manifest`), real SoftHSM/kryoptic token + the
//! local AWS stand-in: a fleet manifest, rerun issues nothing, bad manifests refused before any
//! AWS call, failures don't stop the batch + `--retry-failed`, Ctrl-C, several processes on one
//! manifest.

mod batch_support;
mod common;
mod pca_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use batch_support::*;
use common::{stderr_of, stdout_of};
use pca_support::PcaEnv;

#[test]
fn manifest_end_to_end_then_rerun_issues_nothing() {
    let env = PcaEnv::new();
    let devs = ids("e2e", 60);
    let m = write_csv(&env, "fleet.csv", &devs);
    std::fs::create_dir(env.path("certs")).unwrap();
    let r = run_ok(&env, &m, &["--concurrency", "2", "--out-dir", "certs"]);
    assert_eq!(r.devices.len(), 60, "one JSON object per device");
    assert!(
        r.devices.iter().all(|d| d["status"] == "issued"),
        "{:?}",
        r.devices
    );
    let s = r.summary.expect("summary object");
    assert_eq!(s["issued"], 60);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["issue_calls"], 60);
    assert_exactly_one_each(&env, &devs);

    // The JSON serial is the registry's and the certificate file's.
    for d in r.devices.iter().step_by(7) {
        let id = d["device_id"].as_str().unwrap();
        let cert = env.path(&format!("certs/{id}.cert.pem"));
        let chain = env.path(&format!("certs/{id}.chain.pem"));
        let (ok, msg) = env.openssl_verify(&cert, &chain);
        assert!(ok, "{id}: {msg}");
        let out = env
            .token
            .tool("openssl")
            .args([
                "x509",
                "-noout",
                "-serial",
                "-pubkey",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(&cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let serial = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("serial=")
            .to_lowercase();
        let want = d["serial"]
            .as_str()
            .unwrap()
            .trim_start_matches('0')
            .to_string();
        assert_eq!(serial.trim_start_matches('0'), want, "{id}");
        // The certificate's key is the device's HSM key.
        let hsm = env
            .cmd()
            .args(["export-pubkey", "--label", &format!("device-{id}")])
            .assert()
            .success();
        let hsm_pem = stdout_of(&hsm);
        assert!(
            text.contains(hsm_pem.trim()),
            "{id}: certificate key is not the HSM key\n{text}\n{hsm_pem}"
        );
        // SANs from the manifest (every 4th device starting at 1 has DNS SANs).
        let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        if n % 4 == 1 {
            assert!(
                text.contains(&format!("DNS:alt-{id}.example.org")),
                "{id}: {text}"
            );
        }
    }

    // Rerun: nothing issued, everything already present.
    let before = common::standin::issue_calls(&env.endpoint, env.ca());
    let r2 = run_ok(&env, &m, &[]);
    assert!(r2.devices.iter().all(|d| d["status"] == "already-present"));
    let s2 = r2.summary.unwrap();
    assert_eq!(
        (s2["issued"].as_u64(), s2["already_present"].as_u64()),
        (Some(0), Some(60))
    );
    assert_eq!(
        common::standin::issue_calls(&env.endpoint, env.ca()),
        before
    );
    assert_exactly_one_each(&env, &devs);

    // Plain (non-JSON) output: a summary line on stdout.
    let a = env
        .cmd()
        .args(["provision", "--ca-arn", env.ca(), "--manifest"])
        .arg(&m)
        .assert()
        .success();
    assert!(
        stdout_of(&a).contains("60 devices in") && stdout_of(&a).contains("already present 60"),
        "{}",
        stdout_of(&a)
    );
}

#[test]
fn bad_manifests_exit_2_with_the_line_and_issue_nothing() {
    let env = PcaEnv::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "malformed.csv",
            "device_id,cn\nd-1,a\nd-2,b,extra\n",
            "line 3: 3 fields, the header has 2 columns",
        ),
        (
            "dup.csv",
            "device_id\nd-1\nd-2\n# c\nd-1\n",
            "line 5: duplicate device id 'd-1' (first on line 2)",
        ),
        (
            "tmpl.csv",
            "device_id,template\nd-1,client\nd-2,gold\n",
            "line 3: unknown template 'gold'",
        ),
        ("empty.csv", "", "is empty"),
        ("comments.jsonl", "# nothing\n\n# here\n", "has no devices"),
        (
            "header.csv",
            "device_id,cn,san_dns,san_uri,template\n",
            "has a header but no devices",
        ),
        (
            "json.jsonl",
            "{\"device_id\":\"d-1\"}\n{\"device_id\":\"d-2\",\"cn\":\n",
            "line 2: not a JSON object",
        ),
        (
            "badid.csv",
            "device_id\nd-1\nbad/id\n",
            "line 3: invalid device id",
        ),
        (
            "badsan.jsonl",
            "{\"device_id\":\"d-1\",\"san_uri\":[\"no-scheme\"]}\n",
            "line 1: device d-1: invalid san_uri",
        ),
    ];
    for (name, body, want) in cases {
        std::fs::write(env.path(name), body).unwrap();
        let a = env
            .cmd()
            .args(["provision", "--ca-arn", env.ca(), "--manifest", name])
            .assert()
            .code(2);
        let err = stderr_of(&a);
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.starts_with("error: manifest "), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
    }
    let a = env
        .cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "missing.csv",
        ])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("missing.csv"));
    // --retry-failed needs --manifest; --manifest excludes --device-id (checked with a manifest
    // that is valid on its own, so only the conflict can refuse it).
    std::fs::write(env.path("valid.csv"), "device_id\nd-valid\n").unwrap();
    env.cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "x",
            "--retry-failed",
        ])
        .assert()
        .code(2);
    let a = env
        .cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "x",
            "--manifest",
            "valid.csv",
        ])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("--device-id") && err.contains("--manifest"),
        "the conflict is named: {err}"
    );
    assert!(env.table_items().is_empty(), "nothing may be recorded");
    assert_eq!(env.issued_by_ca(), 0);
}

#[test]
fn failures_do_not_stop_the_batch_and_retry_failed_reruns_only_them() {
    let env = PcaEnv::new();
    let devs = ids("rf", 12);
    let m = write_csv(&env, "fleet.csv", &devs);
    // Two devices cannot be provisioned: two keys carry their label (ambiguous, never a guess).
    let bad = [devs[3].clone(), devs[8].clone()];
    for b in &bad {
        for _ in 0..2 {
            env.cmd()
                .args([
                    "generate-key",
                    "--label",
                    &format!("device-{b}"),
                    "--allow-duplicate-label",
                ])
                .assert()
                .success();
        }
    }
    let out = batch_cmd(&env, &m, &[]).output().unwrap();
    let r = parse(&out);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let s = r.summary.unwrap();
    assert_eq!(
        (s["issued"].as_u64(), s["failed"].as_u64()),
        (Some(10), Some(2))
    );
    let failed: Vec<&str> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2);
    for b in &bad {
        assert!(failed.contains(&b.as_str()), "{failed:?}");
    }
    assert!(
        s["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("ambiguous"),
        "{s}"
    );
    let last = r.stderr.trim_end().lines().last().unwrap().to_string();
    assert!(last.starts_with("error: 2 of 12 devices failed"), "{last}");
    let markers = env.items_with_sk("FAILED");
    assert_eq!(markers.len(), 2, "{markers:?}");

    // Retry without fixing: only the two are attempted, still failing; attempts counted.
    let out = batch_cmd(&env, &m, &["--retry-failed"]).output().unwrap();
    let r = parse(&out);
    assert_eq!(r.code, Some(1));
    let s = r.summary.unwrap();
    assert_eq!(
        (s["skipped"].as_u64(), s["failed"].as_u64()),
        (Some(10), Some(2))
    );
    assert!(env
        .items_with_sk("FAILED")
        .iter()
        .all(|i| i["attempts"] == "2"));

    // Fix the HSM (remove the duplicate keys), retry: the two are issued, the rest untouched.
    for b in &bad {
        remove_keys(&env, &format!("device-{b}"));
    }
    let calls = common::standin::issue_calls(&env.endpoint, env.ca());
    let r = run_ok(&env, &m, &["--retry-failed"]);
    let s = r.summary.unwrap();
    assert_eq!(
        (s["issued"].as_u64(), s["skipped"].as_u64()),
        (Some(2), Some(10))
    );
    assert_eq!(
        common::standin::issue_calls(&env.endpoint, env.ca()),
        calls + 2
    );
    assert_exactly_one_each(&env, &devs);
}

/// Deletes every key object labelled `label` (by id, via pkcs11-tool).
fn remove_keys(env: &PcaEnv, label: &str) {
    let v = env.objects_json();
    let mut ids = Vec::new();
    collect_ids(&v, label, &mut ids);
    assert!(!ids.is_empty(), "no objects labelled {label}: {v}");
    ids.sort();
    ids.dedup();
    for id in ids {
        for ty in ["privkey", "pubkey"] {
            env.pkcs11_tool(&["--delete-object", "--type", ty, "--id", &id]);
        }
    }
}

fn collect_ids(v: &serde_json::Value, label: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("label").and_then(|l| l.as_str()) == Some(label) {
                if let Some(id) = m.get("id").and_then(|i| i.as_str()) {
                    out.push(id.to_string());
                }
            }
            m.values().for_each(|x| collect_ids(x, label, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_ids(x, label, out)),
        _ => {}
    }
}

#[test]
fn ctrl_c_stops_cleanly_with_130_and_a_rerun_completes() {
    let env = PcaEnv::new();
    let devs = ids("int", 120);
    let m = write_csv(&env, "fleet.csv", &devs);
    let mut child = batch_cmd(&env, &m, &["--concurrency", "1", "--issue-tps", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once a few devices are done (synchronised on the output, not on time).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < 5 {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "batch ended early"
        );
        seen.push(line.clone());
    }
    sigint(child.id());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupt"), "{err}");
    let summary: serde_json::Value = rest
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .expect("summary after Ctrl-C");
    assert_eq!(summary["interrupted"], true);
    let done = summary["issued"].as_u64().unwrap();
    assert!((5..120).contains(&done), "{summary}");
    assert_eq!(
        summary["not_started"].as_u64().unwrap() + done,
        120,
        "{summary}"
    );
    // Nothing half-recorded: every intent is ISSUED (in-flight devices finished).
    assert!(
        env.items_with_sk("INTENT#")
            .iter()
            .all(|i| i["state"] == "ISSUED"),
        "intent left open after Ctrl-C"
    );
    let r = run_ok(&env, &m, &[]);
    let s = r.summary.unwrap();
    assert_eq!(s["already_present"].as_u64(), Some(done));
    assert_eq!(s["issued"].as_u64(), Some(120 - done));
    assert_exactly_one_each(&env, &devs);
}

#[test]
fn three_processes_share_one_manifest_and_issue_each_device_once() {
    let env = PcaEnv::new();
    let devs = ids("sc", 90);
    let m = write_csv(&env, "fleet.csv", &devs);
    let children: Vec<_> = (0..3)
        .map(|_| {
            batch_cmd(&env, &m, &["--concurrency", "1"])
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
    let mut calls = 0;
    for r in &runs {
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let s = r.summary.as_ref().unwrap();
        assert_eq!(s["failed"], 0, "{s}");
        issued += s["issued"].as_u64().unwrap();
        calls += s["issue_calls"].as_u64().unwrap();
    }
    assert_eq!(issued, 90, "each device issued by exactly one process");
    assert!(calls >= 90, "{calls}");
    // Work was shared: more than one process issued devices.
    let busy = runs
        .iter()
        .filter(|r| r.summary.as_ref().unwrap()["issued"].as_u64().unwrap() > 0)
        .count();
    assert!(busy >= 2, "only {busy} process did the work");
    assert_exactly_one_each(&env, &devs);
}

#[test]
fn a_global_fault_stops_the_batch_after_50_consecutive_failures() {
    let env = PcaEnv::new();
    let devs = ids("gf", 150);
    let m = write_csv(&env, "fleet.csv", &devs);
    // Every IssueCertificate is refused (a quota, terminal): a fault of the whole run, not of a
    // device. The batch must stop by itself instead of marking the whole fleet FAILED.
    common::standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"issue_limit_exceeded": true}),
    );
    let out = batch_cmd(&env, &m, &[]).output().unwrap();
    let r = parse(&out);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let s = r.summary.expect("summary object");
    let stopped = s["stopped"].as_str().unwrap_or_default();
    assert!(
        stopped.starts_with("stopped after 50 consecutive failures with no success")
            && stopped.contains("LimitExceededException"),
        "{s}"
    );
    let failed = s["failed"].as_u64().unwrap();
    let not_started = s["not_started"].as_u64().unwrap();
    assert_eq!(s["issued"], 0, "{s}");
    // At least the 50 that stopped it; the devices in flight then finish (and fail too); the
    // rest of the manifest is never started.
    assert!(failed >= 50, "{s}");
    assert!(not_started > 0, "the batch ran to the end: {s}");
    assert_eq!(failed + not_started, 150, "{s}");
    assert_eq!(
        r.devices.len() as u64,
        failed,
        "one JSON object per finished device"
    );
    // One IssueCertificate per failed device: the quota error is not retried.
    assert_eq!(
        common::standin::issue_calls(&env.endpoint, env.ca()),
        failed
    );
    assert_eq!(env.items_with_sk("FAILED").len() as u64, failed);
}
