//! `pca crl`: the CA's CRL fetched from its S3 bucket (as the stand-in publishes it, like PCA),
//! verified with the CA certificate, and a revoked device's serial found in it with its reason.

mod common;
mod pca_support;

use common::{stderr_of, stdout_of};
use pca_support::PcaEnv;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn s3(env: &PcaEnv) -> aws_sdk_s3::Client {
    env.s3()
}

fn enable_crl(env: &PcaEnv, ca: &str, bucket: &str) {
    env.enable_crl(ca, bucket);
}

fn ca_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn crl_json(env: &PcaEnv, args: &[&str]) -> serde_json::Value {
    let a = env
        .cmd()
        .args(["--json", "pca", "crl", "--ca-arn", env.ca()])
        .args(args)
        .assert()
        .success();
    serde_json::from_str(stdout_of(&a).trim()).expect("JSON")
}

#[test]
fn crl_lists_a_revoked_device_with_its_reason_and_openssl_verifies_it() {
    let env = PcaEnv::new();
    let bucket = format!("crl-{}", env.table.to_lowercase());
    enable_crl(&env, env.ca(), &bucket);
    let revoked = env.provision("crl-1")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = env.provision("crl-2")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let before = crl_json(&env, &["--serial", &revoked]);
    assert_eq!(before["serial"]["revoked"], false, "{before}");
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &revoked,
            "--reason",
            "key-compromise",
        ])
        .assert()
        .success();

    let v = crl_json(&env, &["--serial", &revoked, "--out", "issuing.crl"]);
    assert_eq!(v["bucket"], bucket.as_str());
    assert_eq!(v["key"], format!("crl/{}.crl", ca_id(env.ca())));
    assert_eq!(v["revoked_count"], 1);
    assert_eq!(v["stale"], false);
    assert_eq!(v["signature_verified"], true);
    let n_before: u64 = before["crl_number"].as_str().unwrap().parse().unwrap();
    let n_after: u64 = v["crl_number"].as_str().unwrap().parse().unwrap();
    assert!(n_after > n_before, "{before} then {v}");
    assert_eq!(v["serial"]["revoked"], true, "{v}");
    assert_eq!(v["serial"]["reason"], "key-compromise");
    assert!(v["issuer"].as_str().unwrap().contains("issuing"), "{v}");

    let text = env
        .cmd()
        .args(["pca", "crl", "--ca-arn", env.ca(), "--serial", &kept])
        .assert()
        .success();
    let out = stdout_of(&text);
    assert!(out.contains("revoked:     1\n"), "{out}");
    assert!(
        out.contains(&format!("serial {kept}: not revoked")),
        "{out}"
    );

    // openssl agrees: the file is the CRL, signed by the issuing CA.
    let clients = env.clients();
    let got = block_on(
        clients
            .pca
            .get_certificate_authority_certificate()
            .certificate_authority_arn(env.ca())
            .send(),
    )
    .unwrap();
    let chain = format!(
        "{}\n{}\n",
        got.certificate().unwrap(),
        got.certificate_chain().unwrap_or_default()
    );
    std::fs::write(env.path("chain.pem"), chain).unwrap();
    let o = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-verify", "-in"])
        .arg(env.path("issuing.crl"))
        .arg("-CAfile")
        .arg(env.path("chain.pem"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("verify OK"), "{err}");
}

fn one_line_failure(env: &PcaEnv, out: &str) -> String {
    let a = env
        .cmd()
        .args(["pca", "crl", "--ca-arn", env.ca(), "--out", out])
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(!env.path(out).exists(), "{out} written despite the error");
    err
}

#[test]
fn no_crl_a_forged_crl_and_another_cas_crl_are_errors() {
    let env = PcaEnv::new();
    let err = one_line_failure(&env, "none.crl");
    assert!(err.contains("publishes no CRL"), "{err}");

    let bucket = format!("crl-{}", env.table.to_lowercase());
    enable_crl(&env, env.ca(), &bucket);
    enable_crl(&env, &env.hier.intermediate_arn, &bucket);
    let s3 = s3(&env);
    let key = format!("crl/{}.crl", ca_id(env.ca()));
    let get = |k: String| {
        block_on(async {
            let o = s3.get_object().bucket(&bucket).key(k).send().await.unwrap();
            o.body.collect().await.unwrap().into_bytes().to_vec()
        })
    };
    let put = |body: Vec<u8>| {
        block_on(
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body.into())
                .send(),
        )
        .unwrap();
    };
    let mut forged = get(key.clone());
    let last = forged.len() - 2;
    forged[last] ^= 0x01; // inside the signature
    put(forged);
    let err = one_line_failure(&env, "forged.crl");
    assert!(
        err.contains("does not verify with the CA certificate"),
        "{err}"
    );

    put(get(format!(
        "crl/{}.crl",
        ca_id(&env.hier.intermediate_arn)
    )));
    let err = one_line_failure(&env, "other.crl");
    assert!(err.contains("not by this CA"), "{err}");
}

fn revoke_cmd(env: &PcaEnv, serial: &str, wait: &str) -> assert_cmd::Command {
    let mut c = env.cmd();
    c.args([
        "pca",
        "revoke",
        "--serial",
        serial,
        "--reason",
        "key-compromise",
    ])
    .args(["--wait-crl", wait]);
    c
}

fn registry_status(env: &PcaEnv, device: &str) -> String {
    env.show(device)["current"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn revoke_wait_crl_waits_for_the_crl_that_lists_the_serial() {
    let env = PcaEnv::new();
    let bucket = format!("crl-{}", env.table.to_lowercase());
    enable_crl(&env, env.ca(), &bucket);
    // The stand-in publishes the CRL 3 s after the revocation (AWS: about 30 minutes).
    common::standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"crl_delay_seconds": 3}),
    );
    let serial = env.provision("wait-1")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let a = revoke_cmd(&env, &serial, "60").assert().success();
    let (out, err) = (stdout_of(&a), stderr_of(&a));
    assert!(out.contains(&format!("revoked serial {serial}")), "{out}");
    assert!(
        out.contains(&format!("lists serial {serial}: revoked (key-compromise")),
        "{out}"
    );
    // It read the CRL at least once before the stand-in had published the new one.
    assert!(err.contains("does not list it yet"), "{err}");
    let v = crl_json(&env, &["--serial", &serial]);
    assert_eq!(v["serial"]["revoked"], true, "{v}");

    // Too short a wait: the revocation stands, the command fails in one line saying so.
    common::standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"crl_delay_seconds": 600}),
    );
    let serial2 = env.provision("wait-2")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let a = revoke_cmd(&env, &serial2, "2").assert().code(1);
    let err = stderr_of(&a);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(&format!("serial {serial2} is revoked, but")),
        "{err}"
    );
    assert_eq!(registry_status(&env, "wait-2"), "REVOKED");
}

#[test]
fn revoke_wait_crl_on_a_ca_without_crl_revokes_nothing() {
    let env = PcaEnv::new();
    let serial = env.provision("nocrl-1")["record"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let a = revoke_cmd(&env, &serial, "5").assert().code(1);
    let err = stderr_of(&a);
    assert!(
        err.starts_with("error: ")
            && err.trim_end().lines().count() == 1
            && err.contains("publishes no CRL"),
        "{err}"
    );
    assert_eq!(registry_status(&env, "nocrl-1"), "ISSUED");
}
