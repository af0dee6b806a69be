//! `pca prune-keys`: destroys only the key pairs of past generations whose certificates are all
//! revoked (or expired), never a current key or one whose superseded certificate is still valid;
//! `--dry-run` destroys nothing.

mod common;
mod pca_support;
mod renew_support;

use common::stdout_of;
use pca_support::PcaEnv;
use renew_support::*;

fn labels(env: &PcaEnv) -> Vec<String> {
    let objs = stdout_of(
        &env.cmd()
            .args(["list-slots", "--objects"])
            .assert()
            .success(),
    );
    let mut v: Vec<String> = objs
        .lines()
        .filter_map(|l| l.split("label=\"").nth(1))
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn prune_keys_destroys_only_revoked_generations_keys_and_never_a_current_one() {
    let env = PcaEnv::new();
    // pr-a: generations 0, 1 revoked (superseded), 2 current.
    provision_for(&env, "pr-a", "30d");
    renew_json(&env, &["--device-id", "pr-a", "--force"]);
    renew_json(
        &env,
        &["--device-id", "pr-a", "--force", "--revoke-superseded"],
    );
    assert_eq!(
        history(&env, "pr-a"),
        vec![
            (0, "REVOKED".to_string()),
            (1, "REVOKED".to_string()),
            (2, "ISSUED".to_string())
        ]
    );
    // pr-b: generation 0 superseded but still valid, 1 current.
    provision_for(&env, "pr-b", "30d");
    renew_json(&env, &["--device-id", "pr-b", "--force"]);
    let before = labels(&env);
    assert_eq!(before.len(), 10, "{before:?}");

    // --dry-run: the verdicts, nothing destroyed.
    let a = env
        .cmd()
        .args(["--json", "pca", "prune-keys", "--dry-run"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    let prune: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["verdict"] == "prune")
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(prune, ["device-pr-a", "device-pr-a-g1"], "{v}");
    assert_eq!(labels(&env), before);

    // For real: exactly those two pairs go; the current keys and pr-b's old key stay.
    env.cmd().args(["pca", "prune-keys"]).assert().success();
    let after = labels(&env);
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(gone.len(), 4, "{gone:?}");
    assert!(gone
        .iter()
        .all(|l| *l == "device-pr-a" || *l == "device-pr-a-g1"));
    for keep in ["device-pr-a-g2", "device-pr-b", "device-pr-b-g1"] {
        assert_eq!(
            after.iter().filter(|l| *l == keep).count(),
            2,
            "{keep}: {after:?}"
        );
    }
    // The current key still signs: pr-a renews with --reuse-key after the prune.
    let r = renew_json(&env, &["--device-id", "pr-a", "--force", "--reuse-key"]);
    assert_eq!(r[0]["key_label"], "device-pr-a-g2", "{r:?}");
    // A rerun finds nothing more to destroy.
    let a = env
        .cmd()
        .args(["--json", "pca", "prune-keys"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|l| l["destroyed"] == false),
        "{v}"
    );
}
