//! Ctrl-C twice during `provision --manifest`: the second interrupt ends the process with status
//! 130 — never a crash inside the PKCS#11 module — and leaves no half-made (unlabelled) key
//! object on the token. Synchronised on the process's own output, never on sleeps: the first
//! SIGINT after the first device is reported, the second after the "interrupt: no new devices"
//! line.

mod batch_support;
mod common;
mod pca_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use batch_support::{batch_cmd, ids, sigint, write_csv};
use common::ModuleKind;
use pca_support::PcaEnv;

const RUNS: usize = 20;

/// Objects on the token without a CKA_LABEL, read with pkcs11-tool (not hsm-demo): the header
/// line of each object and whether a `label:` line follows it.
fn unlabelled_objects(env: &PcaEnv) -> (usize, Vec<String>) {
    let t = &env.token;
    let mut c = t.tool("pkcs11-tool");
    c.arg("--module").arg(t.kind.module_path()).args([
        "--token-label",
        &t.label,
        "--login",
        "--pin",
        &t.pin,
        "--list-objects",
    ]);
    let out = c.output().expect("pkcs11-tool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut objects: Vec<(String, bool)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            objects.push((line.to_string(), false));
        } else if line.trim_start().starts_with("label:") {
            if let Some(o) = objects.last_mut() {
                o.1 = true;
            }
        }
    }
    let total = objects.len();
    (
        total,
        objects
            .into_iter()
            .filter(|(_, labelled)| !labelled)
            .map(|(h, _)| h)
            .collect(),
    )
}

#[test]
fn a_second_ctrl_c_exits_130_every_time_and_leaves_no_unlabelled_object() {
    let env = PcaEnv::new();
    if env.token.kind != ModuleKind::SoftHsm {
        eprintln!("skipped: this test drives SoftHSM2");
        return;
    }
    let devs = ids("int", 3000);
    let m = write_csv(&env, "fleet.csv", &devs);
    let mut codes = Vec::new();
    for run in 0..RUNS {
        let mut child = batch_cmd(&env, &m, &["--concurrency", "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<(bool, String)>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        let t_out = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx2.send((true, l));
            }
        });
        let t_err = std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send((false, l));
            }
        });
        let mut stderr_seen = Vec::new();
        // 1. A device is reported: the workers are generating keys.
        loop {
            let (is_out, l) = rx
                .recv()
                .unwrap_or_else(|_| panic!("run {run}: ended before any device: {stderr_seen:?}"));
            if is_out {
                break;
            }
            stderr_seen.push(l);
        }
        sigint(pid);
        // 2. The first interrupt is acknowledged; devices in flight still get keys.
        loop {
            let (is_out, l) = rx
                .recv()
                .unwrap_or_else(|_| panic!("run {run}: no interrupt line: {stderr_seen:?}"));
            if !is_out {
                let ack = l.starts_with("interrupt: no new devices");
                stderr_seen.push(l);
                if ack {
                    break;
                }
            }
        }
        sigint(pid);
        let status = child.wait().unwrap();
        t_out.join().unwrap();
        t_err.join().unwrap();
        for (is_out, l) in rx.try_iter() {
            if !is_out {
                stderr_seen.push(l);
            }
        }
        assert_eq!(
            status.code(),
            Some(130),
            "run {run}: {status:?} (a signal means a crash); stderr: {stderr_seen:?}"
        );
        codes.push(status.code());
    }
    assert_eq!(codes.len(), RUNS);
    let (total, unlabelled) = unlabelled_objects(&env);
    assert!(total > 0, "pkcs11-tool listed no objects at all");
    assert!(
        unlabelled.is_empty(),
        "{} unlabelled objects of {total} on the token: {unlabelled:?}",
        unlabelled.len()
    );
    eprintln!("{RUNS} double interrupts: all exit 130; {total} objects, none unlabelled");
}
