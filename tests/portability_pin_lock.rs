//! PIN handling across modules: kryoptic locks the user PIN after 10 wrong tries,
//! SoftHSM2 never does. hsm-demo must report a locked PIN clearly and must never spend more than
//! one login attempt per invocation (no login retries).
//!
//! Runs on the modules in `HSM_DEMO_TEST_MODULES` (`make test-portability` enables both).
mod common;

use common::{stderr_of, stdout_of, ModuleKind, TestToken};

const WRONG_PIN: &str = "wrong-pin-7391";

/// (count_low, final_try, locked) of the token labelled `label`, from `list-slots --json`.
fn pin_flags(t: &TestToken, label: &str) -> (bool, bool, bool) {
    let a = t
        .cmd_bare()
        .args(["--json", "list-slots"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).expect("list-slots --json");
    let tok = v["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| &s["token"])
        .find(|tok| tok["label"] == label)
        .unwrap_or_else(|| panic!("token '{label}' not in list-slots: {v}"));
    let flag = |k: &str| {
        tok[k]
            .as_bool()
            .unwrap_or_else(|| panic!("list-slots --json lacks token.{k}: {tok}"))
    };
    (
        flag("user_pin_count_low"),
        flag("user_pin_final_try"),
        flag("user_pin_locked"),
    )
}

/// One invocation of a PIN-using command (rotating over commands and PIN sources) with `pin`.
fn run_with_pin(t: &TestToken, i: usize, pin: &str) -> assert_cmd::assert::Assert {
    let mut c = t.cmd();
    match i % 3 {
        0 => {
            c.env("HSM_DEMO_PIN", pin)
                .args(["sign", "--label", "lock-key", "--data", "hello"]);
        }
        1 => {
            let f = t.path("pin.txt");
            std::fs::write(&f, format!("{pin}\n")).unwrap();
            // Owner-only, as a PIN file should be (a world-readable one gets a warning line).
            let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(&f, owner_only).unwrap();
            c.env_remove("HSM_DEMO_PIN")
                .arg("--pin-file")
                .arg(&f)
                .args(["generate-key", "--label", &format!("never-{i}")]);
        }
        _ => {
            c.env("HSM_DEMO_PIN", pin).args(["list-slots", "--objects"]);
        }
    }
    c.assert()
}

/// The one-line `error: …` of a failed invocation.
fn pin_free_error(a: &assert_cmd::assert::Assert) -> String {
    let line = common::one_line_error(a, "");
    assert!(
        !stderr_of(a).contains(WRONG_PIN),
        "the PIN leaked into stderr: {line:?}"
    );
    line
}

#[test]
fn kryoptic_locks_after_ten_wrong_pins_each_invocation_costs_exactly_one_try() {
    if !ModuleKind::enabled().contains(&ModuleKind::Kryoptic) {
        eprintln!("skipped: kryoptic not in HSM_DEMO_TEST_MODULES (run `make test-kryoptic`)");
        return;
    }
    let t = TestToken::with_kind(ModuleKind::Kryoptic, "lock-token");
    t.generate_key("lock-key");
    assert_eq!(pin_flags(&t, "lock-token"), (false, false, false));

    // Invocations 1..=9: each fails with CKR_PIN_INCORRECT and costs exactly one try: were it
    // two, the PIN would lock at invocation 5; were it none, FINAL_TRY would not appear at 9.
    for i in 1..=9 {
        let a = run_with_pin(&t, i, WRONG_PIN).failure();
        let line = pin_free_error(&a);
        assert!(
            line.contains("CKR_PIN_INCORRECT") && line.contains("lock-token"),
            "invocation {i}: {line}"
        );
        let (_, final_try, locked) = pin_flags(&t, "lock-token");
        assert!(!locked, "locked after only {i} wrong invocations");
        assert_eq!(final_try, i == 9, "FINAL_TRY after {i} wrong invocations");
    }

    // The 10th wrong PIN locks it.
    let a = run_with_pin(&t, 10, WRONG_PIN).failure();
    let line = pin_free_error(&a);
    assert!(line.contains("CKR_PIN_"), "{line}");
    let (_, _, locked) = pin_flags(&t, "lock-token");
    assert!(locked, "not locked after 10 wrong PINs");

    // Now even the right PIN is refused, clearly, by every PIN-using command.
    for i in 11..=13 {
        let a = run_with_pin(&t, i, &t.pin).failure();
        let line = pin_free_error(&a);
        assert!(
            line.contains("CKR_PIN_LOCKED")
                && line.contains("locked")
                && line.contains("lock-token"),
            "{line}"
        );
    }
    let a = t.cmd_bare().arg("list-slots").assert().success();
    assert!(
        stdout_of(&a).contains("user PIN:        LOCKED"),
        "{}",
        stdout_of(&a)
    );
}

#[test]
fn softhsm_never_locks_and_the_right_pin_still_works_after_wrong_ones() {
    if !ModuleKind::enabled().contains(&ModuleKind::SoftHsm) {
        eprintln!("skipped: softhsm not in HSM_DEMO_TEST_MODULES");
        return;
    }
    let t = TestToken::with_kind(ModuleKind::SoftHsm, "nolock-token");
    t.generate_key("lock-key");
    for i in 1..=12 {
        let a = run_with_pin(&t, i, WRONG_PIN).failure();
        let line = pin_free_error(&a);
        assert!(line.contains("CKR_PIN_INCORRECT"), "{line}");
    }
    assert!(
        !pin_flags(&t, "nolock-token").2,
        "SoftHSM2 reported a locked PIN"
    );
    let a = t
        .cmd()
        .args(["sign", "--label", "lock-key", "--data", "hello"])
        .assert()
        .success();
    assert!(!stdout_of(&a).trim().is_empty());
}

#[test]
fn a_good_login_resets_the_wrong_pin_count_on_kryoptic() {
    if !ModuleKind::enabled().contains(&ModuleKind::Kryoptic) {
        eprintln!("skipped: kryoptic not in HSM_DEMO_TEST_MODULES");
        return;
    }
    let t = TestToken::with_kind(ModuleKind::Kryoptic, "reset-token");
    t.generate_key("lock-key");
    for i in 1..=9 {
        run_with_pin(&t, i, WRONG_PIN).failure();
    }
    assert!(
        pin_flags(&t, "reset-token").1,
        "FINAL_TRY expected after 9 wrong PINs"
    );
    t.cmd()
        .args(["sign", "--label", "lock-key", "--data", "hello"])
        .assert()
        .success();
    let (_, final_try, locked) = pin_flags(&t, "reset-token");
    assert!(
        !final_try && !locked,
        "a good login did not reset the counter"
    );
    // …so another wrong PIN does not lock it.
    run_with_pin(&t, 0, WRONG_PIN).failure();
    assert!(!pin_flags(&t, "reset-token").2);
}
