//! Device-generated keys: `provision --csr` and manifests with a `csr` column, against the real
//! stand-in with no PKCS#11 module and no PIN configured (a module load would fail), and next to
//! HSM-held keys on a real SoftHSM token. Certificates are checked by openssl (chain, public key),
//! IssueCertificate calls counted at the stand-in, the registry read with the SDK directly.

mod common;
mod csr_support;
mod pca_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::standin::{self, calls, total_calls};
use common::stdout_of;
use csr_support::{cert_pubkey, csr_for_key, csr_pubkey, ec_csr, no_hsm_cmd, no_hsm_std_cmd};
use pca_support::PcaEnv;

/// `provision --device-id <dev> --csr <csr> --json` with no HSM configured; parsed output.
fn provision_csr(env: &PcaEnv, dev: &str, csr: &str, extra: &[&str]) -> serde_json::Value {
    let a = no_hsm_cmd(env, &env.akid)
        .args([
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            dev,
        ])
        .args(["--csr", csr])
        .args(extra)
        .assert()
        .success();
    serde_json::from_str(&stdout_of(&a)).unwrap()
}

/// The certificate of `dev` verifies to the root, and carries the CSR's public key.
fn assert_cert_for_csr(env: &PcaEnv, dev: &str, csr: &str) {
    let cert = env.path(&format!("{dev}.cert.pem"));
    let (ok, msg) = env.openssl_verify(&cert, &env.path(&format!("{dev}.chain.pem")));
    assert!(ok, "{dev}: {msg}");
    assert_eq!(
        cert_pubkey(env, &format!("{dev}.cert.pem")),
        csr_pubkey(env, csr),
        "{dev}: the certificate carries the CSR's public key"
    );
}

#[test]
fn device_csr_is_issued_without_a_module_or_pin_and_rerun_issues_nothing() {
    let env = PcaEnv::new();
    ec_csr(&env, "dev-c1", "P-256", "/CN=dev-c1", None);
    let v = provision_csr(&env, "dev-c1", "dev-c1.csr", &[]);
    assert_eq!(v["key"], "device", "{v}");
    assert!(v["key_label"].is_null(), "no HSM key label: {v}");
    assert_eq!(v["fresh"], true, "{v}");
    assert_cert_for_csr(&env, "dev-c1", "dev-c1.csr");
    // P-384 and DER, with a SPIFFE ID given on the command line and matching the CSR.
    ec_csr(
        &env,
        "dev-c2",
        "P-384",
        "/CN=dev-c2",
        Some("URI:spiffe://example.org/device/c2"),
    );
    let o = env
        .token
        .tool("openssl")
        .args([
            "req",
            "-in",
            "dev-c2.csr",
            "-outform",
            "DER",
            "-out",
            "dev-c2.der",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = provision_csr(
        &env,
        "dev-c2",
        "dev-c2.der",
        &[
            "--san-uri",
            "spiffe://example.org/device/c2",
            "--cn",
            "dev-c2",
        ],
    );
    assert_eq!(v["key"], "device", "{v}");
    assert_cert_for_csr(&env, "dev-c2", "dev-c2.csr");
    let o = env
        .token
        .tool("openssl")
        .args([
            "x509",
            "-in",
            "dev-c2.cert.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("URI:spiffe://example.org/device/c2"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A rerun: the same certificate, no IssueCertificate call.
    let before = calls(&env.endpoint, &env.akid, "IssueCertificate");
    let v = provision_csr(&env, "dev-c1", "dev-c1.csr", &[]);
    assert_eq!(v["fresh"], false, "{v}");
    assert_eq!(calls(&env.endpoint, &env.akid, "IssueCertificate"), before);
    assert_eq!(env.issued_by_ca(), 2);
    // No key on the token for either device.
    let objs = env.objects_json().to_string();
    assert!(
        !objs.contains("device-dev-c1") && !objs.contains("device-dev-c2"),
        "{objs}"
    );
}

#[test]
fn mixed_manifest_makes_hsm_keys_only_for_rows_without_a_csr() {
    let env = PcaEnv::new();
    std::fs::create_dir(env.path("fleet")).unwrap();
    std::fs::create_dir(env.path("fleet/csrs")).unwrap();
    for d in ["m1", "m3"] {
        ec_csr(
            &env,
            &format!("fleet/csrs/{d}"),
            "P-256",
            &format!("/CN={d}"),
            None,
        );
    }
    std::fs::write(
        env.path("fleet/fleet.csv"),
        "device_id,cn,csr\nm1,,csrs/m1.csr\nm2,,\nm3,m3,./csrs/m3.csr\n",
    )
    .unwrap();
    let a = env
        .cmd()
        .args([
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "fleet/fleet.csv",
        ])
        .args(["--out-dir", "."])
        .assert()
        .success();
    let out = stdout_of(&a);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let key_of = |d: &str| {
        rows.iter()
            .find(|r| r["device_id"] == d)
            .map(|r| r["key"].clone())
            .unwrap_or_else(|| panic!("{d}: {out}"))
    };
    assert_eq!(key_of("m1"), "device");
    assert_eq!(key_of("m2"), "created");
    assert_eq!(key_of("m3"), "device");
    let summary = &rows.last().unwrap()["summary"];
    assert_eq!(summary["issued"], 3, "{summary}");
    for d in ["m1", "m3"] {
        assert_cert_for_csr(&env, d, &format!("fleet/csrs/{d}.csr"));
    }
    let objs = env.objects_json().to_string();
    assert!(objs.contains("device-m2"), "{objs}");
    assert!(
        !objs.contains("device-m1") && !objs.contains("device-m3"),
        "{objs}"
    );
    // A manifest of CSR rows only runs with no module and no PIN (JSON lines this time).
    ec_csr(
        &env,
        "fleet/csrs/j1",
        "P-256",
        "/CN=j1",
        Some("DNS:j1.example.org"),
    );
    std::fs::write(
        env.path("fleet/more.jsonl"),
        "{\"device_id\":\"j1\",\"san_dns\":[\"j1.example.org\"],\"csr\":\"csrs/j1.csr\"}\n",
    )
    .unwrap();
    let a = no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "fleet/more.jsonl",
        ])
        .args(["--out-dir", "."])
        .assert()
        .success();
    assert!(stdout_of(&a).contains("issued 1"), "{}", stdout_of(&a));
    assert_cert_for_csr(&env, "j1", "fleet/csrs/j1.csr");
    // Piped, the manifest's CSR paths are relative to the current directory.
    ec_csr(&env, "fleet/csrs/s1", "P-256", "/CN=s1", None);
    no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "/dev/stdin",
        ])
        .args(["--out-dir", "."])
        .write_stdin("device_id,csr\ns1,fleet/csrs/s1.csr\n")
        .assert()
        .success();
    assert_cert_for_csr(&env, "s1", "fleet/csrs/s1.csr");
    assert_eq!(env.issued_by_ca(), 5);
}

