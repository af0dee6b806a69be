//! HSM-side scaling of batch provisioning (key generation + CSR signing per device): one process
//! with 1, 2, 4 worker threads (one session each) versus 2 and 4 processes with one session each,
//! on one SoftHSM2/kryoptic token. A measurement, not a pass/fail test: `#[ignore]`d, run with
//!
//!   cargo test --release --test batch_hsm_scaling -- --ignored --nocapture
//!
//! It prints one line per configuration (devices/s, transient errors retried, failures) and a
//! JSON line for scripts. It does assert that every device ended with exactly one key pair.
//! `BATCH_HSM_DEVICES` sets the devices per configuration (default 200).
//!
//! `one_key_pair_per_device_small` runs by default: the same pool with 4 threads and with 2
//! processes, on a few devices each, with the one-key-pair check and no failures allowed.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{TestToken, PIN};
use hsm_demo::hsm::module::Module;
use hsm_demo::pca::hsm_pool::HsmPool;
use hsm_demo::pca::ids::DeviceId;
use hsm_demo::pca::provision::DeviceRequest;
use secrecy::SecretString;

const CHILD_ENV: &str = "BATCH_HSM_SCALING_CHILD";

fn devices() -> usize {
    std::env::var("BATCH_HSM_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Runs `count` devices named `<prefix>-<i>` on a pool of `threads`; returns (ok, failed, retried).
fn run_pool(
    module_path: &str,
    token: &str,
    prefix: &str,
    count: usize,
    threads: usize,
) -> (usize, usize, u64) {
    let module = Arc::new(Module::load(Some(std::path::Path::new(module_path))).unwrap());
    let pin = SecretString::from(PIN.to_string());
    let pool = HsmPool::start(&module, Some(token), &pin, threads).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, failed) = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let pool = Arc::new(pool);
        for i in 0..count {
            let pool = pool.clone();
            let req = DeviceRequest::new(DeviceId::parse(&format!("{prefix}-{i}")).unwrap());
            // New devices (no registry item yet), disjoint per process.
            let binding = hsm_demo::pca::device_key::KeyBinding {
                own_id: hsm_demo::pca::device_key::intent_key_id(req.device.as_str(), 0, prefix),
                unsearched: true,
                ..Default::default()
            };
            set.spawn(async move { pool.csr(&req, &binding).await.map_err(|e| e.to_string()) });
        }
        let (mut ok, mut failed) = (0, 0);
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => {
                    eprintln!("device failed: {e}");
                    failed += 1
                }
            }
        }
        let retried = pool.retried();
        (ok, (failed, retried))
    });
    (ok, failed.0, failed.1)
}

#[test]
#[ignore = "measurement: cargo test --release --test batch_hsm_scaling -- --ignored --nocapture"]
fn hsm_scaling_threads_vs_processes() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        // Child process: "<module>|<token>|<prefix>|<count>"
        let p: Vec<&str> = spec.split('|').collect();
        let count: usize = p[3].parse().unwrap();
        // A process that cannot even open the token counts all its devices as failed.
        match std::panic::catch_unwind(|| run_pool(p[0], p[1], p[2], count, 1)) {
            Ok((ok, failed, retried)) => println!("CHILD-RESULT {ok} {failed} {retried}"),
            Err(_) => println!("CHILD-RESULT 0 {count} 0"),
        }
        return;
    }
    let n = devices();
    let kind = *common::ModuleKind::enabled().first().unwrap();
    let mut results = Vec::new();
    for threads in [1usize, 2, 4] {
        let tok = TestToken::with_kind(kind, "scale");
        for (k, v) in tok.module_env() {
            std::env::set_var(k, v);
        }
        let module = kind.module_path().display().to_string();
        let t0 = Instant::now();
        let (ok, failed, retried) = run_pool(&module, "scale", "t", n, threads);
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("threads {threads}: {ok} ok, {failed} failed, {retried} retried in {secs:.2}s");
        assert_eq!(ok + failed, n);
        let orphans = check_keys(&tok, n, true);
        results.push((
            "threads",
            threads,
            n as f64 / secs,
            retried,
            failed,
            orphans,
        ));
    }
    for procs in [2usize, 4] {
        let tok = TestToken::with_kind(kind, "scale");
        let module = kind.module_path().display().to_string();
        let per = n / procs;
        let exe = std::env::current_exe().unwrap();
        let t0 = Instant::now();
        let children: Vec<_> = (0..procs)
            .map(|p| {
                let mut c = std::process::Command::new(&exe);
                c.args([
                    "--ignored",
                    "--exact",
                    "hsm_scaling_threads_vs_processes",
                    "--nocapture",
                ])
                .env(CHILD_ENV, format!("{module}|scale|p{p}|{per}"))
                .stdout(std::process::Stdio::piped());
                for (k, v) in tok.module_env() {
                    c.env(k, v);
                }
                c.spawn().unwrap()
            })
            .collect();
        let (mut ok, mut failed, mut retried) = (0, 0, 0u64);
        for c in children {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("CHILD-RESULT"))
                .unwrap_or_else(|| panic!("child output: {text}"));
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            ok += v[0] as usize;
            failed += v[1] as usize;
            retried += v[2];
        }
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(ok + failed, per * procs);
        // Each device that succeeded has exactly one labelled pair (failed processes made none).
        let orphans = check_keys(&tok, ok, false);
        results.push((
            "processes",
            procs,
            (per * procs) as f64 / secs,
            retried,
            failed,
            orphans,
        ));
    }
    println!(
        "HSM scaling ({}; keygen P-256 + CSR per device, {n} devices per row)",
        kind.name()
    );
    for (mode, k, rate, retried, failed, orphans) in &results {
        println!("  {mode:9} {k}: {rate:8.1} devices/s  transient errors retried {retried}, devices failed {failed}, unlabelled debris objects {orphans}");
    }
    let json: Vec<_> = results
        .iter()
        .map(|(m, k, r, re, f, o)| serde_json::json!({"mode": m, "workers": k, "devices_per_s": r, "retried": re, "failed": f, "unlabelled_objects": o}))
        .collect();
    println!("JSON {}", serde_json::Value::Array(json));
}

