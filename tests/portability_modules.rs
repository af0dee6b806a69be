//! The same binary against several PKCS#11 modules: `list-slots` on each module, tokens
//! found by label or serial (never slot number), and clear one-line errors for modules that cannot
//! be loaded or initialised.
//!
//! Runs on the modules in `HSM_DEMO_TEST_MODULES` (`make test-portability` enables both).
mod common;

use std::path::Path;

use common::{kryoptic_conf, stdout_of, ModuleKind, TestToken};

fn json(a: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(a)).expect("JSON on stdout")
}

#[test]
fn list_slots_reports_each_module_and_its_tokens() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "port-a");
        t.init_token("port-b", "654321", "87654321");

        let a = t
            .cmd_bare()
            .args(["--json", "list-slots"])
            .assert()
            .success();
        let v = json(&a);
        let module = &v["module"];
        assert_eq!(
            module["path"].as_str().unwrap(),
            kind.module_path().display().to_string(),
            "{}",
            kind.name()
        );
        let want_maker = match kind {
            ModuleKind::SoftHsm => "SoftHSM",
            ModuleKind::Kryoptic => "Kryoptic",
        };
        assert!(
            module["manufacturer"]
                .as_str()
                .unwrap()
                .contains(want_maker),
            "{}: {module}",
            kind.name()
        );
        let slots = v["slots"].as_array().unwrap();
        let initialised: Vec<&serde_json::Value> = slots
            .iter()
            .map(|s| &s["token"])
            .filter(|t| t["initialized"] == true)
            .collect();
        let mut labels: Vec<&str> = initialised
            .iter()
            .map(|t| t["label"].as_str().unwrap())
            .collect();
        labels.sort();
        assert_eq!(labels, ["port-a", "port-b"], "{}: {v}", kind.name());
        for tok in &initialised {
            assert!(!tok["serial"].as_str().unwrap().is_empty(), "{tok}");
            assert_eq!(tok["user_pin_initialized"], true, "{tok}");
            assert_eq!(tok["user_pin_locked"], false, "{tok}");
        }
        // Slot ids are whatever the module says: kryoptic's come from its config, SoftHSM's
        // from the token serial. The report must show them as given.
        if kind == ModuleKind::Kryoptic {
            let ids: Vec<u64> = slots
                .iter()
                .map(|s| s["slot_id"].as_u64().unwrap())
                .collect();
            assert_eq!(ids, common::KRYOPTIC_SLOTS, "{v}");
        }

        // The text form names the module and both tokens.
        let a = t.cmd_bare().arg("list-slots").assert().success();
        let out = stdout_of(&a);
        assert!(
            out.contains(&kind.module_path().display().to_string()),
            "{out}"
        );
        assert!(out.contains("label:           port-a"), "{out}");
        assert!(out.contains("label:           port-b"), "{out}");
    }
}

#[test]
fn tokens_are_selected_by_label_or_serial_never_by_position() {
    for kind in ModuleKind::enabled() {
        // port-b is initialised second, so it is never the first slot with a token.
        let t = TestToken::with_kind(kind, "port-a");
        t.init_token("port-b", "654321", "87654321");
        let a = t
            .cmd_bare()
            .args(["--json", "list-slots"])
            .assert()
            .success();
        let v = json(&a);
        let serial_b = v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["token"])
            .find(|tok| tok["label"] == "port-b")
            .and_then(|tok| tok["serial"].as_str())
            .unwrap()
            .to_string();

        // A key on port-b, selected by label, with port-b's PIN.
        t.cmd_bare()
            .env("HSM_DEMO_PIN", "654321")
            .args(["--token", "port-b", "generate-key", "--label", "on-b"])
            .assert()
            .success();
        // Found again on port-b by serial …
        let a = t
            .cmd_bare()
            .env("HSM_DEMO_PIN", "654321")
            .args([
                "--token", &serial_b, "sign", "--label", "on-b", "--data", "x",
            ])
            .assert()
            .success();
        assert!(!stdout_of(&a).trim().is_empty());
        // … and not on port-a.
        let a = t
            .cmd()
            .args(["sign", "--label", "on-b", "--data", "x"])
            .assert()
            .failure();
        let line = common::one_line_error(&a, "");
        assert!(
            line.contains("on-b") && line.contains("port-a"),
            "{}: {line}",
            kind.name()
        );
        // Two initialised tokens and no --token: refused, listing both, rather than guessing.
        let a = t
            .cmd_no_token()
            .args(["sign", "--label", "on-b", "--data", "x"])
            .assert()
            .failure();
        let line = common::one_line_error(&a, "");
        assert!(line.contains("port-a") && line.contains("port-b"), "{line}");
    }
}

