//! End to end against the local AWS stand-in (real HTTP, real SDK) and a real SoftHSM token:
//! provision, rerun, CSR interop with openssl, `pca issue --csr`, sub-day validity, revoke,
//! re-provision after revoke, show/list.

mod common;
mod pca_support;

use common::{standin, stdout_of};
use pca_support::{pem_der, PcaEnv};

fn openssl_out(env: &PcaEnv, args: &[&str]) -> String {
    let out = env
        .token
        .tool("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn provision_end_to_end_then_rerun_issues_nothing_new() {
    let env = PcaEnv::new();
    let v = env.provision("dev-1");
    assert_eq!(v["fresh"], true, "{v}");
    assert_eq!(v["called_issue"], true, "{v}");
    assert_eq!(v["key"], "created", "{v}");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    assert_eq!(v["record"]["device_id"], "dev-1");
    assert_eq!(v["record"]["status"], "ISSUED");

    let cert = env.path("dev-1.cert.pem");
    let chain = env.path("dev-1.chain.pem");
    // The certificate's public key is the HSM key's.
    env.cmd()
        .args([
            "export-pubkey",
            "--label",
            "device-dev-1",
            "--out",
            "hsm-pub.pem",
        ])
        .assert()
        .success();
    let cert_pub = openssl_out(
        &env,
        &["x509", "-in", "dev-1.cert.pem", "-pubkey", "-noout"],
    );
    let hsm_pub = std::fs::read_to_string(env.path("hsm-pub.pem")).unwrap();
    assert_eq!(cert_pub.trim(), hsm_pub.trim());
    // The chain verifies up to the root with openssl.
    let (ok, msg) = env.openssl_verify(&cert, &chain);
    assert!(ok, "openssl verify: {msg}");
    // The recorded serial is the certificate's.
    let s = openssl_out(
        &env,
        &["x509", "-in", "dev-1.cert.pem", "-serial", "-noout"],
    );
    let cert_serial = s.trim().trim_start_matches("serial=").to_ascii_lowercase();
    assert_eq!(
        cert_serial.trim_start_matches('0'),
        serial.trim_start_matches('0')
    );
    // The client template put clientAuth in.
    let text = openssl_out(&env, &["x509", "-in", "dev-1.cert.pem", "-noout", "-text"]);
    assert!(text.contains("TLS Web Client Authentication"), "{text}");

    // Registry: exactly one record, read with the SDK directly.
    let markers = env.items_with_sk("CA#");
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(markers[0]["serial"], serial);
    assert_eq!(markers[0]["ca_arn"], env.ca());
    assert_eq!(env.items_with_sk("CERT#").len(), 1);
    let cur = env.items_with_sk("CURRENT");
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0]["serial"], serial);
    let intents = env.items_with_sk("INTENT#");
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["state"], "ISSUED");
    assert_eq!(env.issued_by_ca(), 1);

    // Rerun: same certificate, no IssueCertificate, no HSM key work.
    let before = pem_der(&cert);
    std::fs::remove_file(&cert).unwrap();
    let calls = |op| standin::calls(&env.endpoint, &env.akid, op);
    let (issue_before, get_before) = (calls("IssueCertificate"), calls("GetCertificate"));
    assert_eq!(issue_before, 1, "the first run's IssueCertificate calls");
    let v2 = env.provision("dev-1");
    assert_eq!(
        (calls("IssueCertificate"), calls("GetCertificate")),
        (issue_before, get_before),
        "the rerun of a completed provision called IssueCertificate or GetCertificate"
    );
    assert_eq!(v2["fresh"], false, "{v2}");
    assert_eq!(v2["called_issue"], false, "{v2}");
    assert_eq!(v2["key"], "untouched", "{v2}");
    assert_eq!(v2["record"]["serial"], serial.as_str());
    assert_eq!(
        pem_der(&cert),
        before,
        "rerun rewrote a different certificate"
    );
    assert_eq!(env.items_with_sk("CA#").len(), 1);
    assert_eq!(env.items_with_sk("CERT#").len(), 1);
    assert_eq!(
        env.issued_by_ca(),
        1,
        "the stand-in issued a second certificate"
    );

    // Look-ups by device id and by serial.
    let shown = env.show("dev-1");
    assert_eq!(shown["current"]["serial"], serial.as_str());
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
    let colon: String = serial
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let a = env
        .cmd()
        .args(["--json", "pca", "show", "--serial", &colon])
        .assert()
        .success();
    let by_serial: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(by_serial[0]["device_id"], "dev-1");
}