#[test]
fn one_key_pair_per_device_small() {
    let kind = *common::ModuleKind::enabled().first().unwrap();
    let module = kind.module_path().display().to_string();
    // 4 worker threads (one session each) in this process.
    let tok = TestToken::with_kind(kind, "scale");
    for (k, v) in tok.module_env() {
        std::env::set_var(k, v);
    }
    let (ok, failed, _) = run_pool(&module, "scale", "t", 24, 4);
    assert_eq!((ok, failed), (24, 0));
    assert_eq!(check_keys(&tok, 24, true), 0, "unlabelled debris");
}

/// Two processes generating device keys on one SoftHSM2 token at once (the child mode of the
/// measurement above). Not run by default: on this project's loaded 2-core CI machine one child
/// was seen finding no initialised token at C_Initialize while the other generated keys, and the
/// other then failed all 8 of its devices — SoftHSM2's file object store read mid-write by a
/// second process. Several runners on one token is the scale-out work's open problem (design
/// §5.7); one token per runner is the supported layout.
#[test]
#[ignore = "several processes on one SoftHSM2 token are not reliable yet: run with --ignored"]
fn one_key_pair_per_device_two_processes_one_token() {
    let kind = *common::ModuleKind::enabled().first().unwrap();
    let module = kind.module_path().display().to_string();
    let tok = TestToken::with_kind(kind, "scale");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut c = std::process::Command::new(&exe);
            c.args([
                "--ignored",
                "--exact",
                "hsm_scaling_threads_vs_processes",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{module}|scale|p{p}|8"))
            .stdout(std::process::Stdio::piped());
            for (k, v) in tok.module_env() {
                c.env(k, v);
            }
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.starts_with("CHILD-RESULT 8 0 ")),
            "child output: {text}"
        );
    }
    assert_eq!(check_keys(&tok, 16, true), 0, "unlabelled debris");
}

/// No label has more than one key pair; returns the objects without a label (debris of a failed
/// key generation). With `strict`, also exactly `expect` private and public keys.
fn check_keys(tok: &TestToken, expect: usize, strict: bool) -> usize {
    let out = tok
        .tool("pkcs11-tool")
        .arg("--module")
        .arg(tok.kind.module_path())
        .args([
            "--token-label",
            "scale",
            "--login",
            "--pin",
            PIN,
            "--list-objects",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("label:"))
        .map(str::trim)
        .collect();
    labels.sort();
    let mut dups: Vec<&str> = labels
        .windows(3)
        .filter(|w| w[0] == w[2])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    assert!(
        dups.is_empty(),
        "labels with more than one key pair: {dups:?}"
    );
    if text.matches("Private Key Object").count() != expect
        || text.matches("Public Key Object").count() != expect
    {
        let mut counts = std::collections::HashMap::new();
        for l in &labels {
            *counts.entry(*l).or_insert(0) += 1;
        }
        let odd: Vec<_> = counts.iter().filter(|(_, c)| **c != 2).collect();
        eprintln!("odd labels: {odd:?}");
    }
    let unlabelled = labels.iter().filter(|l| l.is_empty()).count();
    if strict {
        let privs = text.matches("Private Key Object").count();
        let pubs = text.matches("Public Key Object").count();
        assert_eq!(privs, expect, "private keys");
        assert_eq!(pubs, expect, "public keys");
    }
    unlabelled
}
