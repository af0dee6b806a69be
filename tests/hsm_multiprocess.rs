//! Several hsm-demo processes on ONE token at once (SoftHSM's file object store
//! re-reads token files another process is rewriting, which was seen failing C_GetTokenInfo,
//! C_FindObjects, C_Sign and key generation with CKR_GENERAL_ERROR / CKR_DEVICE_ERROR).
//!
//! K worker threads each run R rounds of separate hsm-demo processes doing what `provision` does:
//! token selection + login, `generate-key` with a distinct label (the duplicate-label check, the
//! key generation, the read-back of the public key), then `sign --batch` (find key by label, many
//! C_Sign). Every process must succeed, and afterwards every label must exist exactly once (one
//! private + one public key) with no stray objects. Failures are tallied by `C_Xxx: CKR_…` so a
//! regression prints which calls failed and how often.
//!
//! A second test races K processes generating the SAME label: exactly one must win, the others must
//! be refused with the one-line "already exists" error, and exactly one key pair must remain.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};

use common::{ModuleKind, TestToken};

/// Concurrent processes.
const WORKERS: usize = 4;
/// Rounds per worker (each round = one generate-key process + one sign process).
const ROUNDS: usize = 6;
/// Messages signed per `sign --batch` process.
const SIGNS: usize = 60;

/// The `C_Xxx failed: CKR_…` part of an error line, or the first words of any other error.
fn failure_kind(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(stderr)
        .trim();
    if let Some(i) = line.find("C_") {
        let rest = &line[i..];
        let mut parts = rest.splitn(3, ": ");
        let call = parts
            .next()
            .unwrap_or("")
            .trim_end_matches(" failed")
            .to_string();
        let code = parts.next().unwrap_or("").to_string();
        format!("{call}: {code}")
    } else {
        line.chars().take(90).collect()
    }
}

/// Objects on the token: label → number of objects (private + public) with that label.
fn labels_on_token(tok: &TestToken) -> BTreeMap<String, usize> {
    let out = tok
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "list-slots: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut m = BTreeMap::new();
    for slot in v["slots"].as_array().unwrap() {
        if slot["token"]["label"] != tok.label.as_str() {
            continue;
        }
        for o in slot["objects"].as_array().into_iter().flatten() {
            *m.entry(o["label"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    m
}

#[derive(Default)]
struct Tally {
    processes: usize,
    failures: BTreeMap<String, usize>,
    first_errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, out: &std::process::Output) {
        self.processes += 1;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            *self.failures.entry(failure_kind(&err)).or_insert(0) += 1;
            if self.first_errors.len() < 5 {
                self.first_errors.push(format!("{what}: {}", err.trim()));
            }
        }
    }
}

fn stress(kind: ModuleKind) {
    let tok = Arc::new(TestToken::with_kind(kind, "pca"));
    let batch = tok.path("messages.txt");
    let body: String = (0..SIGNS).map(|i| format!("message {i}\n")).collect();
    std::fs::write(&batch, body).unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (tok, tally, start, batch) =
                (tok.clone(), tally.clone(), start.clone(), batch.clone());
            std::thread::spawn(move || {
                start.wait();
                for r in 0..ROUNDS {
                    let label = format!("mp-w{w}-r{r}");
                    let out = tok
                        .cmd()
                        .args(["generate-key", "--label", &label])
                        .output()
                        .unwrap();
                    let keygen_ok = out.status.success();
                    tally
                        .lock()
                        .unwrap()
                        .record(&format!("generate-key {label}"), &out);
                    if !keygen_ok {
                        continue;
                    }
                    let out = tok
                        .cmd()
                        .args(["sign", "--label", &label, "--batch"])
                        .arg(&batch)
                        .output()
                        .unwrap();
                    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
                    let mut t = tally.lock().unwrap();
                    t.record(&format!("sign {label}"), &out);
                    if out.status.success() && lines != SIGNS {
                        t.first_errors.push(format!(
                            "sign {label}: {lines} signatures for {SIGNS} lines"
                        ));
                        *t.failures.entry("short batch".into()).or_insert(0) += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let t = tally.lock().unwrap();
    let failed: usize = t.failures.values().sum();
    eprintln!(
        "[{}] {WORKERS} workers x {ROUNDS} rounds: {} processes, {failed} failed; by call: {:?}",
        kind.name(),
        t.processes,
        t.failures
    );
    assert_eq!(
        failed,
        0,
        "[{}] {failed} of {} processes failed: {:?}\nfirst errors:\n{}",
        kind.name(),
        t.processes,
        t.failures,
        t.first_errors.join("\n")
    );
    assert_eq!(t.processes, WORKERS * ROUNDS * 2);
    let labels = labels_on_token(&tok);
    let mut expected = BTreeMap::new();
    for w in 0..WORKERS {
        for r in 0..ROUNDS {
            expected.insert(format!("mp-w{w}-r{r}"), 2usize);
        }
    }
    assert_eq!(
        labels,
        expected,
        "[{}] every key pair must exist exactly once (private + public), nothing else",
        kind.name()
    );
}

#[test]
fn concurrent_processes_generate_and_sign_on_one_token() {
    for kind in ModuleKind::enabled() {
        stress(kind);
    }
}

#[test]
fn concurrent_processes_generating_the_same_label_leave_one_key_pair() {
    for kind in ModuleKind::enabled() {
        let tok = Arc::new(TestToken::with_kind(kind, "pca"));
        for round in 0..3 {
            let label = format!("same-{round}");
            let start = Arc::new(Barrier::new(WORKERS));
            let outs: Vec<_> = (0..WORKERS)
                .map(|_| {
                    let (tok, start, label) = (tok.clone(), start.clone(), label.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        tok.cmd()
                            .args(["generate-key", "--label", &label])
                            .output()
                            .unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            let winners = outs.iter().filter(|o| o.status.success()).count();
            let losers: Vec<String> = outs
                .iter()
                .filter(|o| !o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                .collect();
            assert_eq!(
                winners,
                1,
                "[{}] round {round}: {winners} processes generated '{label}'; errors: {losers:?}",
                kind.name()
            );
            for e in &losers {
                assert!(
                    e.starts_with("error: a key with label")
                        && e.contains("already exists")
                        && e.lines().count() == 1,
                    "[{}] round {round}: a loser failed with something else: {e}",
                    kind.name()
                );
            }
            assert_eq!(
                labels_on_token(&tok).get(&label),
                Some(&2),
                "[{}] round {round}: expected exactly one key pair '{label}'",
                kind.name()
            );
        }
    }
}
