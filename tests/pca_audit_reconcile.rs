//! `pca audit-reconcile` against the stand-in's audit reports: a fleet provisioned and revoked
//! through the tool is clean (exit 0); then each discrepancy is built on purpose — a certificate
//! issued past the tool with the SDK (an orphan), a serial marker AWS never issued (unknown to
//! AWS), a revocation made at AWS only (a status mismatch) — and each is reported, exit 1. A
//! given `--report-key` is read without creating another report.

mod common;
mod pca_support;

use aws_sdk_dynamodb::types::AttributeValue;
use common::standin::{self, calls};
use common::stdout_of;
use pca_support::PcaEnv;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `--json pca audit-reconcile` → (exit code, parsed JSON).
fn reconcile(env: &PcaEnv, bucket: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = env
        .cmd()
        .args([
            "--json",
            "pca",
            "audit-reconcile",
            "--ca-arn",
            env.ca(),
            "--bucket",
            bucket,
        ])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn setup() -> (PcaEnv, String) {
    let env = PcaEnv::new();
    // Audit reports at once and without the 30-minute spacing, for this test's access key.
    standin::set_switches_for(
        &env.endpoint,
        &env.akid,
        serde_json::json!({"audit_report_interval_seconds": 0}),
    );
    let bucket = format!("audit-{}", env.table.to_lowercase());
    rt().block_on(env.s3().create_bucket().bucket(&bucket).send())
        .expect("create the audit bucket");
    (env, bucket)
}

#[test]
fn a_fleet_made_through_the_tool_is_clean_and_each_built_discrepancy_is_reported() {
    let (env, bucket) = setup();
    let serials: Vec<String> = ["au-1", "au-2", "au-3"]
        .iter()
        .map(|d| {
            env.provision(d)["record"]["serial"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    env.cmd()
        .args([
            "pca",
            "revoke",
            "--serial",
            &serials[0],
            "--reason",
            "superseded",
        ])
        .assert()
        .success();

    let (code, v) = reconcile(&env, &bucket, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["clean"], true);
    assert_eq!(v["aws_certificates"], 3, "{v}");
    assert_eq!(v["registry_certificates"], 3, "{v}");
    let report = v["report"].as_str().unwrap().to_string();
    let key = report
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap()
        .to_string();

    // 1. An orphan: issued with the SDK, past the tool.
    env.openssl_csr("stray", "stray-device");
    let csr = std::fs::read_to_string(env.path("stray.csr")).unwrap();
    let pca = standin::pca_client_with_key(&env.endpoint, &env.akid);
    let (stray_pem, _) = rt().block_on(standin::issue_and_get(
        &pca,
        env.ca(),
        &csr,
        "EndEntityClientAuthCertificate/V1",
        1,
    ));
    assert!(stray_pem.contains("BEGIN CERTIFICATE"));
    // 2. A serial the registry holds and AWS never issued.
    let ddb =
        aws_sdk_dynamodb::Client::new(&standin::sdk_config_with_key(&env.endpoint, &env.akid));
    let s = |v: &str| AttributeValue::S(v.to_string());
    rt().block_on(
        ddb.put_item()
            .table_name(&env.table)
            .item("pk", s("SERIAL#0badc0ffee"))
            .item("sk", s(&format!("CA#{}", env.ca())))
            .item("serial", s("0badc0ffee"))
            .item("ca_arn", s(env.ca()))
            .item("device_id", s("ghost"))
            .item("generation", AttributeValue::N("0".into()))
            .item(
                "cert_arn",
                s(&format!("{}/certificate/0badc0ffee", env.ca())),
            )
            .item("status", s("ISSUED"))
            .item("issued_at", s("2026-01-01T00:00:00Z"))
            .send(),
    )
    .unwrap();
    // 3. A revocation made at AWS only (device au-2).
    let au2 = env.show("au-2");
    let au2_arn = au2["current"]["cert_arn"].as_str().unwrap().to_string();
    rt().block_on(
        pca.revoke_certificate()
            .certificate_authority_arn(env.ca())
            .certificate_serial(&serials[1])
            .revocation_reason(aws_sdk_acmpca::types::RevocationReason::KeyCompromise)
            .send(),
    )
    .unwrap();
    assert!(au2_arn.ends_with(&serials[1]) || !au2_arn.is_empty());

    let creates = calls(
        &env.endpoint,
        &env.akid,
        "CreateCertificateAuthorityAuditReport",
    );
    let (code, v) = reconcile(&env, &bucket, &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["clean"], false);
    assert_eq!(
        calls(
            &env.endpoint,
            &env.akid,
            "CreateCertificateAuthorityAuditReport"
        ),
        creates + 1
    );
    let orphans = v["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{v}");
    assert!(
        orphans[0]["subject"]
            .as_str()
            .unwrap()
            .contains("stray-device"),
        "{v}"
    );
    assert!(
        orphans[0]["open_intent"].is_null(),
        "nothing explains it: {v}"
    );
    let unknown = v["unknown_to_aws"].as_array().unwrap();
    assert_eq!(unknown.len(), 1, "{v}");
    assert_eq!(unknown[0]["serial"], "0badc0ffee");
    let mism = v["status_mismatches"].as_array().unwrap();
    assert_eq!(mism.len(), 1, "{v}");
    assert_eq!(mism[0]["device_id"], "au-2");
    assert!(
        mism[0]["aws"].as_str().unwrap().starts_with("revoked"),
        "{v}"
    );
    assert_eq!(mism[0]["registry"], "ISSUED");

    // The first report, given by key: read as it is (it predates all three), no new report.
    let creates = calls(
        &env.endpoint,
        &env.akid,
        "CreateCertificateAuthorityAuditReport",
    );
    let (code, v) = reconcile(&env, &bucket, &["--report-key", &key]);
    assert_eq!(
        calls(
            &env.endpoint,
            &env.akid,
            "CreateCertificateAuthorityAuditReport"
        ),
        creates,
        "no report created for --report-key"
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["orphans"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["unknown_to_aws"].as_array().unwrap().len(), 1, "{v}");

    // Text form: one line per discrepancy and the count.
    let a = env
        .cmd()
        .args([
            "pca",
            "audit-reconcile",
            "--ca-arn",
            env.ca(),
            "--bucket",
            &bucket,
        ])
        .assert()
        .failure()
        .code(1);
    let text = stdout_of(&a);
    assert!(text.contains("orphan: serial"), "{text}");
    assert!(
        text.contains("unknown to AWS: serial 0badc0ffee of device ghost"),
        "{text}"
    );
    assert!(text.contains("status mismatch: serial"), "{text}");
    assert!(text.contains("3 discrepancies"), "{text}");
}
