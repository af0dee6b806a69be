//! Shared by the device-CSR tests: keys and CSRs made by openssl in the test's scratch dir (the
//! way a device or a contract manufacturer would hand them over), `hsm-demo` run with no PKCS#11
//! module and no PIN, and public-key comparisons done by openssl.
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;

use crate::pca_support::{aws_env, PcaEnv};

/// `openssl req -new` with a fresh EC key on `curve` (`P-256`, `P-384`, `P-521`, ...): key
/// `<name>.key`, CSR `<name>.csr` (PEM) in the scratch dir; `subj` like `/CN=dev-1`, `san` like
/// `DNS:a.example.org,URI:spiffe://example.org/d/1`.
pub fn ec_csr(env: &PcaEnv, name: &str, curve: &str, subj: &str, san: Option<&str>) -> PathBuf {
    let key = format!("{name}.key");
    let out = format!("{name}.csr");
    let o = env
        .token
        .tool("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .arg(format!("ec_paramgen_curve:{curve}"))
        .args(["-nodes", "-keyout", &key, "-out", &out, "-subj", subj])
        .args(
            san.map(|s| vec!["-addext".to_string(), format!("subjectAltName={s}")])
                .unwrap_or_default(),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.path(&out)
}

/// A CSR for an existing key `<key>` (same public key, new subject): `<out>` in the scratch dir.
pub fn csr_for_key(env: &PcaEnv, key: &str, out: &str, subj: &str) -> PathBuf {
    let o = env
        .token
        .tool("openssl")
        .args(["req", "-new", "-key", key, "-out", out, "-subj", subj])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.path(out)
}

/// The public key (PEM) of a CSR, by openssl.
pub fn csr_pubkey(env: &PcaEnv, csr: &str) -> String {
    openssl_out(env, &["req", "-in", csr, "-pubkey", "-noout"])
}

/// The public key (PEM) of a certificate file, by openssl.
pub fn cert_pubkey(env: &PcaEnv, cert: &str) -> String {
    openssl_out(env, &["x509", "-in", cert, "-pubkey", "-noout"])
}

fn openssl_out(env: &PcaEnv, args: &[&str]) -> String {
    let o = env.token.tool("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// `hsm-demo` with this test's AWS env (access key `akid`) and NO HSM: no module configured (a
/// module path that does not exist, so any load would fail), no PIN, no token, no SoftHSM config.
pub fn no_hsm_cmd(env: &PcaEnv, akid: &str) -> Command {
    let mut c = Command::cargo_bin("hsm-demo").unwrap();
    for k in [
        "HSM_DEMO_PIN",
        "HSM_DEMO_TOKEN",
        "HSM_DEMO_MODULE",
        "SOFTHSM2_CONF",
        "KRYOPTIC_CONF",
        "RUST_LOG",
    ] {
        c.env_remove(k);
    }
    c.env("HSM_DEMO_MODULE", "/nonexistent/no-pkcs11-module.so");
    aws_env(&mut c, &env.endpoint, akid, &env.table);
    c.current_dir(env.token.dir.path());
    c
}

/// The same as [`no_hsm_cmd`] as a std Command (for spawning and killing).
pub fn no_hsm_std_cmd(env: &PcaEnv) -> std::process::Command {
    let mut c = env.std_cmd();
    for k in [
        "HSM_DEMO_PIN",
        "HSM_DEMO_TOKEN",
        "SOFTHSM2_CONF",
        "KRYOPTIC_CONF",
    ] {
        c.env_remove(k);
    }
    c.env("HSM_DEMO_MODULE", "/nonexistent/no-pkcs11-module.so");
    c
}
