//! Crash safety: the process dies at every step (fault points, `--features failpoints`), by
//! SIGKILL at named points (the stand-in holds one request until the kill), or at random moments
//! (SIGKILL, black box), then a rerun finishes the job: exactly one certificate per device,
//! recorded, no intent left dangling. Each kill is classified by what the registry and the
//! stand-in show afterwards, so a kill that did not land where it claims fails the test.

mod common;
mod pca_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::standin;
use common::stdout_of;
use pca_support::PcaEnv;

/// Where in the issue flow a crash landed, from what it left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Nothing written for the device.
    BeforeIntent,
    /// An intent (with or without its token), no IssueCertificate reached AWS.
    IntentNoCall,
    /// AWS issued, its answer never reached the process.
    IssueInFlight,
    /// The process had AWS's answer (the ARN) but did not store it.
    IssuedArnNotStored,
    /// The ARN is stored in the intent; no record yet.
    ArnStored,
    /// The certificate is recorded (CURRENT written).
    Recorded,
}

/// What one device's crash left: the registry's items and the stand-in's new certificates since
/// `issued_before`. `answer_lost`: the stand-in held (and dropped) IssueCertificate's answer.
fn classify(env: &PcaEnv, dev: &str, issued_before: usize, answer_lost: bool) -> Phase {
    let items = env.table_items();
    let mine = |sk: &str| {
        items
            .iter()
            .filter(|i| i.get("device_id").map(String::as_str) == Some(dev))
            .filter(|i| i["sk"].starts_with(sk))
            .cloned()
            .collect::<Vec<_>>()
    };
    let intents = mine("INTENT#");
    let issued = env.issued_by_ca() - issued_before;
    assert!(
        issued <= 1,
        "{dev}: {issued} certificates issued by one run"
    );
    if !mine("CURRENT").is_empty() {
        Phase::Recorded
    } else if intents.iter().any(|i| i.contains_key("cert_arn")) {
        Phase::ArnStored
    } else if issued == 1 && answer_lost {
        Phase::IssueInFlight
    } else if issued == 1 {
        Phase::IssuedArnNotStored
    } else if !intents.is_empty() {
        Phase::IntentNoCall
    } else {
        Phase::BeforeIntent
    }
}

/// Reruns `provision` for a crashed device and checks it finished with one certificate: the
/// stand-in counts exactly one new certificate since `issued_before`, and it verifies.
fn rerun_to_one_certificate(env: &PcaEnv, dev: &str, issued_before: usize) {
    let v = env.provision(dev);
    assert_eq!(v["record"]["device_id"], dev, "{v}");
    assert_eq!(
        env.issued_by_ca() - issued_before,
        1,
        "{dev}: certificates issued for the device, crash and rerun together"
    );
    let (ok, msg) = env.openssl_verify(
        &env.path(&format!("{dev}.cert.pem")),
        &env.path(&format!("{dev}.chain.pem")),
    );
    assert!(ok, "{dev}: {msg}");
}

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

/// A named kill point: the stand-in holds one `operation` request of this test's access key (at
/// `stage`, and only once an `after` request was answered) and the test SIGKILLs `provision`
/// while it is held; `lands_in` is the phase the kill must leave behind.
struct NamedPoint {
    name: &'static str,
    operation: &'static str,
    stage: &'static str,
    after: Option<&'static str>,
    lands_in: Phase,
}

/// One point per phase of the issue flow (intent claim `PutItem`, IssueCertificate, the ARN's
/// `UpdateItem`, GetCertificate, the record's `TransactWriteItems`).
const NAMED_POINTS: [NamedPoint; 6] = [
    NamedPoint {
        name: "intent claim sent, not yet written",
        operation: "PutItem",
        stage: "request",
        after: None,
        lands_in: Phase::BeforeIntent,
    },
    NamedPoint {
        name: "IssueCertificate sent, not yet at AWS",
        operation: "IssueCertificate",
        stage: "request",
        after: None,
        lands_in: Phase::IntentNoCall,
    },
    NamedPoint {
        name: "IssueCertificate issued, answer in flight",
        operation: "IssueCertificate",
        stage: "answer",
        after: None,
        lands_in: Phase::IssueInFlight,
    },
    NamedPoint {
        name: "ARN received, its write not yet stored",
        operation: "UpdateItem",
        stage: "request",
        after: Some("IssueCertificate"),
        lands_in: Phase::IssuedArnNotStored,
    },
    NamedPoint {
        name: "ARN stored, GetCertificate in flight",
        operation: "GetCertificate",
        stage: "request",
        after: None,
        lands_in: Phase::ArnStored,
    },
    NamedPoint {
        name: "record written, answer in flight",
        operation: "TransactWriteItems",
        stage: "answer",
        after: None,
        lands_in: Phase::Recorded,
    },
];

/// Spawns `provision -v` with its stderr collected (for failure messages).
fn spawn_provision(
    env: &PcaEnv,
    dev: &str,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use std::io::Read;
    let mut child = env
        .std_cmd()
        .args(["-v", "provision", "--ca-arn", env.ca(), "--device-id", dev])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, log)
}

