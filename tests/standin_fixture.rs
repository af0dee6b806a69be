//! The stand-in fixture itself: it starts (or finds) an AWS endpoint, builds a CA hierarchy through
//! the real AWS SDK, and scoped switches reach the SDK as AWS errors.

#[path = "common/standin.rs"]
mod standin;

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn hierarchy_through_the_sdk_verifies_with_openssl() {
    let ep = standin::endpoint();
    let h = standin::create_active_hierarchy(&ep).await;
    let pca = standin::pca_client(&ep);
    for arn in [&h.root_arn, &h.intermediate_arn, &h.issuing_arn] {
        let ca = pca
            .describe_certificate_authority()
            .certificate_authority_arn(arn)
            .send()
            .await
            .expect("describe");
        let status = ca.certificate_authority().and_then(|c| c.status()).cloned();
        assert_eq!(
            status,
            Some(aws_sdk_acmpca::types::CertificateAuthorityStatus::Active)
        );
    }
    // The issuing CA's certificate chains to the root with the CA extensions the templates set.
    let got = pca
        .get_certificate_authority_certificate()
        .certificate_authority_arn(&h.issuing_arn)
        .send()
        .await
        .expect("CA certificate");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), &h.root_pem).unwrap();
    std::fs::write(dir.path().join("issuing.pem"), got.certificate().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("chain.pem"),
        got.certificate_chain().unwrap(),
    )
    .unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "issuing.pem",
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scoped_throttling_reaches_the_sdk_as_throttling_exception() {
    let ep = standin::endpoint();
    if !standin::is_standin(&ep) {
        eprintln!("skipped: {ep} is not hsm-demo's stand-in (no switches)");
        return;
    }
    let h = standin::create_active_hierarchy(&ep).await;
    standin::set_switches_for(
        &ep,
        "AKIARUSTFIXTURE1",
        serde_json::json!({"throttle_enabled": true, "throttle_tps": {"GetCertificateAuthorityCsr": 1}}),
    );
    let conf = aws_sdk_acmpca::config::Builder::from(&standin::sdk_config_with_key(
        &ep,
        "AKIARUSTFIXTURE1",
    ))
    .retry_config(aws_sdk_acmpca::config::retry::RetryConfig::disabled())
    .build();
    let pca = aws_sdk_acmpca::Client::from_conf(conf);
    let mut throttled = 0;
    for _ in 0..5 {
        if let Err(e) = pca
            .get_certificate_authority_csr()
            .certificate_authority_arn(&h.issuing_arn)
            .send()
            .await
        {
            let code = e
                .as_service_error()
                .and_then(|s| aws_sdk_acmpca::error::ProvideErrorMetadata::code(s));
            assert_eq!(code, Some("ThrottlingException"), "{e:?}");
            throttled += 1;
        }
    }
    assert!(
        throttled >= 3,
        "only {throttled} of 5 calls throttled at 1 TPS"
    );
    // Other access keys are unaffected.
    standin::pca_client(&ep)
        .get_certificate_authority_csr()
        .certificate_authority_arn(&h.issuing_arn)
        .send()
        .await
        .expect("unscoped call");
}
