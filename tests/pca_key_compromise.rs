//! A public key revoked for key-compromise is never certified again: not by `provision` reusing
//! the device's HSM key, not by `pca issue --csr` for another device, not after a routine
//! revocation later declared a compromise. A new key is certified as usual. Checked against the
//! real SoftHSM token and the stand-in, with IssueCertificate calls counted at the stand-in and the
//! registry read with the SDK directly.

mod common;
mod pca_support;

use common::standin::{calls, issue_calls};
use common::{stderr_of, stdout_of};
use pca_support::PcaEnv;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) of the DER SubjectPublicKeyInfo of the PEM certificate `pem`, computed by openssl.
fn spki_sha256_of_cert(env: &PcaEnv, pem: &str) -> String {
    let cert = env.path("spki-src.pem");
    std::fs::write(&cert, pem).unwrap();
    let out = env
        .token
        .tool("sh")
        .arg("-c")
        .arg("openssl x509 -in spki-src.pem -pubkey -noout | openssl pkey -pubin -outform DER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hex::encode(Sha256::digest(&out.stdout))
}

fn revoke(env: &PcaEnv, serial: &str, reason: &str) -> serde_json::Value {
    let a = env
        .cmd()
        .args(["--json", "pca", "revoke", "--serial", serial])
        .args(["--reason", reason])
        .assert()
        .success();
    serde_json::from_str(&stdout_of(&a)).unwrap()
}

/// The one-line refusal: exit 1, a single `error:` line naming key-compromise and the way out.
fn assert_refused(a: assert_cmd::assert::Assert, serial: &str) {
    let a = a.failure().code(1);
    let err = stderr_of(&a);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains("key-compromise"), "{err}");
    assert!(lines[0].contains(serial), "names the revoked serial: {err}");
    assert!(lines[0].contains("--key-label"), "names the way out: {err}");
}

fn cert_pem_of(env: &PcaEnv, device: &str) -> String {
    let shown = env.show(device);
    let hist = shown["history"].as_array().unwrap();
    let serial = shown["current"]["serial"].as_str().unwrap();
    let item = env
        .items_with_sk("CERT#")
        .into_iter()
        .find(|i| i["serial"] == serial)
        .unwrap_or_else(|| panic!("CERT# item of {serial} ({hist:?})"));
    item["cert_pem"].clone()
}

#[test]
fn compromised_key_is_never_certified_again() {
    let env = PcaEnv::new();
    let v = env.provision("dev-k");
    assert_eq!(v["key"], "created");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    let spki = spki_sha256_of_cert(&env, &cert_pem_of(&env, "dev-k"));
    // A CSR from the same HSM key, made before the compromise is known.
    env.cmd()
        .args(["pca", "csr", "--label", "device-dev-k", "--cn", "other-dev"])
        .args(["--out", "same-key.csr"])
        .assert()
        .success();

    let r = revoke(&env, &serial, "key-compromise");
    assert_eq!(r["changed"], true);
    assert_eq!(r["compromised_key"], spki.as_str());
    let keys = env.items_with_sk("COMPROMISED");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["pk"], format!("KEY#{spki}"));
    assert_eq!(keys[0]["serial"], serial);
    let calls = issue_calls(&env.endpoint, env.ca());

    // provision would reuse the HSM key `device-dev-k`: refused before any IssueCertificate.
    let a = env.provision_cmd("dev-k").assert();
    assert_refused(a, &serial);
    // pca issue with a CSR carrying the same public key, for another device: refused too.
    let a = env
        .cmd()
        .args([
            "pca",
            "issue",
            "--ca-arn",
            env.ca(),
            "--device-id",
            "other-dev",
        ])
        .args(["--csr", "same-key.csr"])
        .assert();
    assert_refused(a, &serial);
    assert_eq!(
        issue_calls(&env.endpoint, env.ca()),
        calls,
        "no IssueCertificate sent"
    );
    // Nothing left behind: only generation 0's intent (ISSUED), no item for the other device.
    let intents = env.items_with_sk("INTENT#");
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0]["state"], "ISSUED");
    assert!(env
        .table_items()
        .iter()
        .all(|i| i["pk"] != "DEVICE#other-dev"));
    assert_eq!(env.show("dev-k")["current"]["status"], "REVOKED");

    // The way out: a new key pair under a new label gets generation 1.
    let a = env
        .provision_cmd("dev-k")
        .arg("--json")
        .args(["--key-label", "device-dev-k-2"])
        .assert()
        .success();
    let v2: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v2["key"], "created");
    assert_eq!(v2["record"]["generation"], 1);
    assert_ne!(spki_sha256_of_cert(&env, &cert_pem_of(&env, "dev-k")), spki);
    assert_eq!(env.issued_by_ca(), 2);

    // Revoking again is a no-op that keeps the first declaration.
    let r = revoke(&env, &serial, "key-compromise");
    assert_eq!(r["changed"], false);
    assert_eq!(r["compromised_key"], spki.as_str());
    assert_eq!(env.items_with_sk("COMPROMISED").len(), 1);
}