/// A bad CSR case: the manifest directory's files are set up by `setup`, the manifest is
/// `fleet/m.csv`; `want` must appear in the one error line.
struct Bad {
    name: &'static str,
    manifest: &'static str,
    want: &'static str,
}

fn make_bad_files(env: &PcaEnv) {
    let dir = env.path("bad");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let good = ec_csr(env, "bad/good", "P-256", "/CN=b1", None);
    let pem = std::fs::read_to_string(&good).unwrap();
    std::fs::write(dir.join("garbage.csr"), "hello, I am not a CSR\n").unwrap();
    let other = ec_csr(env, "bad/other", "P-256", "/CN=b1", None);
    let two = pem.clone() + &std::fs::read_to_string(&other).unwrap();
    std::fs::write(dir.join("two.csr"), two).unwrap();
    std::fs::write(dir.join("trailing.csr"), pem.clone() + "extra text\n").unwrap();
    std::fs::write(dir.join("big.csr"), pem.clone() + &" ".repeat(33 * 1024)).unwrap();
    // A signature that does not verify: flip a bit in the last byte of the DER.
    let mut der = pem::parse(pem.as_bytes()).unwrap().contents().to_vec();
    let last = der.len() - 1;
    der[last] ^= 1;
    std::fs::write(dir.join("badsig.csr"), &der).unwrap();
    let o = env
        .token
        .tool("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "bad/rsa.key",
        ])
        .args(["-out", "bad/rsa.csr", "-subj", "/CN=b1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ec_csr(env, "bad/p521", "P-521", "/CN=b1", None);
    ec_csr(env, "bad/k1", "secp256k1", "/CN=b1", None);
    ec_csr(env, "bad/o", "P-256", "/O=Acme/CN=b1", None);
    ec_csr(env, "bad/ip", "P-256", "/CN=b1", Some("IP:10.0.0.1"));
    ec_csr(
        env,
        "bad/spiffe2",
        "P-256",
        "/CN=b1",
        Some("URI:spiffe://example.org/a,URI:https://example.org/b"),
    );
    ec_csr(
        env,
        "bad/dns",
        "P-256",
        "/CN=b1",
        Some("DNS:b1.example.org"),
    );
    ec_csr(
        env,
        "bad/baddns",
        "P-256",
        "/CN=b1",
        Some("DNS:bad_name.example.org"),
    );
    ec_csr(env, "outside", "P-256", "/CN=b1", None);
    std::os::unix::fs::symlink(env.path("outside.csr"), dir.join("link.csr")).unwrap();
    std::fs::write(dir.join("sub/nothing.txt"), "").unwrap();
}

const BAD: [Bad; 19] = [
    Bad {
        name: "not a CSR",
        manifest: "device_id,csr\nb1,garbage.csr\n",
        want: "not a CSR",
    },
    Bad {
        name: "two CSRs",
        manifest: "device_id,csr\nb1,two.csr\n",
        want: "more than one PEM block",
    },
    Bad {
        name: "text after the CSR",
        manifest: "device_id,csr\nb1,trailing.csr\n",
        want: "after its PEM block",
    },
    Bad {
        name: "over 32 KiB",
        manifest: "device_id,csr\nb1,big.csr\n",
        want: "32768",
    },
    Bad {
        name: "bad signature",
        manifest: "device_id,csr\nb1,badsig.csr\n",
        want: "signature does not verify",
    },
    Bad {
        name: "RSA key",
        manifest: "device_id,csr\nb1,rsa.csr\n",
        want: "EC P-256 or P-384",
    },
    Bad {
        name: "P-521 key",
        manifest: "device_id,csr\nb1,p521.csr\n",
        want: "P-521",
    },
    Bad {
        name: "secp256k1 key",
        manifest: "device_id,csr\nb1,k1.csr\n",
        want: "EC curve 1.3.132.0.10",
    },
    Bad {
        name: "CN differs",
        manifest: "device_id,cn,csr\nb1,b2,good.csr\n",
        want: "CSR's CN [b1] differ from the requested [b2]",
    },
    Bad {
        name: "DNS SAN differs",
        manifest: "device_id,san_dns,csr\nb1,b1.example.org,good.csr\n",
        want: "DNS SANs [] differ",
    },
    Bad {
        name: "DNS SAN not requested but other",
        manifest: "device_id,san_dns,csr\nb1,x.example.org,dns.csr\n",
        want: "DNS SANs [b1.example.org] differ",
    },
    Bad {
        name: "subject beyond a CN",
        manifest: "device_id,csr\nb1,o.csr\n",
        want: "subject",
    },
    Bad {
        name: "IP SAN",
        manifest: "device_id,csr\nb1,ip.csr\n",
        want: "DNS names and URIs only",
    },
    Bad {
        name: "SPIFFE ID and another URI",
        manifest: "device_id,csr\nb1,spiffe2.csr\n",
        want: "SPIFFE ID",
    },
    Bad {
        name: "invalid DNS SAN",
        manifest: "device_id,csr\nb1,baddns.csr\n",
        want: "invalid --san-dns 'bad_name.example.org'",
    },
    Bad {
        name: "path with ..",
        manifest: "device_id,csr\nb1,sub/../good.csr\n",
        want: "no '..'",
    },
    Bad {
        name: "absolute path",
        manifest: "device_id,csr\nb1,/etc/hostname\n",
        want: "must be relative",
    },
    Bad {
        name: "symlink out",
        manifest: "device_id,csr\nb1,link.csr\n",
        want: "leads outside the manifest's directory",
    },
    Bad {
        name: "same key twice",
        manifest: "device_id,csr\nb1,good.csr\nb2,good.csr\n",
        want: "one key, one device",
    },
];

#[test]
fn bad_csrs_are_refused_with_one_line_before_any_aws_call() {
    let env = PcaEnv::new();
    make_bad_files(&env);
    // Its own access key: every call of these runs would be counted under it.
    let akid = format!("{}BAD", env.akid);
    for (i, b) in BAD.iter().enumerate() {
        let m = format!("bad/m{i}.csv");
        std::fs::write(env.path(&m), b.manifest).unwrap();
        let a = no_hsm_cmd(&env, &akid)
            .args(["provision", "--ca-arn", env.ca(), "--manifest", &m])
            .assert()
            .failure()
            .code(2);
        let line = common::one_line_error(&a, "");
        assert!(line.contains(b.want), "{}: {line}", b.name);
        assert!(line.contains("line "), "{}: names the line: {line}", b.name);
    }
    // One device with --csr: refused the same way (exit 1), before any call too.
    let a = no_hsm_cmd(&env, &akid)
        .args(["provision", "--ca-arn", env.ca(), "--device-id", "b1"])
        .args(["--csr", "bad/badsig.csr"])
        .assert()
        .failure();
    common::one_line_error(&a, "");
    let a = no_hsm_cmd(&env, &akid)
        .args(["provision", "--ca-arn", env.ca(), "--device-id", "b1"])
        .args(["--csr", "bad/good.csr", "--cn", "other"])
        .assert()
        .failure();
    assert!(common::one_line_error(&a, "").contains("differ"));
    let seen = standin::calls_of(&env.endpoint, &akid);
    assert!(
        seen.is_null() || seen["total"].as_u64() == Some(0),
        "no AWS call at all: {seen}"
    );
    assert_eq!(calls(&env.endpoint, &env.akid, "IssueCertificate"), 0);
    assert_eq!(env.issued_by_ca(), 0);
}

#[test]
fn one_key_one_device_and_compromised_keys_are_refused() {
    let env = PcaEnv::new();
    ec_csr(&env, "ka", "P-256", "/CN=ka", None);
    let v = provision_csr(&env, "ka", "ka.csr", &[]);
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    // The same key for a second device (a fresh CSR from the same key): refused, nothing issued.
    csr_for_key(&env, "ka.key", "kb.csr", "/CN=kb");
    let issue_before = calls(&env.endpoint, &env.akid, "IssueCertificate");
    let a = no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "kb",
            "--csr",
            "kb.csr",
        ])
        .assert()
        .failure()
        .code(1);
    let line = common::one_line_error(&a, "");
    assert!(line.contains("already certified for device ka"), "{line}");
    assert!(line.contains("one key, one device"), "{line}");
    assert_eq!(
        calls(&env.endpoint, &env.akid, "IssueCertificate"),
        issue_before
    );
    // The marker is one item, written with the certificate.
    let markers: Vec<_> = env
        .table_items()
        .into_iter()
        .filter(|i| i["pk"].starts_with("KEY#") && i["sk"] == "DEVICE")
        .collect();
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(markers[0]["device_id"], "ka");
    // Nothing left behind for kb: no intent, no record.
    assert!(env
        .table_items()
        .iter()
        .all(|i| i.get("device_id").map(String::as_str) != Some("kb")));
    // Revoked for key-compromise: the key is refused for any device, CSR included.
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "key-compromise",
        ])
        .assert()
        .success();
    csr_for_key(&env, "ka.key", "kc.csr", "/CN=kc");
    let a = no_hsm_cmd(&env, &env.akid)
        .args([
            "provision",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "kc",
            "--csr",
            "kc.csr",
        ])
        .assert()
        .failure()
        .code(1);
    assert!(common::one_line_error(&a, "").contains("key-compromise"));
    assert_eq!(
        calls(&env.endpoint, &env.akid, "IssueCertificate"),
        issue_before
    );
    // A new key for the first device is certified as usual.
    ec_csr(&env, "ka2", "P-256", "/CN=ka", None);
    let v = provision_csr(&env, "ka", "ka2.csr", &[]);
    assert_eq!(v["fresh"], true, "{v}");
    assert_eq!(v["record"]["generation"], 1, "{v}");
}

