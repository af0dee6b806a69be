//! Renewal end to end (`renew`), real SoftHSM token + the local AWS stand-in: the new generation
//! verifies, the key rotates (or is kept with --reuse-key), CURRENT moves, the old certificate is
//! SUPERSEDED and kept in the history; devices not due cost no write; the min-interval guard
//! stops a storm; jitter spreads; concurrent runners renew each device once; the superseded
//! certificate is revoked only after the new one is recorded.

mod common;
mod pca_support;
mod renew_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::standin;
use pca_support::PcaEnv;
use renew_support::*;

#[test]
fn renew_rotates_the_key_moves_current_and_supersedes_the_old_certificate() {
    let env = PcaEnv::new();
    let dev = "ren-a";
    provision_for(&env, dev, "30d");
    let old_serial = current(&env, dev)["serial"].clone();

    // Not due (2/3 of 30 days): reported, and no write at all.
    let (calls0, writes0) = (issue_calls(&env), writes(&env));
    let r = renew_json(&env, &["--device-id", dev]);
    assert_eq!(r[0]["status"], "not-due", "{r:?}");
    assert!(r[0]["due_at"].is_string(), "{r:?}");
    assert_eq!(issue_calls(&env), calls0);
    assert_eq!(writes(&env), writes0, "a not-due device must cost no write");

    // --force: generation 1, new key labelled device-<id>-g1.
    let out = env.path("g1");
    std::fs::create_dir_all(&out).unwrap();
    let r = renew_json(
        &env,
        &[
            "--device-id",
            dev,
            "--force",
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r[0]["status"], "issued", "{r:?}");
    assert_eq!(r[0]["key"], "created");
    assert_eq!(r[0]["key_label"], format!("device-{dev}-g1"));
    assert_eq!(issue_calls(&env), calls0 + 1);
    let new_cert = out.join(format!("{dev}.cert.pem"));
    let (ok, msg) = env.openssl_verify(&new_cert, &out.join(format!("{dev}.chain.pem")));
    assert!(ok, "openssl verify: {msg}");
    let old_cert = env
        .path(&format!("{dev}-g0"))
        .join(format!("{dev}.cert.pem"));
    assert_ne!(
        spki_of(&new_cert),
        spki_of(&old_cert),
        "the key must rotate"
    );

    // CURRENT is the new one; the old is SUPERSEDED (certificate and serial marker); both kept.
    let cur = current(&env, dev);
    assert_eq!(cur["generation"], "1");
    assert_eq!(cur["status"], "ISSUED");
    assert_ne!(cur["serial"], old_serial);
    assert_eq!(
        history(&env, dev),
        vec![(0, "SUPERSEDED".to_string()), (1, "ISSUED".to_string())]
    );
    let marker = env
        .items_with_sk("CA#")
        .into_iter()
        .find(|m| m["serial"] == old_serial)
        .unwrap();
    assert_eq!(marker["status"], "SUPERSEDED");

    // A rerun of the finished renewal: one read, no write, no IssueCertificate.
    let (before, writes1) = (standin::total_calls(&env.endpoint, &env.akid), writes(&env));
    let r = renew_json(&env, &["--device-id", dev]);
    assert_eq!(r[0]["status"], "not-due");
    assert_eq!(issue_calls(&env), calls0 + 1);
    assert_eq!(writes(&env), writes1, "a finished renewal's rerun wrote");
    let after = standin::total_calls(&env.endpoint, &env.akid);
    assert!(
        after - before <= 4,
        "a finished renewal's rerun made {} calls",
        after - before
    );

    // No key destroyed: both pairs are still on the token.
    let objs = common::stdout_of(
        &env.cmd()
            .args(["list-slots", "--objects"])
            .assert()
            .success(),
    );
    for label in [format!("device-{dev}"), format!("device-{dev}-g1")] {
        let pair = objs.matches(&format!("label=\"{label}\"")).count();
        assert_eq!(pair, 2, "{label}: {objs}");
    }
}

#[test]
fn reuse_key_keeps_the_key_and_a_csr_with_the_old_key_needs_it() {
    let env = PcaEnv::new();
    let dev = "ren-b";
    provision_for(&env, dev, "30d");
    let out = env.path("b1");
    std::fs::create_dir_all(&out).unwrap();
    let r = renew_json(
        &env,
        &[
            "--device-id",
            dev,
            "--force",
            "--reuse-key",
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r[0]["status"], "issued", "{r:?}");
    assert_eq!(r[0]["key"], "reused");
    assert_eq!(r[0]["key_label"], format!("device-{dev}"));
    let old_cert = env
        .path(&format!("{dev}-g0"))
        .join(format!("{dev}.cert.pem"));
    assert_eq!(
        spki_of(&out.join(format!("{dev}.cert.pem"))),
        spki_of(&old_cert)
    );
    // Generation 2 with --reuse-key again finds the same key (label of generation 0).
    let r = renew_json(&env, &["--device-id", dev, "--force", "--reuse-key"]);
    assert_eq!(r[0]["key_label"], format!("device-{dev}"));
    assert_eq!(current(&env, dev)["generation"], "2");

    // A device with its own key: a CSR with the old public key is refused without --reuse-key,
    // before any AWS Private CA call, leaving no intent.
    let own = "ren-own";
    env.openssl_csr("own", own);
    env.cmd()
        .args([
            "pca",
            "issue",
            "--ca-arn",
            env.ca(),
            "--device-id",
            own,
            "--csr",
            "own.csr",
        ])
        .assert()
        .success();
    let calls0 = issue_calls(&env);
    let a = env
        .cmd()
        .args([
            "renew",
            "--ca-arn",
            env.ca(),
            "--device-id",
            own,
            "--force",
            "--csr",
            "own.csr",
        ])
        .assert()
        .failure();
    let err = common::stderr_of(&a);
    assert!(err.contains("--reuse-key"), "{err}");
    assert_eq!(issue_calls(&env), calls0);
    assert!(
        env.items_with_sk("INTENT#000001")
            .iter()
            .all(|i| i["device_id"] != own),
        "the refused renewal left an intent"
    );
    env.openssl_csr("own2", own);
    let r = renew_json(&env, &["--device-id", own, "--force", "--csr", "own2.csr"]);
    assert_eq!(r[0]["status"], "issued", "{r:?}");
    assert_eq!(history(&env, own).len(), 2);
}

#[test]
fn revoke_superseded_revokes_only_after_the_record_and_a_rerun_finishes_it() {
    let env = PcaEnv::new();
    let dev = "ren-c";
    provision_for(&env, dev, "30d");
    let old_serial = current(&env, dev)["serial"].clone();
    // Hold RevokeCertificate: when it is sent, the new certificate must already be recorded.
    standin::hold(
        &env.endpoint,
        &env.akid,
        "RevokeCertificate",
        "request",
        None,
    );
    let mut child = env
        .std_cmd()
        .args([
            "renew",
            "--ca-arn",
            env.ca(),
            "--device-id",
            dev,
            "--force",
            "--revoke-superseded",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = standin::wait_held(&env.endpoint, &env.akid, 5);
        if v["held"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "renew ended before revoking"
        );
        assert!(Instant::now() < deadline, "RevokeCertificate never sent");
    }
    let cur = current(&env, dev);
    assert_eq!(cur["generation"], "1", "revocation sent before the record");
    assert_eq!(history(&env, dev)[0], (0, "SUPERSEDED".to_string()));
    // Crash there: the old certificate stays SUPERSEDED; a rerun (not due any more) revokes it.
    child.kill().unwrap();
    let _ = child.wait();
    standin::release(&env.endpoint, &env.akid, "drop");
    let calls0 = issue_calls(&env);
    let r = renew_json(&env, &["--device-id", dev, "--revoke-superseded"]);
    assert_eq!(r[0]["status"], "not-due", "{r:?}");
    assert_eq!(r[0]["revoked"][0], old_serial.as_str(), "{r:?}");
    assert_eq!(issue_calls(&env), calls0);
    assert_eq!(
        history(&env, dev),
        vec![(0, "REVOKED".to_string()), (1, "ISSUED".to_string())]
    );
    let old = env
        .items_with_sk("CERT#000000")
        .into_iter()
        .find(|i| i["device_id"] == dev)
        .unwrap();
    assert_eq!(old["revocation_reason"], "SUPERSEDED");
    // And again: nothing left to do, no RevokeCertificate.
    let revokes = standin::calls(&env.endpoint, &env.akid, "RevokeCertificate");
    let r = renew_json(&env, &["--device-id", dev, "--revoke-superseded"]);
    assert!(r[0].get("revoked").is_none(), "{r:?}");
    assert_eq!(
        standin::calls(&env.endpoint, &env.akid, "RevokeCertificate"),
        revokes
    );
}

#[test]
fn renew_all_renews_due_devices_only_and_the_min_interval_guard_stops_a_storm() {
    let env = PcaEnv::new();
    for d in ["all-1", "all-2"] {
        provision_for(&env, d, "2h");
    }
    provision_for(&env, "all-long", "30d");
    let calls0 = issue_calls(&env);

    // --within longer than every lifetime, default guard (a third of the lifetime): nothing.
    let writes0 = writes(&env);
    let r = renew_json(&env, &["--all", "--within", "400d"]);
    let st = statuses(&r);
    assert!(st.values().all(|s| s == "not-due"), "{st:?}");
    assert_eq!(st.len(), 3);
    assert_eq!(issue_calls(&env), calls0);
    assert_eq!(writes(&env), writes0);

    // Ending within 3 h, guard lowered: the two 2-hour certificates are due, the 30-day one is
    // not.
    let r = renew_json(&env, &["--all", "--within", "3h", "--min-interval", "0s"]);
    let st = statuses(&r);
    assert_eq!(st["all-1"], "issued", "{st:?}");
    assert_eq!(st["all-2"], "issued");
    assert_eq!(st["all-long"], "not-due");
    assert_eq!(issue_calls(&env), calls0 + 2);
    let summary = r.last().unwrap();
    assert_eq!(summary["summary"]["issued"], 2, "{summary}");
    assert_eq!(summary["summary"]["not_due"], 1);

    // A rerun: the renewed certificates are 30-day ones now: nothing due, nothing called.
    let r = renew_json(&env, &["--all", "--within", "3h", "--min-interval", "0s"]);
    assert!(statuses(&r).values().all(|s| s == "not-due"), "{r:?}");
    assert_eq!(issue_calls(&env), calls0 + 2);
    for d in ["all-1", "all-2"] {
        assert_eq!(history(&env, d).len(), 2, "{d}");
    }
}

#[test]
fn jitter_spreads_due_points_deterministically() {
    use hsm_demo::pca::renew::policy::jitter_factor;
    let env = PcaEnv::new();
    // Devices whose jitter factor is well above or below 1/2.
    let mut early = Vec::new();
    let mut late = Vec::new();
    for i in 0..200 {
        let d = format!("jit-{i}");
        let h = jitter_factor(&d);
        if h > 0.6 && early.len() < 2 {
            early.push(d);
        } else if h < 0.4 && late.len() < 2 {
            late.push(d);
        }
    }
    for d in early.iter().chain(&late) {
        provision_for(&env, d, "2h");
    }
    // The elapsed share e of the lifetime (NotBefore is backdated by the CA, so e > 0 already).
    // Point at e + 25 %, moved earlier by h x 50 %: due now iff h >= 1/2 (margins of 5 % of the
    // lifetime, 6 minutes, on either side).
    let cur = current(&env, &late[0]);
    let t = |k: &str| {
        time::OffsetDateTime::parse(&cur[k], &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    let e = (now - t("not_before")).as_seconds_f64()
        / (t("not_after") - t("not_before")).as_seconds_f64();
    let at = format!("{:.3}", (e + 0.25) * 100.0);
    let args = [
        "--all",
        "--at",
        &at,
        "--jitter",
        "50",
        "--min-interval",
        "0s",
    ];
    let r = renew_json(&env, &args);
    let st = statuses(&r);
    for d in &early {
        assert_eq!(st[d], "issued", "{d} (h = {}): {st:?}", jitter_factor(d));
    }
    for d in &late {
        assert_eq!(st[d], "not-due", "{d} (h = {}): {st:?}", jitter_factor(d));
    }
    // Without jitter none of them is due.
    let none: Vec<_> = late
        .iter()
        .map(|d| current(&env, d)["generation"].clone())
        .collect();
    assert!(none.iter().all(|g| g == "0"));
}

#[test]
fn two_renew_all_processes_at_once_renew_each_device_once() {
    let env = PcaEnv::new();
    let devs: Vec<String> = (0..6).map(|i| format!("two-{i}")).collect();
    for d in &devs {
        provision_for(&env, d, "2h");
    }
    let before = env.issued_by_ca();
    let spawn = || {
        env.std_cmd()
            .args([
                "--json",
                "renew",
                "--ca-arn",
                env.ca(),
                "--all",
                "--within",
                "3h",
            ])
            .args(["--min-interval", "0s", "--concurrency", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(
        env.issued_by_ca() - before,
        devs.len(),
        "one renewal per device"
    );
    for d in &devs {
        assert_eq!(history(&env, d).len(), 2, "{d}");
        assert_eq!(current(&env, d)["generation"], "1", "{d}");
    }
}

/// `openssl x509 -noout -subject -ext subjectAltName` of a certificate file.
fn subject_and_sans(env: &PcaEnv, cert: &std::path::Path) -> String {
    let o = env
        .token
        .tool("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn renew_all_keeps_the_subject_and_renew_manifest_takes_the_manifests() {
    let env = PcaEnv::new();
    env.cmd()
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "subj-1",
            "--validity",
            "2h",
        ])
        .args([
            "--san-dns",
            "subj-1.example.org",
            "--san-uri",
            "spiffe://example.org/d/1",
        ])
        .assert()
        .success();
    provision_for(&env, "subj-2", "2h");
    let out = env.path("subj");
    std::fs::create_dir_all(&out).unwrap();
    let out_s = out.to_str().unwrap();
    // --all: the subject and SANs of the current certificate.
    let r = renew_json(
        &env,
        &[
            "--all",
            "--within",
            "3h",
            "--min-interval",
            "0s",
            "--out-dir",
            out_s,
        ],
    );
    assert_eq!(statuses(&r)["subj-1"], "issued", "{r:?}");
    let text = subject_and_sans(&env, &out.join("subj-1.cert.pem"));
    assert!(
        text.contains("CN=subj-1") || text.contains("CN = subj-1"),
        "{text}"
    );
    assert!(text.contains("DNS:subj-1.example.org"), "{text}");
    assert!(text.contains("URI:spiffe://example.org/d/1"), "{text}");

    // --manifest: the manifest's subject (here a new CN), for the devices it names only.
    std::fs::write(env.path("m.csv"), "device_id,cn\nsubj-2,Second Device\n").unwrap();
    let r = renew_json(
        &env,
        &[
            "--manifest",
            "m.csv",
            "--at",
            "0",
            "--min-interval",
            "0s",
            "--out-dir",
            out_s,
        ],
    );
    let st = statuses(&r);
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st["subj-2"], "issued", "{st:?}");
    let text = subject_and_sans(&env, &out.join("subj-2.cert.pem"));
    assert!(text.contains("Second Device"), "{text}");
}

/// A certificate already past its NotAfter is past every renewal point: it is renewed. (The
/// registry's dates are moved into the past, as time would have moved them: the renewal decides
/// from the registry, and AWS issues the new certificate whatever the old one's dates.)
#[test]
fn an_expired_certificate_is_listed_then_renewed() {
    let env = PcaEnv::new();
    provision_for(&env, "old-1", "30d");
    let conf = standin::sdk_config(&env.endpoint);
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    for sk in ["CURRENT", "CERT#000000"] {
        rt.block_on(
            ddb.update_item()
                .table_name(&env.table)
                .key("pk", s("DEVICE#old-1"))
                .key("sk", s(sk))
                .update_expression("SET not_before = :nb, not_after = :na, issued_at = :nb")
                .expression_attribute_values(":nb", s("2020-01-01T00:00:00Z"))
                .expression_attribute_values(":na", s("2020-01-31T00:00:00Z"))
                .send(),
        )
        .unwrap();
    }
    let a = env
        .cmd()
        .args(["--json", "pca", "expiring", "--within", "1h"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&common::stdout_of(&a)).unwrap();
    assert_eq!(v[0]["device_id"], "old-1");
    assert_eq!(v[0]["expired"], true);
    let r = renew_json(&env, &["--all"]);
    assert_eq!(statuses(&r)["old-1"], "issued", "{r:?}");
    assert_eq!(current(&env, "old-1")["generation"], "1");
    let a = env
        .cmd()
        .args(["--json", "pca", "expiring", "--within", "1h"])
        .assert()
        .success();
    assert_eq!(common::stdout_of(&a).trim(), "[]");
}

/// A renewal killed after IssueCertificate was sent, whose old certificate an operator then
/// revoked, is finished by the rerun with its own token: one new certificate, recorded as after a
/// revocation.
#[test]
fn an_interrupted_renewal_is_finished_after_the_old_certificate_was_revoked() {
    let env = PcaEnv::new();
    let dev = "intr-1";
    provision_for(&env, dev, "30d");
    let old_serial = current(&env, dev)["serial"].clone();
    standin::hold(&env.endpoint, &env.akid, "IssueCertificate", "answer", None);
    let mut child = env
        .std_cmd()
        .args(["renew", "--ca-arn", env.ca(), "--device-id", dev, "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while standin::wait_held(&env.endpoint, &env.akid, 5)["held"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(child.try_wait().unwrap().is_none(), "renew ended first");
        assert!(Instant::now() < deadline, "IssueCertificate never held");
    }
    child.kill().unwrap();
    let _ = child.wait();
    standin::release(&env.endpoint, &env.akid, "drop");
    let issued = env.issued_by_ca();
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &old_serial,
            "--reason",
            "superseded",
        ])
        .assert()
        .success();
    // Not forced, and the current certificate is revoked: the open renewal is resumed anyway.
    let r = renew_json(&env, &["--device-id", dev]);
    assert_eq!(r[0]["status"], "issued", "{r:?}");
    assert_eq!(
        env.issued_by_ca(),
        issued,
        "the resumed renewal issued a second certificate"
    );
    assert_eq!(current(&env, dev)["generation"], "1");
    assert_eq!(
        history(&env, dev),
        vec![(0, "REVOKED".to_string()), (1, "ISSUED".to_string())]
    );
}
