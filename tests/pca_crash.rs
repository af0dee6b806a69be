//! Crash safety: the process dies at every step (fault points, `--features failpoints`) or at
//! random moments (SIGKILL, black box), then a rerun finishes the job: exactly one certificate per
//! device, recorded, no intent left dangling.

mod common;
mod pca_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::stdout_of;
use pca_support::PcaEnv;

/// Every device: exactly one serial marker, one CERT#, CURRENT ISSUED, its intents ISSUED.
fn assert_exactly_one_each(env: &PcaEnv, devices: &[String]) {
    let items = env.table_items();
    for d in devices {
        let of = |sk: &str| {
            items
                .iter()
                .filter(|i| i.get("device_id") == Some(d) && i["sk"].starts_with(sk))
                .count()
        };
        assert_eq!(of("CA#"), 1, "{d}: serial markers");
        assert_eq!(of("CERT#"), 1, "{d}: history");
        assert_eq!(of("CURRENT"), 1, "{d}: current");
        let dangling: Vec<_> = items
            .iter()
            .filter(|i| {
                i.get("device_id") == Some(d)
                    && i["sk"].starts_with("INTENT#")
                    && i["state"] != "ISSUED"
            })
            .collect();
        assert!(dangling.is_empty(), "{d}: dangling intents {dangling:?}");
    }
    assert_eq!(
        env.issued_by_ca(),
        devices.len(),
        "the stand-in issued more certificates than there are devices"
    );
    let a = env.cmd().args(["pca", "reconcile"]).assert().success();
    assert!(stdout_of(&a).contains("no unfinished issuances"));
}

/// Spawns `provision -v` and returns once the child has logged in to the token (its `logged in`
/// debug line), with a thread draining the rest of its stderr.
///
/// Why wait for the login: SoftHSM2's file object store rewrites `token.object` in place on every
/// C_Login (truncate + write, no rename), so a SIGKILL inside that write leaves a token that no
/// process can open again — a property of SoftHSM2's store, not of hsm-demo, and not shared by
/// kryoptic (SQLite) or hardware HSMs. Before the login hsm-demo has written nothing anywhere, so
/// every moment of hsm-demo's own crash window (intent, key generation, CSR, IssueCertificate, ARN,
/// GetCertificate, record) stays a possible kill moment.
fn spawn_logged_in(env: &PcaEnv, dev: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = env
        .std_cmd()
        .args(["-v", "provision", "--ca-arn", env.ca(), "--device-id", dev])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("logged in") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    // Either the login line arrives or the child exits (the sender is dropped): both end the wait.
    let _ = rx.recv_timeout(Duration::from_secs(60));
    child
}

#[test]
fn sigkill_at_random_moments_then_rerun() {
    let env = PcaEnv::new();
    // How long one provisioning takes here (keygen + AWS round trips), to spread the kills.
    let t0 = Instant::now();
    env.provision("warmup");
    // Adaptive: a run that finished before its kill moment shrinks the span (the warm-up is
    // slower than later runs, and load on the machine varies), so most trials kill mid-flight.
    let mut span = t0.elapsed().as_millis().max(50) as u64;
    let mut devices = vec!["warmup".to_string()];
    let mut killed = 0;
    for trial in 0..24 {
        let dev = format!("kill-{trial}");
        let mut child = spawn_logged_in(&env, &dev);
        let at = rand::random_range(0..=span);
        // The random moment of the kill (not a synchronisation: any moment must be survivable).
        std::thread::sleep(Duration::from_millis(at));
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        } else {
            span = (span * 3 / 4).max(20);
        }
        let _ = child.wait();
        // Rerun to completion.
        let v = env.provision(&dev);
        assert_eq!(v["record"]["device_id"], dev.as_str());
        let (ok, msg) = env.openssl_verify(
            &env.path(&format!("{dev}.cert.pem")),
            &env.path(&format!("{dev}.chain.pem")),
        );
        assert!(ok, "{dev}: {msg}");
        devices.push(dev);
    }
    assert!(
        killed >= 12,
        "only {killed} of 24 runs were killed mid-flight"
    );
    assert_exactly_one_each(&env, &devices);
}

#[cfg(feature = "failpoints")]
#[test]
fn crash_at_each_step_then_rerun_records_exactly_one() {
    let env = PcaEnv::new();
    // (fault point, does the rerun call IssueCertificate?)
    let points = [
        ("after-intent", true),
        ("after-issue", true), // same token within the window: AWS returns the same certificate
        ("after-arn", false),
        ("after-get-certificate", false),
        ("before-record", false),
        ("after-record", false),
    ];
    let mut devices = Vec::new();
    for (fp, reissues) in points {
        let dev = format!("fp-{fp}");
        let mut c = env.cmd();
        c.env("FAILPOINTS", format!("{fp}=return")).args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            &dev,
        ]);
        let a = c.assert().code(86);
        assert!(
            common::stderr_of(&a).contains(&format!("failpoint {fp}")),
            "{fp} not reached"
        );
        let v = env.provision(&dev);
        assert_eq!(v["called_issue"], reissues, "{fp}: {v}");
        assert_eq!(v["fresh"], fp != "after-record", "{fp}: {v}");
        devices.push(dev);
        assert_exactly_one_each(&env, &devices);
    }
}

/// A record transaction whose answer is lost: the retry finds this runner's own write. The
/// device is reported as freshly issued (not "already present"), and recorded once.
#[cfg(feature = "failpoints")]
#[test]
fn a_lost_record_answer_is_still_reported_as_issued_by_this_run() {
    let env = PcaEnv::new();
    let mut c = env.cmd();
    c.env("FAILPOINTS", "record-answer-lost=return").args([
        "--json",
        "provision",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "lost-answer",
    ]);
    let a = c.assert().success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).expect("JSON");
    assert_eq!(v["fresh"], true, "{v}");
    assert_eq!(v["called_issue"], true, "{v}");
    assert_exactly_one_each(&env, &["lost-answer".to_string()]);
}

/// The documented gap: a crash after AWS issued but before the ARN was stored, rerun after AWS's
/// idempotency window. The intent shows it (`pca reconcile` → PossibleOrphan, non-zero exit).
#[cfg(feature = "failpoints")]
#[test]
fn crash_after_issue_beyond_the_idempotency_window_is_detected() {
    let env = PcaEnv::new();
    common::standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"idempotency_window_seconds": 0}),
    );
    let mut c = env.cmd();
    c.env("FAILPOINTS", "after-issue=return").args([
        "provision",
        "--ca-arn",
        env.ca(),
        "--device-id",
        "gap-1",
    ]);
    c.assert().code(86);
    // The intent holds the token and no ARN: with a 0 s window assumed, that is a possible orphan.
    let a = env
        .cmd()
        .args(["--json", "pca", "reconcile", "--window-secs", "0"])
        .assert()
        .failure();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v[0]["check"], "possible-orphan", "{v}");
    assert_eq!(v[0]["intent"]["device_id"], "gap-1");
    assert!(common::stderr_of(&a).contains("possible orphaned issuance"));
    // Within the default window the same intent is merely in flight.
    let a = env
        .cmd()
        .args(["--json", "pca", "reconcile"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v[0]["check"], "in-flight", "{v}");
    // The rerun completes with a new IssueCertificate (the stand-in's window is 0 s, so it issued
    // a second certificate: the orphan); the registry records one.
    let v = env.provision("gap-1");
    assert_eq!(v["called_issue"], true);
    assert_eq!(env.items_with_sk("CA#").len(), 1);
}
