//! The key-generation library refuses a malformed request itself, not only through the command
//! line (which refuses these before it gets here): an empty label, an empty CKA_ID, a session
//! that is not logged in. Nothing is created on the token.

mod common;

use common::TestToken;
use hsm_demo::hsm::ec::Curve;
use hsm_demo::hsm::keygen::{generate_key, KeygenRequest};
use hsm_demo::hsm::pin::PinSource;
use hsm_demo::hsm::session::{ConnectOptions, HsmSession};

fn objects(t: &TestToken) -> usize {
    let a = t
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&common::stdout_of(&a)).unwrap();
    v.to_string().matches("\"label\":\"lib-").count()
}

#[test]
fn generate_key_refuses_a_malformed_request_and_creates_nothing() {
    let t = TestToken::new("kglib");
    for (k, v) in t.module_env() {
        std::env::set_var(k, v);
    }
    let opts = ConnectOptions {
        module: Some(t.kind.module_path()),
        token: Some(t.label.clone()),
        pin: PinSource {
            pin_file: None,
            allow_prompt: false,
        },
    };
    let pin = secrecy::SecretString::from(t.pin.clone());
    let mut session = HsmSession::open(&opts).expect("open");
    let unlogged = generate_key(&session, &KeygenRequest::new("lib-unlogged", Curve::P256));
    assert!(
        unlogged
            .unwrap_err()
            .to_string()
            .contains("logged-in session"),
        "a session that is not logged in must be refused"
    );
    session.login_with_pin(&pin).expect("login");
    let empty_label = generate_key(&session, &KeygenRequest::new("", Curve::P256));
    assert!(empty_label
        .unwrap_err()
        .to_string()
        .contains("label must not be empty"));
    let empty_id = KeygenRequest {
        id: Some(Vec::new()),
        ..KeygenRequest::new("lib-empty-id", Curve::P256)
    };
    assert!(generate_key(&session, &empty_id)
        .unwrap_err()
        .to_string()
        .contains("id must not be empty"));
    drop(session);
    assert_eq!(objects(&t), 0, "a refused request created objects");
    // The same library call with a well-formed request does create the pair (the test can fail).
    let mut session = HsmSession::open(&opts).expect("open");
    session.login_with_pin(&pin).expect("login");
    generate_key(&session, &KeygenRequest::new("lib-ok", Curve::P256)).expect("generate");
    drop(session);
    assert_eq!(objects(&t), 2);
    #[cfg(feature = "failpoints")]
    a_generation_failing_half_way_leaves_nothing_behind(&t, &opts, &pin);
}

/// A module whose C_GenerateKeyPair fails after it created the objects (a fault point makes
/// SoftHSM2 look like one): the objects it left are removed, and the next generation works.
/// (Part of the test above: one module configuration per test process.)
#[cfg(feature = "failpoints")]
fn a_generation_failing_half_way_leaves_nothing_behind(
    t: &TestToken,
    opts: &ConnectOptions,
    pin: &secrecy::SecretString,
) {
    let mut session = HsmSession::open(opts).expect("open");
    session.login_with_pin(pin).expect("login");
    fail::cfg("keygen-fails-after-creating", "return").unwrap();
    let r = generate_key(&session, &KeygenRequest::new("lib-half", Curve::P256));
    fail::remove("keygen-fails-after-creating");
    assert!(r.is_err(), "the injected failure must surface");
    drop(session);
    assert_eq!(objects(t), 2, "the failed generation left objects");
    let mut session = HsmSession::open(opts).expect("open");
    session.login_with_pin(pin).expect("login");
    generate_key(&session, &KeygenRequest::new("lib-half", Curve::P256)).expect("regenerate");
    drop(session);
    assert_eq!(objects(t), 4);
}
