//! `pca revoke` killed between its steps (fault points, `--features failpoints`): the rerun
//! completes the revocation, records the compromised key once, and the registry never says
//! REVOKED before AWS revoked. Run by `make test-pca-failpoints`.
#![cfg(feature = "failpoints")]

mod common;
mod pca_support;

use common::{stderr_of, stdout_of};
use pca_support::PcaEnv;

#[test]
fn revoke_killed_at_each_step_is_completed_by_the_rerun() {
    let env = PcaEnv::new();
    // (fault point, is the key already recorded as compromised when the process dies?)
    let points = [("after-revoke", false), ("after-compromised-key", true)];
    for (i, (fp, key_recorded)) in points.into_iter().enumerate() {
        let dev = format!("rv-{fp}");
        let serial = env.provision(&dev)["record"]["serial"]
            .as_str()
            .unwrap()
            .to_string();
        let a = env
            .cmd()
            .env("FAILPOINTS", format!("{fp}=return"))
            .args(["pca", "revoke", "--serial", &serial])
            .args(["--reason", "key-compromise"])
            .assert()
            .code(86);
        assert!(
            stderr_of(&a).contains(&format!("failpoint {fp}")),
            "{fp} not reached"
        );
        // Killed after RevokeCertificate: the registry still says ISSUED (never ahead of AWS).
        assert_eq!(env.show(&dev)["current"]["status"], "ISSUED", "{fp}");
        let recorded = env.items_with_sk("COMPROMISED");
        assert_eq!(
            recorded.len(),
            i + usize::from(key_recorded),
            "{fp}: {recorded:?}"
        );

        let a = env
            .cmd()
            .args(["--json", "pca", "revoke", "--serial", &serial])
            .args(["--reason", "key-compromise"])
            .assert()
            .success();
        let r: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
        assert_eq!(r["changed"], true, "{fp}: {r}");
        assert!(r["compromised_key"].is_string(), "{fp}: {r}");
        assert_eq!(env.show(&dev)["current"]["status"], "REVOKED", "{fp}");
        assert_eq!(env.items_with_sk("COMPROMISED").len(), i + 1, "{fp}");
        // And the key is refused from now on.
        env.provision_cmd(&dev).assert().failure();
    }
    assert_eq!(
        env.issued_by_ca(),
        2,
        "nothing issued besides the two devices"
    );
}
