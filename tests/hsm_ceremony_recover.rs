//! Crash recovery of `key-ceremony`: a ceremony killed with SIGKILL after it wrote its journal is
//! refused on rerun until `key-ceremony --recover` removes exactly what it created (the key
//! objects with the journal's CKA_ID, an unfinished root.pem), never a completed root; then a
//! rerun completes. With `--features failpoints` the ceremony is killed (SIGKILL from this test)
//! at each of its kill points; without it, the states a kill leaves are made by hand.
mod common;

use std::path::Path;

use common::{stderr_of, stdout_of, TestToken};

/// The key objects labelled `label` on `t`'s token: (class, id hex) pairs.
fn keys(t: &TestToken, label: &str) -> Vec<(String, String)> {
    let a = t
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    let mut out = Vec::new();
    for slot in v["slots"].as_array().unwrap() {
        if slot["token"]["label"] != t.label.as_str() {
            continue;
        }
        for o in slot["objects"].as_array().into_iter().flatten() {
            if o["label"] == label {
                out.push((
                    o["class"].as_str().unwrap().to_string(),
                    o["id"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn transcript_details(t: &TestToken, step: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["step"] == step)
        .unwrap_or_else(|| panic!("no {step} entry"))["details"]
        .clone()
}

/// Exactly one root key pair (private + public, same ceremony-marked id), a root.pem and a
/// transcript that `verify-transcript --cert root.pem` accepts and that records that key.
fn assert_one_complete_root(t: &TestToken, context: &str) {
    let k = keys(t, "root-ca-key");
    assert_eq!(k.len(), 2, "{context}: one key pair expected: {k:?}");
    assert_eq!(k[0].0, "private-key", "{context}: {k:?}");
    assert_eq!(k[1].0, "public-key", "{context}: {k:?}");
    assert_eq!(k[0].1, k[1].1, "{context}: {k:?}");
    assert!(
        hex::decode(&k[0].1)
            .unwrap()
            .starts_with(b"hsm-demo/ceremony/"),
        "{context}: {k:?}"
    );
    t.cmd_bare()
        .args([
            "key-ceremony",
            "verify-transcript",
            "ceremony/transcript.jsonl",
        ])
        .args(["--cert", "ceremony/root.pem"])
        .assert()
        .success();
    assert_eq!(
        transcript_details(t, "key-generated")["id"],
        k[0].1.as_str(),
        "{context}: the transcript records the key on the token"
    );
    let mut files: Vec<String> = std::fs::read_dir(t.path("ceremony"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["root.pem", "transcript.jsonl"],
        "{context}: exactly the outputs, no journal, no temp file"
    );
}

fn recover(t: &TestToken) -> String {
    let a = t
        .cmd()
        .args(["key-ceremony", "--recover"])
        .assert()
        .success();
    stdout_of(&a)
}

/// Writes the journal an interrupted ceremony of key `key_id` (hex) would have left.
fn write_journal(t: &TestToken, key_id: &str, serial: &str, root_sha: Option<&str>) {
    let id = String::from_utf8(hex::decode(key_id).unwrap()).unwrap();
    let ceremony_id = id.strip_prefix("hsm-demo/ceremony/").unwrap();
    let j = serde_json::json!({
        "format": "hsm-demo key-ceremony journal v1",
        "ceremony_id": ceremony_id,
        "key_label": "root-ca-key",
        "key_id": key_id,
        "curve": "P-256",
        "token_label": t.label,
        "token_serial": serial,
        "root_cert": "ceremony/root.pem",
        "transcript": "ceremony/transcript.jsonl",
        "started": "2026-01-01T00:00:00Z",
        "root_cert_sha256": root_sha,
    });
    std::fs::write(t.path("ceremony/key-ceremony.journal"), j.to_string()).unwrap();
}

fn sha256_file(p: &Path) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(p).unwrap(),
    ))
}

#[test]
fn recover_without_a_journal_changes_nothing() {
    let t = TestToken::new("no-journal");
    let out = recover(&t);
    assert!(out.starts_with("Nothing to recover"), "{out}");
    t.cmd().arg("key-ceremony").assert().success();
    let out = recover(&t);
    assert!(out.starts_with("Nothing to recover"), "{out}");
    assert_one_complete_root(&t, "after a complete ceremony");
}

#[test]
fn an_interrupted_ceremony_is_refused_until_recovered_even_half_a_pair() {
    let t = TestToken::new("half");
    t.cmd().arg("key-ceremony").assert().success();
    let key_id = transcript_details(&t, "key-generated")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let serial = transcript_details(&t, "token-checked")["token_serial"]
        .as_str()
        .unwrap()
        .to_string();
    // What a kill after C_GenerateKeyPair leaves: the key pair and the journal, no outputs; then
    // remove the public half too (a kill inside C_GenerateKeyPair can leave half a pair).
    std::fs::remove_file(t.path("ceremony/root.pem")).unwrap();
    std::fs::remove_file(t.path("ceremony/transcript.jsonl")).unwrap();
    write_journal(&t, &key_id, &serial, None);
    let del = t
        .tool("pkcs11-tool")
        .arg("--module")
        .arg(t.kind.module_path())
        .args([
            "--login",
            "--pin",
            &t.pin,
            "--delete-object",
            "--type",
            "pubkey",
        ])
        .args(["--id", &key_id])
        .output()
        .unwrap();
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert_eq!(keys(&t, "root-ca-key").len(), 1);
    // A rerun is refused with the way out.
    let a = t.cmd().arg("key-ceremony").assert().code(1);
    let e = stderr_of(&a);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("did not finish; run `hsm-demo key-ceremony --recover`"),
        "{e}"
    );
    let out = recover(&t);
    assert!(
        out.contains("Recovered: removed 1 key object(s) of the interrupted ceremony"),
        "{out}"
    );
    assert!(keys(&t, "root-ca-key").is_empty());
    assert!(!t.path("ceremony/key-ceremony.journal").exists());
    t.cmd().arg("key-ceremony").assert().success();
    assert_one_complete_root(&t, "rerun after recovering half a pair");
}

#[test]
fn recover_never_removes_a_completed_root_nor_a_foreign_file() {
    let t = TestToken::new("complete");
    t.cmd().arg("key-ceremony").assert().success();
    let key_id = transcript_details(&t, "key-generated")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let serial = transcript_details(&t, "token-checked")["token_serial"]
        .as_str()
        .unwrap()
        .to_string();
    let transcript = std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap();

    // A tampered transcript: --recover refuses and changes nothing.
    write_journal(&t, &key_id, &serial, None);
    std::fs::write(
        t.path("ceremony/transcript.jsonl"),
        transcript.replace("\"logged_in\":true", "\"logged_in\":false"),
    )
    .unwrap();
    let a = t.cmd().args(["key-ceremony", "--recover"]).assert().code(1);
    let e = stderr_of(&a);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("exists but does not verify"), "{e}");
    assert!(e.contains("--recover changes nothing"), "{e}");
    assert_eq!(keys(&t, "root-ca-key").len(), 2, "the root key is kept");
    assert!(t.path("ceremony/key-ceremony.journal").exists());

    // The intact transcript: the ceremony completed; only the journal goes.
    std::fs::write(t.path("ceremony/transcript.jsonl"), &transcript).unwrap();
    let out = recover(&t);
    assert!(out.contains("The ceremony had completed"), "{out}");
    assert_one_complete_root(&t, "completed root after --recover");

    // An interrupted ceremony whose root.pem is not the one it was writing: refused, kept.
    std::fs::remove_file(t.path("ceremony/transcript.jsonl")).unwrap();
    let root_sha = sha256_file(&t.path("ceremony/root.pem"));
    write_journal(&t, &key_id, &serial, Some(&"0".repeat(64)));
    let a = t.cmd().args(["key-ceremony", "--recover"]).assert().code(1);
    let e = stderr_of(&a);
    assert!(
        e.contains("is not the certificate the interrupted ceremony"),
        "{e}"
    );
    assert_eq!(sha256_file(&t.path("ceremony/root.pem")), root_sha);
    assert_eq!(keys(&t, "root-ca-key").len(), 2, "nothing destroyed");

    // The journal of another token: refused before anything is destroyed.
    write_journal(&t, &key_id, "0000000000000000", Some(&root_sha));
    let a = t.cmd().args(["key-ceremony", "--recover"]).assert().code(1);
    assert!(
        stderr_of(&a).contains("select it with --token"),
        "{}",
        stderr_of(&a)
    );
    assert_eq!(keys(&t, "root-ca-key").len(), 2, "nothing destroyed");
    assert!(t.path("ceremony/root.pem").exists());
}

/// SIGKILL at every kill point of the ceremony, then `--recover` and a rerun.
#[cfg(feature = "failpoints")]
mod kill {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    use super::*;

    /// The kill points in the order a ceremony passes them.
    const POINTS: [&str; 11] = [
        "ceremony-token-checked",
        "ceremony-journal-written",
        "ceremony-key-generated",
        "ceremony-key-recorded",
        "ceremony-root-signed",
        "ceremony-root-checked",
        "ceremony-transcript-sealed",
        "ceremony-journal-updated",
        "ceremony-root-written",
        "ceremony-transcript-written",
        "ceremony-journal-removed",
    ];

    fn std_cmd(t: &TestToken) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("hsm-demo"));
        for k in [
            "RUST_LOG",
            "HSM_DEMO_TOKEN",
            "SOFTHSM2_CONF",
            "KRYOPTIC_CONF",
        ] {
            c.env_remove(k);
        }
        for (k, v) in t.module_env() {
            c.env(k, v);
        }
        c.env("HSM_DEMO_MODULE", t.kind.module_path())
            .env("HSM_DEMO_PIN", &t.pin)
            .env("HSM_DEMO_TOKEN", &t.label)
            .current_dir(t.dir.path());
        c
    }

    /// Runs the ceremony until it reports `point` on stderr, then SIGKILLs it. True when the kill
    /// landed there (the process was at the point and died of SIGKILL).
    fn kill_at(t: &TestToken, point: &str) -> bool {
        let mut child = std_cmd(t)
            .arg("key-ceremony")
            .env("FAILPOINTS", format!("{point}=return"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let want = format!("kill point {point}: waiting for SIGKILL");
        let reader = BufReader::new(child.stderr.take().unwrap());
        let mut at_point = false;
        for line in reader.lines() {
            let line = line.unwrap();
            if line == want {
                at_point = true;
                break;
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        at_point && status.signal() == Some(9)
    }

    #[test]
    fn kill_9_at_every_point_then_recover_and_rerun() {
        assert_eq!(
            POINTS,
            hsm_demo::ceremony::KILL_POINTS,
            "every kill point is tried"
        );
        let mut landed: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, point) in POINTS.iter().enumerate() {
            let t = TestToken::new(&format!("kill-{i}"));
            if kill_at(&t, point) {
                *landed.entry(point).or_default() += 1;
            }
            let journal = t.path("ceremony/key-ceremony.journal").exists();
            let objects = keys(&t, "root-ca-key").len();
            let complete = i >= 9; // the transcript was written
            assert_eq!(journal, (1..=9).contains(&i), "{point}: journal");
            assert_eq!(objects, if i >= 2 { 2 } else { 0 }, "{point}: key objects");
            assert_eq!(t.path("ceremony/root.pem").exists(), i >= 8, "{point}");
            if journal {
                // A rerun before --recover is refused with the way out, and changes nothing.
                let a = t.cmd().arg("key-ceremony").assert().code(1);
                let e = stderr_of(&a);
                assert_eq!(e.lines().count(), 1, "{point}: {e}");
                assert!(
                    e.contains("run `hsm-demo key-ceremony --recover`"),
                    "{point}: {e}"
                );
                assert_eq!(keys(&t, "root-ca-key").len(), objects, "{point}");
            }

            let out = recover(&t);
            let expect = match i {
                0 | 10 => "Nothing to recover".to_string(),
                9 => "The ceremony had completed".to_string(),
                1 => "Recovered: removed 0 key object(s)".to_string(),
                8 => {
                    "Recovered: removed 2 key object(s) of the interrupted ceremony, its unfinished"
                        .to_string()
                }
                _ => "Recovered: removed 2 key object(s)".to_string(),
            };
            assert!(
                out.contains(&expect),
                "{point}: '{expect}' expected in {out}"
            );
            assert!(!t.path("ceremony/key-ceremony.journal").exists(), "{point}");
            if complete {
                // A completed root is kept, and a rerun is refused: it never replaces a root.
                let a = t.cmd().arg("key-ceremony").assert().code(2);
                assert!(stderr_of(&a).contains("already exists"), "{point}");
            } else {
                assert!(keys(&t, "root-ca-key").is_empty(), "{point}: all removed");
                assert!(!t.path("ceremony/root.pem").exists(), "{point}");
                t.cmd().arg("key-ceremony").assert().success();
            }
            assert_one_complete_root(&t, point);
            let again = recover(&t);
            assert!(again.starts_with("Nothing to recover"), "{point}: {again}");
        }
        let want: BTreeMap<&str, usize> = POINTS.iter().map(|p| (*p, 1)).collect();
        assert_eq!(landed, want, "one SIGKILL landed at each kill point");
    }

    /// A failure (not a kill) after the key pair was generated: the drop guard destroys the
    /// pair, the journal goes, nothing is written, and the next ceremony runs without --recover.
    #[test]
    fn a_failure_after_generation_destroys_the_new_key_and_leaves_nothing() {
        for (i, point) in POINTS.iter().enumerate().take(8).skip(2) {
            let t = TestToken::new(&format!("fail-{i}"));
            let a = t
                .cmd()
                .arg("key-ceremony")
                .env("FAILPOINTS", format!("{point}=return(error)"))
                .assert()
                .code(1);
            let e = stderr_of(&a);
            assert_eq!(e.lines().count(), 1, "{point}: {e}");
            assert!(
                e.contains(&format!("injected failure at {point} (ceremony aborted: the new root key was destroyed, nothing was written)")),
                "{point}: {e}"
            );
            assert!(keys(&t, "root-ca-key").is_empty(), "{point}: key destroyed");
            assert!(!t.path("ceremony").exists(), "{point}: nothing written");
            t.cmd().arg("key-ceremony").assert().success();
            assert_one_complete_root(&t, point);
        }
    }
}
