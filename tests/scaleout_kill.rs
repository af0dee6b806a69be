//! Scale-out under SIGKILL: 3 runners, then 5, over one manifest of 600 devices with HSM keys on
//! one SoftHSM2 token, the stand-in throttled at AWS's default quotas (IssueCertificate 25/s,
//! GetCertificate 75/s), each runner allowed the whole quota. At random moments one random runner
//! is killed with SIGKILL and a new one started in its place, as an operator restarting a host
//! would. When the runners have ended, with no rerun:
//! - every device has exactly one certificate, recorded once (registry read with the SDK) and
//!   issued once (counted by the stand-in);
//! - every device label holds exactly one private key on the token (no duplicate key);
//! - no runner that was not killed failed a device, and a final run finds nothing to do.
//!
//! The two phases run one after the other in one test (test functions of one binary run in
//! parallel, and eight runners at once would measure this machine's two cores, not the tool).

mod batch_support;
mod common;
mod pca_support;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use batch_support::{assert_exactly_one_each, batch_cmd, ids, parse, run_ok};
use common::standin;
use pca_support::PcaEnv;

const DEVICES: usize = 600;
const KILLS: usize = 4;
const ARGS: [&str; 4] = ["--issue-tps", "25", "--get-tps", "75"];

#[test]
fn three_then_five_runners_killed_at_random_issue_every_device_exactly_once() {
    for runners in [3, 5] {
        phase(runners);
    }
}

/// Starts a runner whose stdout and stderr go to files `runner-<n>.{out,err}` in the scratch
/// dir (a pipe nobody reads would stall it once full).
fn spawn(env: &PcaEnv, m: &std::path::PathBuf, n: usize) -> Child {
    let file = |ext: &str| std::fs::File::create(env.path(&format!("runner-{n}.{ext}"))).unwrap();
    batch_cmd(env, m, &ARGS)
        .arg("-v")
        .stdout(file("out"))
        .stderr(file("err"))
        .spawn()
        .expect("spawn a runner")
}

/// Every line of every runner's output that names `device` (for a failure message).
fn lines_about(env: &PcaEnv, spawned: usize, device: &str) -> String {
    let mut out = String::new();
    for n in 0..spawned {
        for ext in ["out", "err"] {
            let text =
                std::fs::read_to_string(env.path(&format!("runner-{n}.{ext}"))).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains(device)) {
                out.push_str(&format!("runner {n}: {l}\n"));
            }
        }
    }
    out
}

fn phase(runners: usize) {
    let env = PcaEnv::new();
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({
            "throttle_enabled": true,
            "throttle_tps": {"IssueCertificate": 25.0, "GetCertificate": 75.0},
        }),
    );
    let prefix = format!("sk{runners}");
    let devs = ids(&prefix, DEVICES);
    // One column: every device gets an HSM key named `device-<id>`.
    let mut body = String::from("device_id\n");
    devs.iter().for_each(|d| body.push_str(&format!("{d}\n")));
    let m = env.path("fleet.csv");
    std::fs::write(&m, body).unwrap();

    let t0 = Instant::now();
    let mut spawned = 0;
    let mut live: Vec<(usize, Child)> = Vec::new();
    while spawned < runners {
        live.push((spawned, spawn(&env, &m, spawned)));
        spawned += 1;
    }
    let mut killed = 0;
    while killed < KILLS {
        // The random moment of the kill (any moment must be survivable; not a synchronisation).
        std::thread::sleep(Duration::from_millis(rand::random_range(1000..=4000)));
        live.retain_mut(|(_, c)| c.try_wait().unwrap().is_none());
        if live.is_empty() {
            break;
        }
        let i = rand::random_range(0..live.len());
        let (_, mut victim) = live.swap_remove(i);
        victim.kill().expect("SIGKILL");
        let _ = victim.wait();
        killed += 1;
        live.push((spawned, spawn(&env, &m, spawned)));
        spawned += 1;
    }
    let mut issued_by_runners = 0;
    for (n, mut c) in live.drain(..) {
        let status = c.wait().unwrap();
        let r = parse(&std::process::Output {
            status,
            stdout: std::fs::read(env.path(&format!("runner-{n}.out"))).unwrap(),
            stderr: std::fs::read(env.path(&format!("runner-{n}.err"))).unwrap(),
        });
        let tail: Vec<&str> = r.stderr.lines().rev().take(15).collect();
        assert_eq!(
            r.code,
            Some(0),
            "a runner failed: {:?} {tail:#?}",
            r.summary
        );
        let s = r.summary.expect("summary");
        assert_eq!(s["failed"], 0, "{s}");
        issued_by_runners += s["issued"].as_u64().unwrap();
    }
    eprintln!(
        "{runners} runners: {killed} killed, {issued_by_runners} issued by the last ones, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        killed >= KILLS - 1,
        "only {killed} kills landed while runners were working"
    );

    assert_exactly_one_each(&env, &devs);
    assert_eq!(
        standin::issued_count(&env.endpoint, env.ca()),
        DEVICES as u64,
        "one certificate per device at the stand-in"
    );
    if let Err(device) = one_key_per_label(&env, &devs) {
        panic!(
            "{device}: not exactly one private key under its label\n{}",
            lines_about(&env, spawned, &device)
        );
    }
    let s = run_ok(&env, &m, &ARGS).summary.expect("summary");
    assert_eq!(
        (s["issued"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}

/// Exactly one private key under every device's label (`list-slots --objects --json`), else the
/// first device without.
fn one_key_per_label(env: &PcaEnv, devs: &[String]) -> Result<(), String> {
    let mut per: HashMap<String, usize> = HashMap::new();
    fn walk(v: &serde_json::Value, per: &mut HashMap<String, usize>) {
        match v {
            serde_json::Value::Object(o) => {
                let private = o
                    .get("class")
                    .and_then(|c| c.as_str())
                    .is_some_and(|c| c.contains("private"));
                if let (true, Some(l)) = (private, o.get("label").and_then(|l| l.as_str())) {
                    *per.entry(l.to_string()).or_default() += 1;
                }
                o.values().for_each(|x| walk(x, per));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, per)),
            _ => {}
        }
    }
    walk(&env.objects_json(), &mut per);
    if let Some(d) = devs
        .iter()
        .find(|d| per.get(&format!("device-{d}")) != Some(&1))
    {
        return Err(d.clone());
    }
    assert_eq!(
        per.len(),
        devs.len(),
        "private keys not of a device: {per:?}"
    );
    Ok(())
}