#[test]
fn compromise_declared_after_a_routine_revocation_blocks_the_key() {
    let env = PcaEnv::new();
    let v = env.provision("dev-s");
    let serial = v["record"]["serial"].as_str().unwrap().to_string();
    let r = revoke(&env, &serial, "cessation-of-operation");
    assert_eq!(r["changed"], true);
    assert!(r.get("compromised_key").is_none(), "{r}");
    assert!(env.items_with_sk("COMPROMISED").is_empty());

    // Later found compromised: the certificate is already revoked (at AWS and in the registry),
    // but the key is now recorded, and provision no longer reuses it.
    let r = revoke(&env, &serial, "key-compromise");
    assert_eq!(r["changed"], false);
    let spki = spki_sha256_of_cert(&env, &cert_pem_of(&env, "dev-s"));
    assert_eq!(r["compromised_key"], spki.as_str());
    let calls = issue_calls(&env.endpoint, env.ca());
    let a = env.provision_cmd("dev-s").assert();
    assert_refused(a, &serial);
    assert_eq!(issue_calls(&env.endpoint, env.ca()), calls);
}

/// The PEM of the certificate with `serial`, from its history item.
fn cert_pem_by_serial(env: &PcaEnv, serial: &str) -> String {
    env.items_with_sk("CERT#")
        .into_iter()
        .find(|i| i["serial"] == serial)
        .unwrap_or_else(|| panic!("no CERT# item of {serial}"))["cert_pem"]
        .clone()
}

/// A device renewed twice onto new keys: revoking its middle certificate for key-compromise marks
/// that certificate's key (not the first's, not the current one) from the PEM its history item
/// holds (no GetCertificate), leaves the current certificate ISSUED, and `--ca-arn` picks the
/// serial's marker of that CA (another CA is refused, nothing changed).
#[test]
fn revoking_a_superseded_certificate_marks_its_own_key_and_keeps_the_current() {
    let env = PcaEnv::new();
    let dev = "dev-sup";
    let first = env.provision(dev)["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let mut serials = vec![first];
    for _ in 0..2 {
        env.cmd()
            .args(["--json", "renew", "--ca-arn", env.ca(), "--device-id", dev])
            .arg("--force")
            .assert()
            .success();
        let s = env.show(dev)["current"]["serial"]
            .as_str()
            .unwrap()
            .to_string();
        serials.push(s);
    }
    let spkis: Vec<String> = serials
        .iter()
        .map(|s| spki_sha256_of_cert(&env, &cert_pem_by_serial(&env, s)))
        .collect();
    assert!(
        spkis[0] != spkis[1] && spkis[1] != spkis[2] && spkis[0] != spkis[2],
        "each renewal rotated the key"
    );
    let (middle, current) = (&serials[1], &serials[2]);

    // Another CA's ARN: refused, nothing revoked.
    let other = env.hier.intermediate_arn.clone();
    let a = env
        .cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            middle,
            "--reason",
            "key-compromise",
        ])
        .args(["--ca-arn", &other])
        .assert()
        .failure();
    common::one_line_error(&a, "was not issued by CA");
    assert!(env.items_with_sk("COMPROMISED").is_empty());

    let gets = calls(&env.endpoint, &env.akid, "GetCertificate");
    let a = env
        .cmd()
        .args([
            "--json",
            "pca",
            "revoke",
            "--serial",
            middle,
            "--reason",
            "key-compromise",
        ])
        .args(["--ca-arn", env.ca()])
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["compromised_key"], spkis[1].as_str(), "{r}");
    assert_eq!(
        calls(&env.endpoint, &env.akid, "GetCertificate"),
        gets,
        "the key came from the history item's PEM, not from AWS"
    );
    let keys = env.items_with_sk("COMPROMISED");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["pk"], format!("KEY#{}", spkis[1]));
    let shown = env.show(dev);
    assert_eq!(shown["current"]["serial"], current.as_str(), "{shown}");
    assert_eq!(shown["current"]["status"], "ISSUED", "{shown}");
}