/// The stand-in holds one request, the test SIGKILLs `provision --csr` there, drops the request,
/// then reruns: exactly one certificate for the device, carrying the CSR's key.
#[test]
fn sigkill_in_csr_mode_then_rerun_gives_exactly_one_certificate() {
    const POINTS: [(&str, &str, Option<&str>); 6] = [
        ("PutItem", "request", None),
        ("IssueCertificate", "request", None),
        ("IssueCertificate", "answer", None),
        ("UpdateItem", "request", Some("IssueCertificate")),
        ("GetCertificate", "request", None),
        ("TransactWriteItems", "answer", None),
    ];
    let env = PcaEnv::new();
    let mut devices = Vec::new();
    for round in 0..2 {
        for (i, (op, stage, after)) in POINTS.iter().enumerate() {
            let dev = format!("ck-{round}-{i}");
            let csr = format!("{dev}.csr");
            ec_csr(&env, &dev, "P-256", &format!("/CN={dev}"), None);
            let before = env.issued_by_ca();
            standin::hold(&env.endpoint, &env.akid, op, stage, *after);
            let mut child = no_hsm_std_cmd(&env)
                .args([
                    "provision",
                    "--ca-arn",
                    env.ca(),
                    "--device-id",
                    &dev,
                    "--csr",
                    &csr,
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
                    "{dev}: ended before {op}/{stage}"
                );
                assert!(
                    Instant::now() < deadline,
                    "{dev}: {op}/{stage} never reached"
                );
            }
            child.kill().unwrap();
            let _ = child.wait();
            let rel = standin::release(&env.endpoint, &env.akid, "drop");
            assert_eq!(rel["finished"], true, "{rel}");
            let v = provision_csr(&env, &dev, &csr, &[]);
            assert_eq!(v["record"]["device_id"], dev.as_str());
            assert_eq!(env.issued_by_ca() - before, 1, "{dev}: one certificate");
            assert_cert_for_csr(&env, &dev, &csr);
            devices.push(dev);
        }
    }
    let items = env.table_items();
    for d in &devices {
        let of = |sk: &str| {
            items
                .iter()
                .filter(|i| i.get("device_id") == Some(d) && i["sk"].starts_with(sk))
                .count()
        };
        assert_eq!((of("CA#"), of("CERT#"), of("CURRENT")), (1, 1, 1), "{d}");
        assert!(
            items.iter().all(|i| i.get("device_id") != Some(d)
                || !i["sk"].starts_with("INTENT#")
                || i["state"] == "ISSUED"),
            "{d}: dangling intent"
        );
    }
    assert_eq!(env.issued_by_ca(), devices.len());
    assert!(total_calls(&env.endpoint, &env.akid) > 0);
}