#[test]
fn module_that_is_not_a_library_names_path_and_dlopen_reason() {
    let t = TestToken::new("bad-module");
    let text = t.path("not-a-module.so");
    std::fs::write(&text, "this is a text file, not a shared object\n").unwrap();
    let a = t
        .cmd()
        .env("HSM_DEMO_MODULE", &text)
        .arg("list-slots")
        .assert()
        .failure();
    let line = common::one_line_error(&a, "");
    assert!(line.contains(&text.display().to_string()), "{line}");
    // glibc's dlopen reason for a non-ELF file.
    assert!(
        line.contains("invalid ELF header") || line.contains("file too short"),
        "{line}"
    );
}

#[test]
fn library_without_c_get_function_list_is_named_as_such() {
    let libz = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect("libz.so.1 (zlib1g) not found");
    let t = TestToken::new("bad-module");
    let a = t
        .cmd()
        .arg("--module")
        .arg(libz)
        .arg("list-slots")
        .assert()
        .failure();
    let line = common::one_line_error(&a, "");
    assert!(line.contains(&libz.display().to_string()), "{line}");
    assert!(line.contains("C_GetFunctionList"), "{line}");
}

#[test]
fn missing_module_path_is_named() {
    let t = TestToken::new("bad-module");
    let missing = t.path("no/such/module.so");
    for cmd in [
        &["list-slots"][..],
        &["sign", "--label", "k", "--data", "x"][..],
    ] {
        let a = t
            .cmd()
            .env("HSM_DEMO_MODULE", &missing)
            .args(cmd)
            .assert()
            .failure();
        let line = common::one_line_error(&a, "");
        assert!(line.contains(&missing.display().to_string()), "{line}");
        assert!(line.contains("no such file"), "{line}");
    }
}

#[test]
fn kryoptic_config_pointing_at_a_missing_directory_names_the_cause() {
    if !ModuleKind::enabled().contains(&ModuleKind::Kryoptic) {
        eprintln!("skipped: kryoptic not in HSM_DEMO_TEST_MODULES");
        return;
    }
    let t = TestToken::with_kind(ModuleKind::Kryoptic, "cfg-token");
    let gone = t.path("does-not-exist");
    let conf = t.path("broken-kryoptic.conf");
    std::fs::write(&conf, kryoptic_conf(&gone, &[7])).unwrap();
    let a = t
        .cmd()
        .env("KRYOPTIC_CONF", &conf)
        .arg("list-slots")
        .assert()
        .failure();
    let line = common::one_line_error(&a, "");
    assert!(line.contains("C_Initialize"), "{line}");
    assert!(line.contains(&gone.display().to_string()), "{line}");
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.contains(&conf.display().to_string()), "{line}");

    // The same module with its good config still works: the error came from the config.
    t.cmd().arg("list-slots").assert().success();
}

#[test]
fn softhsm_config_pointing_at_a_missing_directory_names_the_cause() {
    if !ModuleKind::enabled().contains(&ModuleKind::SoftHsm) {
        eprintln!("skipped: softhsm not in HSM_DEMO_TEST_MODULES");
        return;
    }
    let t = TestToken::with_kind(ModuleKind::SoftHsm, "cfg-token");
    let gone = t.path("does-not-exist");
    let conf = t.path("broken-softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            gone.display()
        ),
    )
    .unwrap();
    let a = t
        .cmd()
        .env("SOFTHSM2_CONF", &conf)
        .arg("list-slots")
        .assert()
        .failure();
    let line = common::one_line_error(&a, "");
    assert!(line.contains(&gone.display().to_string()), "{line}");
    assert!(line.contains("does not exist"), "{line}");
}
