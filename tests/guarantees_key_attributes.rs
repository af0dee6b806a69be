//! Every private key hsm-demo creates is CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE,
//! CKA_NEVER_EXTRACTABLE, CKA_PRIVATE and CKA_TOKEN — read back through an independent PKCS#11
//! reader (the `cryptoki` crate in this test process, not hsm-demo), after `generate-key` (P-256
//! and P-384), `provision` (one device and a manifest) and `key-ceremony`, on every module of `HSM_DEMO_TEST_MODULES`.
//!
//! ALWAYS_SENSITIVE / NEVER_EXTRACTABLE are set by the module itself and stay true only when the
//! key was generated sensitive and non-extractable: a key created extractable and locked down later
//! still fails here.

mod common;
mod pca_support;

use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;

use common::{ModuleKind, TestToken};
use pca_support::PcaEnv;

/// The module config is read from the environment at C_Initialize: one reader at a time.
static READER: Mutex<()> = Mutex::new(());

/// A private key's label and its (attribute name, value) pairs.
type KeyAttrs = (String, Vec<(&'static str, Option<bool>)>);

/// (label, attribute values) of every private key on `token`, read with cryptoki.
fn private_keys(token: &TestToken) -> Vec<KeyAttrs> {
    let _guard = READER.lock().unwrap_or_else(|e| e.into_inner());
    for (k, v) in token.module_env() {
        // SAFETY of the process environment: std serialises set_var with its own readers
        // (Command::spawn); this test reads no environment variable concurrently itself.
        std::env::set_var(k, v);
    }
    let ctx = Pkcs11::new(token.kind.module_path()).expect("load the PKCS#11 module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == token.label)
        .unwrap_or_else(|| panic!("no token labelled {}", token.label));
    let session = ctx.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&token.pin.clone().into()))
        .expect("C_Login");
    let wanted = [
        ("CKA_SENSITIVE", AttributeType::Sensitive),
        ("CKA_EXTRACTABLE", AttributeType::Extractable),
        ("CKA_ALWAYS_SENSITIVE", AttributeType::AlwaysSensitive),
        ("CKA_NEVER_EXTRACTABLE", AttributeType::NeverExtractable),
        ("CKA_PRIVATE", AttributeType::Private),
        ("CKA_TOKEN", AttributeType::Token),
    ];
    let mut types = vec![AttributeType::Label];
    types.extend(wanted.iter().map(|(_, t)| *t));
    let objs = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    let mut out = Vec::new();
    for obj in objs {
        let attrs = session.get_attributes(obj, &types).unwrap();
        let label = attrs
            .iter()
            .find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8_lossy(l).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let value = |t: AttributeType| {
            attrs.iter().find_map(|a| match (a, t) {
                (Attribute::Sensitive(b), AttributeType::Sensitive)
                | (Attribute::Extractable(b), AttributeType::Extractable)
                | (Attribute::AlwaysSensitive(b), AttributeType::AlwaysSensitive)
                | (Attribute::NeverExtractable(b), AttributeType::NeverExtractable)
                | (Attribute::Private(b), AttributeType::Private)
                | (Attribute::Token(b), AttributeType::Token) => Some(*b),
                _ => None,
            })
        };
        out.push((label, wanted.iter().map(|(n, t)| (*n, value(*t))).collect()));
    }
    drop(session);
    ctx.finalize().ok();
    out
}

/// Asserts the token holds exactly the private keys `labels`, each locked down.
fn assert_locked_down(token: &TestToken, labels: &[&str]) {
    let keys = private_keys(token);
    let mut found: Vec<&str> = keys.iter().map(|(l, _)| l.as_str()).collect();
    found.sort_unstable();
    let mut want = labels.to_vec();
    want.sort_unstable();
    assert_eq!(
        found,
        want,
        "{}: private keys on the token",
        token.kind.name()
    );
    for (label, attrs) in &keys {
        for (name, v) in attrs {
            let expected = *name != "CKA_EXTRACTABLE";
            assert_eq!(
                *v,
                Some(expected),
                "{}: private key '{label}': {name} (all: {attrs:?})",
                token.kind.name()
            );
        }
    }
}

#[test]
fn generate_key_private_keys_are_sensitive_and_never_extractable() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "attrs-gk");
        t.generate_key("gk-p256");
        t.cmd()
            .args(["generate-key", "--label", "gk-p384", "--curve", "p384"])
            .assert()
            .success();
        assert_locked_down(&t, &["gk-p256", "gk-p384"]);
    }
}

#[test]
fn provision_device_keys_are_sensitive_and_never_extractable() {
    for kind in ModuleKind::enabled() {
        let env = PcaEnv::with_kind(kind);
        env.provision("dev-attrs");
        // A fleet run (`provision --manifest`) generates its keys through a pool of sessions.
        std::fs::write(env.path("fleet.csv"), "device_id\nfleet-1\nfleet-2\n").unwrap();
        env.cmd()
            .args(["provision", "--ca-arn", env.ca(), "--manifest", "fleet.csv"])
            .assert()
            .success();
        assert_locked_down(
            &env.token,
            &["device-dev-attrs", "device-fleet-1", "device-fleet-2"],
        );
    }
}

#[test]
fn key_ceremony_root_key_is_sensitive_and_never_extractable() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "attrs-root");
        t.cmd_no_token().arg("key-ceremony").assert().success();
        assert_locked_down(&t, &["root-ca-key"]);
    }
}