/// A manifest of device CSRs killed mid-run (the stand-in holds one request of the batch, the
/// process is SIGKILLed there), three times at different steps, then run to the end: every device
/// has exactly one certificate, with its CSR's key.
#[test]
fn sigkill_a_csr_manifest_run_three_times_then_finish_with_one_certificate_each() {
    const N: usize = 40;
    let env = PcaEnv::new();
    std::fs::create_dir(env.path("csrs")).unwrap();
    let mut m = String::from("device_id,csr\n");
    for i in 0..N {
        let d = format!("bk-{i:02}");
        ec_csr(
            &env,
            &format!("csrs/{d}"),
            "P-256",
            &format!("/CN={d}"),
            None,
        );
        m.push_str(&format!("{d},csrs/{d}.csr\n"));
    }
    std::fs::write(env.path("fleet.csv"), m).unwrap();
    let points = [
        ("IssueCertificate", "answer", None),
        ("UpdateItem", "request", Some("IssueCertificate")),
        ("TransactWriteItems", "answer", None),
    ];
    for (op, stage, after) in points {
        standin::hold(&env.endpoint, &env.akid, op, stage, after);
        let mut child = no_hsm_std_cmd(&env)
            .args(["provision", "--ca-arn", env.ca(), "--manifest", "fleet.csv"])
            .args(["--issue-tps", "5"])
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
                "ended before {op}/{stage}"
            );
            assert!(Instant::now() < deadline, "{op}/{stage} never reached");
        }
        child.kill().unwrap();
        let _ = child.wait();
        let rel = standin::release(&env.endpoint, &env.akid, "drop");
        assert_eq!(rel["finished"], true, "{rel}");
    }
    let a = no_hsm_cmd(&env, &env.akid)
        .args([
            "--json",
            "provision",
            "--ca-arn",
            env.ca(),
            "--manifest",
            "fleet.csv",
        ])
        .args(["--out-dir", "."])
        .assert()
        .success();
    let out = stdout_of(&a);
    let s: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(s["summary"]["failed"], 0, "{s}");
    let items = env.table_items();
    for i in 0..N {
        let d = format!("bk-{i:02}");
        let n = |sk: &str| {
            items
                .iter()
                .filter(|it| it.get("device_id") == Some(&d) && it["sk"].starts_with(sk))
                .count()
        };
        assert_eq!((n("CA#"), n("CERT#"), n("CURRENT")), (1, 1, 1), "{d}");
        assert_cert_for_csr(&env, &d, &format!("csrs/{d}.csr"));
    }
    assert_eq!(
        env.issued_by_ca(),
        N,
        "one certificate per device over four runs"
    );
}
