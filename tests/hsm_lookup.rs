//! Key and token look-up: PKCS#11 URIs, ids, duplicate labels, several tokens; JSON output;
//! the PIN never appears in any output.
mod common;

use common::{stderr_of, stdout_of, ModuleKind, TestToken};

fn json(a: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(a))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout_of(a)))
}

#[test]
fn uri_and_id_lookup() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "uri-token");
        t.cmd()
            .args(["generate-key", "--label", "svc key", "--id", "0102ff"])
            .assert()
            .success();
        let a = t
            .cmd_bare()
            .env("HSM_DEMO_PIN", &t.pin)
            .args([
                "sign",
                "--uri",
                "pkcs11:token=uri-token;object=svc%20key;id=%01%02%FF;type=private",
            ])
            .args(["--data", "m"])
            .assert()
            .success();
        let sig = stdout_of(&a)
            .trim()
            .strip_prefix("Signature: ")
            .unwrap()
            .to_string();
        // Verify by id only, and by URI with id only.
        t.cmd()
            .args(["verify", "--id", "0102FF", "--data", "m", "--sig", &sig])
            .assert()
            .success();
        t.cmd()
            .args([
                "verify",
                "--uri",
                "pkcs11:id=%01%02%ff",
                "--data",
                "m",
                "--sig",
                &sig,
            ])
            .assert()
            .success();
        // A URI naming another token is refused (no such token), listing the real one.
        let a = t
            .cmd_bare()
            .env("HSM_DEMO_PIN", &t.pin)
            .args([
                "sign",
                "--uri",
                "pkcs11:token=other;object=svc%20key",
                "--data",
                "m",
            ])
            .assert()
            .code(1);
        let e = stderr_of(&a);
        assert!(
            e.contains("no initialised token with label or serial 'other'"),
            "{e}"
        );
        assert!(e.contains("'uri-token'"), "{e}");
        // Label and id that do not belong together: nothing matches.
        let a = t
            .cmd()
            .args(["sign", "--label", "svc key", "--id", "01", "--data", "m"])
            .assert()
            .code(1);
        assert!(stderr_of(&a).contains("no private key with label 'svc key' and id 01"));
        // list-slots --objects prints URIs that select the key.
        let a = t.cmd().args(["list-slots", "--objects"]).assert().success();
        let out = stdout_of(&a);
        let uri = out
            .split_whitespace()
            .find(|w| w.starts_with("pkcs11:") && w.ends_with("type=private"))
            .unwrap_or_else(|| panic!("no private key URI in {out}"));
        assert_eq!(
            uri,
            "pkcs11:token=uri-token;object=svc%20key;id=%01%02%FF;type=private"
        );
        t.cmd()
            .args(["sign", "--uri", uri, "--data", "m"])
            .assert()
            .success();
    }
}

#[test]
fn duplicate_label_is_ambiguous_and_id_disambiguates() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "dup");
        t.cmd()
            .args(["generate-key", "--label", "twin", "--id", "01"])
            .assert()
            .success();
        // Refused without the flag…
        let a = t
            .cmd()
            .args(["generate-key", "--label", "twin", "--id", "02"])
            .assert()
            .code(1);
        assert!(stderr_of(&a).contains("a key with label 'twin' already exists"));
        // …allowed with it.
        t.cmd()
            .args([
                "generate-key",
                "--label",
                "twin",
                "--id",
                "02",
                "--allow-duplicate-label",
            ])
            .assert()
            .success();
        let a = t
            .cmd()
            .args(["sign", "--label", "twin", "--data", "m"])
            .assert()
            .code(1);
        let e = stderr_of(&a);
        assert!(
            e.starts_with("error: 2 objects match private key with label 'twin'"),
            "{e}"
        );
        assert!(e.contains("ambiguous"), "{e}");
        let a = t
            .cmd()
            .args(["export-pubkey", "--label", "twin"])
            .assert()
            .code(1);
        assert!(stderr_of(&a).contains("2 objects match public key with label 'twin'"));
        // The id selects one; the other key's public key does not verify its signature.
        let a = t
            .cmd()
            .args(["sign", "--label", "twin", "--id", "02", "--data", "m"])
            .assert()
            .success();
        let sig = stdout_of(&a)
            .trim()
            .strip_prefix("Signature: ")
            .unwrap()
            .to_string();
        t.cmd()
            .args(["verify", "--id", "02", "--data", "m", "--sig", &sig])
            .assert()
            .success();
        t.cmd()
            .args(["verify", "--id", "01", "--data", "m", "--sig", &sig])
            .assert()
            .code(1)
            .stderr("error: signature verification failed\n");
        // An existing id is refused even with --allow-duplicate-label.
        let a = t
            .cmd()
            .args([
                "generate-key",
                "--label",
                "third",
                "--id",
                "02",
                "--allow-duplicate-label",
            ])
            .assert()
            .code(1);
        assert!(stderr_of(&a).contains("a key with id 02 already exists"));
    }
}