#[test]
fn pca_csr_from_hsm_key_verifies_with_openssl() {
    let env = PcaEnv::new();
    env.token.generate_key("k1");
    env.cmd()
        .args([
            "pca",
            "csr",
            "--label",
            "k1",
            "--cn",
            "device-k1",
            "--san-uri",
            "spiffe://example.org/device/k1",
            "--san-dns",
            "k1.example.org",
            "--out",
            "k1.csr",
        ])
        .assert()
        .success();
    let out = env
        .token
        .tool("openssl")
        .args(["req", "-in", "k1.csr", "-noout", "-verify", "-text"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("verify OK") || all.contains("Certificate request self-signature verify OK"),
        "{all}"
    );
    assert!(
        all.contains("CN = device-k1") || all.contains("CN=device-k1"),
        "{all}"
    );
    assert!(all.contains("URI:spiffe://example.org/device/k1"), "{all}");
    assert!(all.contains("DNS:k1.example.org"), "{all}");
    // The CSR's key is the HSM key.
    env.cmd()
        .args(["export-pubkey", "--label", "k1", "--out", "k1.pub"])
        .assert()
        .success();
    let csr_pub = openssl_out(&env, &["req", "-in", "k1.csr", "-pubkey", "-noout"]);
    assert_eq!(
        csr_pub.trim(),
        std::fs::read_to_string(env.path("k1.pub")).unwrap().trim()
    );

    // Empty subject: the SAN becomes critical; no SAN at all is refused.
    env.cmd()
        .args([
            "pca",
            "csr",
            "--label",
            "k1",
            "--san-uri",
            "spiffe://example.org/x",
            "--out",
            "e.csr",
        ])
        .assert()
        .success();
    let text = openssl_out(&env, &["req", "-in", "e.csr", "-noout", "-text"]);
    assert!(
        text.contains("X509v3 Subject Alternative Name: critical"),
        "{text}"
    );
    let a = env
        .cmd()
        .args(["pca", "csr", "--label", "k1", "--out", "none.csr"])
        .assert()
        .failure();
    let err = common::stderr_of(&a);
    assert!(
        err.starts_with("error: an empty subject needs at least one SAN"),
        "{err}"
    );
    assert!(!env.path("none.csr").exists());
}

#[test]
fn issue_with_openssl_csr_sub_day_validity_server_template_and_rerun() {
    let env = PcaEnv::new();
    let gen = |name: &str, cn: &str| env.openssl_csr(name, cn);
    gen("ext", "ext-1");
    let issue = |csr: &str| {
        env.cmd()
            .args([
                "--json",
                "pca",
                "issue",
                "--ca-arn",
                env.ca(),
                "--device-id",
                "ext-1",
                "--csr",
                csr,
                "--validity",
                "12h",
                "--template",
                "server",
            ])
            .assert()
    };
    let a = issue("ext.csr").success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["fresh"], true);
    let text = openssl_out(
        &env,
        &[
            "x509",
            "-in",
            "ext-1.cert.pem",
            "-noout",
            "-text",
            "-enddate",
        ],
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    // 12h → ABSOLUTE: NotAfter is about 12 hours from now (never DAYS=0, never a whole day).
    let end_line = text.lines().find(|l| l.starts_with("notAfter=")).unwrap();
    let end = time::PrimitiveDateTime::parse(
        end_line
            .trim_start_matches("notAfter=")
            .trim_end_matches(" GMT"),
        time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ),
    )
    .unwrap()
    .assume_utc();
    let hours = (end - time::OffsetDateTime::now_utc()).as_seconds_f64() / 3600.0;
    assert!(
        (11.9..=12.1).contains(&hours),
        "NotAfter is {hours:.2} h away: {end_line}"
    );
    let (ok, msg) = env.openssl_verify(&env.path("ext-1.cert.pem"), &env.path("ext-1.chain.pem"));
    assert!(ok, "{msg}");

    // Rerun with the same CSR: the same certificate, nothing new.
    let a = issue("ext.csr").success();
    let v2: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v2["fresh"], false);
    assert_eq!(v2["called_issue"], false);
    assert_eq!(v2["record"]["serial"], v["record"]["serial"]);

    // A different CSR for the same device: refused, nothing recorded.
    gen("other", "ext-1");
    let a = issue("other.csr").failure();
    let err = common::stderr_of(&a);
    assert!(
        err.starts_with("error: device ext-1 already has certificate"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(env.items_with_sk("CA#").len(), 1);
    assert_eq!(env.issued_by_ca(), 1);
}

#[test]
fn revoke_then_reprovision_issues_generation_1() {
    let env = PcaEnv::new();
    let v = env.provision("dev-r");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    let a = env
        .cmd()
        .args([
            "--json",
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "affiliation-changed",
        ])
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(r["changed"], true);
    assert_eq!(r["serial"]["status"], "REVOKED");
    // AWS was asked exactly once (the registry never claims a revocation AWS did not make).
    let revokes = || standin::calls(&env.endpoint, &env.akid, "RevokeCertificate");
    assert_eq!(revokes(), 1, "RevokeCertificate calls of `pca revoke`");
    let shown = env.show("dev-r");
    assert_eq!(shown["current"]["status"], "REVOKED");
    assert_eq!(shown["current"]["revocation_reason"], "AFFILIATION_CHANGED");
    // The stand-in knows it is revoked: revoking again there is RequestAlreadyProcessed, which
    // `pca revoke` reports as "already revoked" only from the registry — check both sides.
    let a = env
        .cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "superseded",
        ])
        .assert()
        .success();
    assert!(stdout_of(&a).contains("already revoked"));
    assert_eq!(
        revokes(),
        1,
        "a rerun on a serial the registry says is REVOKED called RevokeCertificate again"
    );
    let a = env
        .cmd()
        .args(["--json", "pca", "list", "--status", "revoked"])
        .assert()
        .success();
    let listed: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["serial"], serial.as_str());

    // A new certificate for the device (same HSM key, reused: the reason was not key-compromise,
    // see tests/pca_key_compromise.rs), generation 1.
    let v2 = env.provision("dev-r");
    assert_eq!(v2["fresh"], true);
    assert_eq!(v2["key"], "reused");
    assert_eq!(v2["record"]["generation"], 1);
    assert_ne!(v2["record"]["serial"], serial.as_str());
    let shown = env.show("dev-r");
    assert_eq!(shown["current"]["status"], "ISSUED");
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    assert_eq!(shown["history"][0]["status"], "REVOKED");
    assert_eq!(env.items_with_sk("CA#").len(), 2);
    assert_eq!(env.issued_by_ca(), 2);
    let a = env
        .cmd()
        .args(["--json", "pca", "list", "--status", "issued"])
        .assert()
        .success();
    let listed: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["serial"], v2["record"]["serial"]);
}