/// Arms `p`'s hold, runs `provision` until the stand-in signals the request is held, SIGKILLs it
/// there, drops the held request and returns the phase the kill left behind.
fn kill_at_named_point(env: &PcaEnv, dev: &str, p: &NamedPoint) -> Phase {
    let before = env.issued_by_ca();
    standin::hold(&env.endpoint, &env.akid, p.operation, p.stage, p.after);
    let (mut child, log) = spawn_provision(env, dev);
    let deadline = Instant::now() + Duration::from_secs(180);
    // Long polls on the stand-in's signal; between two, check the child has not ended instead.
    let held = loop {
        let v = standin::wait_held(&env.endpoint, &env.akid, 5);
        if let Some(h) = v["held"].as_array().and_then(|a| a.first()) {
            break h.clone();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "{dev}: provision ended ({st}) before '{}': {}",
                p.name,
                log.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{dev}: '{}' never reached",
            p.name
        );
    };
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let rel = standin::release(&env.endpoint, &env.akid, "drop");
    assert_eq!(rel["finished"], true, "{rel}");
    assert_eq!(held["operation"], p.operation, "{held}");
    let answer_lost = held["operation"] == "IssueCertificate" && held["stage"] == "answer";
    classify(env, dev, before, answer_lost)
}

/// SIGKILL at every named point, several times each: each kill must land in the phase it names
/// (counted per phase), and each rerun leaves exactly one certificate for the device.
#[test]
fn sigkill_at_named_points_lands_in_each_phase_then_rerun() {
    const ROUNDS: usize = 3;
    let env = PcaEnv::new();
    let mut landed = std::collections::BTreeMap::<Phase, usize>::new();
    let mut devices = Vec::new();
    for round in 0..ROUNDS {
        for (i, p) in NAMED_POINTS.iter().enumerate() {
            let dev = format!("named-{round}-{i}");
            let before = env.issued_by_ca();
            let phase = kill_at_named_point(&env, &dev, p);
            assert_eq!(
                phase, p.lands_in,
                "{dev}: the kill at '{}' landed in {phase:?}",
                p.name
            );
            *landed.entry(phase).or_default() += 1;
            rerun_to_one_certificate(&env, &dev, before);
            devices.push(dev);
        }
    }
    eprintln!("SIGKILLs per phase: {landed:?}");
    for p in &NAMED_POINTS {
        let n = landed.get(&p.lands_in).copied().unwrap_or(0);
        assert!(n >= ROUNDS, "{:?}: {n} kills, want >= {ROUNDS}", p.lands_in);
    }
    assert_exactly_one_each(&env, &devices);
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
    // Where the random kills landed (an answer in flight counts as issued-not-stored here: only a
    // hold tells the two apart). Reported, not asserted: the named-point test pins each phase.
    let mut landed = std::collections::BTreeMap::<Phase, usize>::new();
    for trial in 0..24 {
        let dev = format!("kill-{trial}");
        let before = env.issued_by_ca();
        let mut child = spawn_logged_in(&env, &dev);
        let at = rand::random_range(0..=span);
        // The random moment of the kill (not a synchronisation: any moment must be survivable).
        std::thread::sleep(Duration::from_millis(at));
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
            let _ = child.wait();
            *landed
                .entry(classify(&env, &dev, before, false))
                .or_default() += 1;
        } else {
            span = (span * 3 / 4).max(20);
            let _ = child.wait();
        }
        rerun_to_one_certificate(&env, &dev, before);
        devices.push(dev);
    }
    eprintln!("random SIGKILLs per phase: {landed:?}");
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
    // (fault point, does the rerun call IssueCertificate?, the phase the crash leaves)
    let points = [
        ("after-intent", true, Phase::IntentNoCall),
        // same token within the window: AWS returns the same certificate
        ("after-issue", true, Phase::IssuedArnNotStored),
        ("after-arn", false, Phase::ArnStored),
        ("after-get-certificate", false, Phase::ArnStored),
        ("before-record", false, Phase::ArnStored),
        ("after-record", false, Phase::Recorded),
    ];
    let mut devices = Vec::new();
    let mut landed = std::collections::BTreeMap::<Phase, usize>::new();
    for (fp, reissues, phase) in points {
        let dev = format!("fp-{fp}");
        let before = env.issued_by_ca();
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
        assert_eq!(classify(&env, &dev, before, false), phase, "{fp}");
        *landed.entry(phase).or_default() += 1;
        let v = env.provision(&dev);
        assert_eq!(v["called_issue"], reissues, "{fp}: {v}");
        assert_eq!(v["fresh"], fp != "after-record", "{fp}: {v}");
        assert_eq!(env.issued_by_ca() - before, 1, "{fp}: certificates issued");
        devices.push(dev);
        assert_exactly_one_each(&env, &devices);
    }
    eprintln!("fault-point crashes per phase: {landed:?}");
    assert_eq!(landed.len(), 4, "{landed:?}");
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