#[test]
fn token_selection_with_several_tokens() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "alpha");
        t.init_token("beta", "654321", "87654321");
        let a = t
            .cmd_no_token()
            .args(["generate-key", "--label", "k"])
            .assert()
            .code(1);
        let e = stderr_of(&a);
        assert!(e.starts_with("error: 2 initialised tokens ("), "{e}");
        assert!(
            e.contains("'alpha' (serial ") && e.contains("'beta' (serial "),
            "{e}"
        );
        assert!(e.contains("--token"), "{e}");
        // --token picks by label; each token has its own PIN.
        t.cmd_no_token()
            .args(["--token", "alpha", "generate-key", "--label", "k"])
            .assert()
            .success();
        t.cmd_no_token()
            .env("HSM_DEMO_TOKEN", "beta")
            .env("HSM_DEMO_PIN", "654321")
            .args(["generate-key", "--label", "k"])
            .assert()
            .success();
        // …and by serial.
        let a = t
            .cmd_no_token()
            .args(["--json", "list-slots"])
            .assert()
            .success();
        let v = json(&a);
        let serial = v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["token"].as_object())
            .find(|tk| tk["label"] == "beta")
            .map(|tk| tk["serial"].as_str().unwrap().to_string())
            .unwrap();
        t.cmd_no_token()
            .env("HSM_DEMO_PIN", "654321")
            .args(["--token", &serial, "export-pubkey", "--label", "k"])
            .assert()
            .success();
    }
}

#[test]
fn json_outputs_parse() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "json");
        let a = t
            .cmd()
            .args([
                "--json",
                "generate-key",
                "--label",
                "j",
                "--curve",
                "p384",
                "--id",
                "abcd",
            ])
            .assert()
            .success();
        let v = json(&a);
        assert_eq!(v["label"], "j");
        assert_eq!(v["id"], "abcd");
        assert_eq!(v["curve"], "p384");
        let a = t
            .cmd()
            .args(["--json", "list-slots", "--objects"])
            .assert()
            .success();
        let v = json(&a);
        let slots = v["slots"].as_array().unwrap();
        assert_eq!(slots[0]["index"], 0);
        assert_eq!(slots[0]["token"]["label"], "json");
        assert_eq!(slots[0]["token"]["initialized"], true);
        let objs = slots[0]["objects"].as_array().unwrap();
        assert_eq!(objs.len(), 2, "{objs:?}");
        assert!(objs
            .iter()
            .all(|o| o["curve"] == "P-384" && o["label"] == "j"));
        let a = t
            .cmd()
            .args(["--json", "sign", "--label", "j", "--data", "m"])
            .assert()
            .success();
        let v = json(&a);
        let sig = v["signature_der_hex"].as_str().unwrap().to_string();
        assert_eq!(v["algorithm"], "ECDSA P-384 SHA-384");
        let a = t
            .cmd()
            .args([
                "--json", "verify", "--label", "j", "--data", "m", "--sig", &sig,
            ])
            .assert()
            .success();
        assert_eq!(json(&a)["verified"], true);
        let a = t
            .cmd()
            .args(["--json", "export-pubkey", "--label", "j"])
            .assert()
            .success();
        assert!(json(&a)["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}

#[test]
fn pin_never_printed() {
    for kind in ModuleKind::enabled() {
        // A distinctive PIN, so a match cannot be a coincidence.
        let mut t = TestToken::empty(kind);
        let pin = "Pz7qW9xK";
        t.init_token("secret", pin, "so-pin-12345");
        t.label = "secret".into();
        t.pin = pin.into();
        let mut outputs = Vec::new();
        let runs: Vec<Vec<&str>> = vec![
            vec!["-vv", "generate-key", "--label", "k"],
            vec!["-vv", "--json", "list-slots", "--objects"],
            vec!["-vv", "sign", "--label", "k", "--data", "m"],
            vec!["-vv", "--json", "sign", "--label", "k", "--data", "m"],
            vec!["-vv", "sign", "--label", "missing", "--data", "m"],
            vec!["-vv", "export-pubkey", "--label", "k"],
        ];
        for args in &runs {
            let o = t.cmd().args(args).output().unwrap();
            outputs.push((args.clone(), o));
        }
        // Wrong PIN and PIN file paths too.
        let o = t
            .cmd()
            .env("HSM_DEMO_PIN", "Wr0ngPinXY")
            .args(["-vv", "sign", "--label", "k", "--data", "m"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(!String::from_utf8_lossy(&o.stderr).contains("Wr0ngPinXY"));
        std::fs::write(t.path("pinfile"), format!("{pin}\n")).unwrap();
        let o = t
            .cmd_bare()
            .env("HSM_DEMO_TOKEN", "secret")
            .args([
                "-vv",
                "--pin-file",
                "pinfile",
                "sign",
                "--label",
                "k",
                "--data",
                "m",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push((vec!["--pin-file"], o));
        let mut logged = false;
        for (args, o) in &outputs {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!all.contains(pin), "PIN printed by {args:?}: {all}");
            logged |= all.contains("logged in");
        }
        assert!(
            logged,
            "-vv should log something (so this test looks at real logs)"
        );
    }
}
