//! The batch's key index (hsm::key_index): a batch reads the token's key labels once and skips
//! the per-device token search only for devices the registry has never seen. Pinned here:
//! - keys that exist before the run (made with `generate-key`) are found and reused, never
//!   duplicated;
//! - the registry's word decides: a claim on an empty partition is `never_claimed`, one on a
//!   partition holding a FAILED marker is not;
//! - without that word the pool searches the token, so a key made by another process after the
//!   pool read the index is reused, not duplicated.

mod batch_support;
mod common;
mod pca_support;

use std::sync::Arc;

use batch_support::*;
use pca_support::PcaEnv;

#[test]
fn keys_made_before_the_run_are_found_through_the_index_and_reused() {
    let env = PcaEnv::new();
    let devs = ids("ki", 6);
    let pre = [devs[1].clone(), devs[4].clone()];
    let mut pre_pems = Vec::new();
    for d in &pre {
        let label = format!("device-{d}");
        env.cmd()
            .args(["generate-key", "--label", &label])
            .assert()
            .success();
        pre_pems.push(env.pubkey_pem(&label));
    }
    let m = write_csv(&env, "fleet.csv", &devs);
    let r = run_ok(&env, &m, &[]);
    for d in &r.devices {
        let id = d["device_id"].as_str().unwrap();
        let want = if pre.iter().any(|p| p == id) {
            "reused"
        } else {
            "created"
        };
        assert_eq!(d["status"], "issued", "{d}");
        assert_eq!(d["key"], want, "{id}: {d}");
    }
    for (d, pem) in pre.iter().zip(&pre_pems) {
        let label = format!("device-{d}");
        assert_eq!(env.private_keys_labelled(&label), 1, "{label}");
        assert_eq!(
            &env.pubkey_pem(&label),
            pem,
            "{label}: a new key replaced it"
        );
    }
    for d in &devs {
        assert_eq!(env.private_keys_labelled(&format!("device-{d}")), 1, "{d}");
    }
    assert_exactly_one_each(&env, &devs);
}

#[test]
fn only_a_device_the_registry_never_saw_skips_the_token_search() {
    use hsm_demo::hsm::module::Module;
    use hsm_demo::pca::failed::mark_failed;
    use hsm_demo::pca::hsm_pool::HsmPool;
    use hsm_demo::pca::issue::Begin;
    use hsm_demo::pca::provision::{DeviceRequest, KeyOutcome};
    use hsm_demo::pca::DeviceId;
    use secrecy::SecretString;

    let env = PcaEnv::new();
    let clients = env.clients();
    let (rt, issuer) = env.issuer(&clients);

    // An empty partition: the claim is the device's first registry item.
    let fresh = DeviceId::parse("ki-fresh").unwrap();
    let Begin::Claimed(c) = rt.block_on(issuer.begin(&fresh)).unwrap() else {
        panic!("fresh device already done")
    };
    assert!(c.never_claimed, "a device with no registry item");
    rt.block_on(issuer.release(&c)).unwrap();

    // A FAILED marker (an earlier attempt, which may have made a key): not never-claimed.
    let failed = DeviceId::parse("ki-failed").unwrap();
    rt.block_on(mark_failed(
        &clients,
        &env.table,
        &failed,
        "earlier failure",
        "test",
    ))
    .unwrap();
    let Begin::Claimed(c) = rt.block_on(issuer.begin(&failed)).unwrap() else {
        panic!("failed device already done")
    };
    assert!(!c.never_claimed, "a device with a FAILED marker");
    rt.block_on(issuer.release(&c)).unwrap();

    // The pool reads the index now; another process then makes a key for `late`.
    for (k, v) in env.token.module_env() {
        std::env::set_var(k, v);
    }
    let module = Arc::new(Module::load(Some(&env.token.kind.module_path())).unwrap());
    let pin = SecretString::from(env.token.pin.clone());
    let pool = HsmPool::start(&module, Some(&env.token.label), &pin, 1).unwrap();
    let label = "device-ki-late";
    env.cmd()
        .args(["generate-key", "--label", label])
        .assert()
        .success();
    let made = env.pubkey_pem(label);
    let req = DeviceRequest::new(DeviceId::parse("ki-late").unwrap());
    let (csr, outcome) = rt.block_on(pool.csr(&req, &binding(&req, false))).unwrap();
    assert_eq!(outcome, KeyOutcome::Reused, "searched, found, reused");
    assert!(
        csr.pem.contains("CERTIFICATE REQUEST"),
        "a CSR came back: {}",
        csr.pem
    );
    // A device that is absent from the index AND never claimed gets a key without a search.
    let req = DeviceRequest::new(DeviceId::parse("ki-new").unwrap());
    let (_, outcome) = rt.block_on(pool.csr(&req, &binding(&req, true))).unwrap();
    assert_eq!(outcome, KeyOutcome::Created);
    // Asked again (a retry of the same device), the index knows the label now: found, reused.
    let (_, outcome) = rt.block_on(pool.csr(&req, &binding(&req, true))).unwrap();
    assert_eq!(outcome, KeyOutcome::Reused);
    pool.shutdown();
    assert_eq!(env.private_keys_labelled(label), 1);
    assert_eq!(env.pubkey_pem(label), made);
    assert_eq!(env.private_keys_labelled("device-ki-new"), 1);
}

/// The binding of a claim of generation 0 by one owner (this test's).
fn binding(
    req: &hsm_demo::pca::provision::DeviceRequest,
    unsearched: bool,
) -> hsm_demo::pca::device_key::KeyBinding {
    hsm_demo::pca::device_key::KeyBinding {
        own_id: hsm_demo::pca::device_key::intent_key_id(req.device.as_str(), 0, "test:1:1:n"),
        unsearched,
        ..Default::default()
    }
}
