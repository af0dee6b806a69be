//! testcontainers path (cargo feature `testcontainers`): run the Rust SDK flows against LocalStack
//! Pro (needs `LOCALSTACK_AUTH_TOKEN`: ACM PCA is a paid LocalStack feature) or, without a token,
//! against the stock moto image `motoserver/moto:5.2.5` (moto without hsm-demo's plugin, so only
//! the basic CA flow is checked there). Needs a reachable Docker daemon (`DOCKER_HOST` or
//! /var/run/docker.sock); without one every test here prints why and skips.
//!
//! This machine has no Docker engine: CI only compiles this file (`make check-testcontainers`).
#![cfg(feature = "testcontainers")]

#[path = "common/standin.rs"]
mod standin;

use std::io::{Read, Write};
use std::time::Duration;

use testcontainers_modules::localstack::LocalStackPro;
use testcontainers_modules::testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage};

/// A running container and the endpoint URL of its AWS API. Dropping it removes the container.
pub enum AwsContainer {
    LocalStack(ContainerAsync<LocalStackPro>, String),
    Moto(ContainerAsync<GenericImage>, String),
}

impl AwsContainer {
    pub fn endpoint(&self) -> &str {
        match self {
            AwsContainer::LocalStack(_, url) | AwsContainer::Moto(_, url) => url,
        }
    }
}

/// Why Docker cannot be used here, or None when its daemon answers `/_ping`.
pub fn docker_unavailable() -> Option<String> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if let Some(path) = host.strip_prefix("unix://") {
            return ping_unix(path).err();
        }
        return None; // tcp:// hosts: let testcontainers try
    }
    ping_unix("/var/run/docker.sock").err()
}

fn ping_unix(path: &str) -> Result<(), String> {
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("no Docker daemon at {path}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| format!("Docker daemon at {path}: {e}"))?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    if buf.ends_with("OK") {
        Ok(())
    } else {
        Err(format!("Docker daemon at {path} did not answer /_ping"))
    }
}

/// Starts LocalStack Pro (with `LOCALSTACK_AUTH_TOKEN`) or else the moto image; None (with the
/// reason printed) when Docker is not reachable.
pub async fn start() -> Option<AwsContainer> {
    if let Some(why) = docker_unavailable() {
        eprintln!("skipped: testcontainers needs a Docker daemon: {why}");
        return None;
    }
    if std::env::var("LOCALSTACK_AUTH_TOKEN").is_ok_and(|t| !t.is_empty()) {
        let c = LocalStackPro::from_env()
            .start()
            .await
            .expect("start LocalStack Pro");
        let url = format!(
            "http://{}:{}",
            c.get_host().await.expect("host"),
            c.get_host_port_ipv4(4566).await.expect("port 4566")
        );
        return Some(AwsContainer::LocalStack(c, url));
    }
    eprintln!(
        "LOCALSTACK_AUTH_TOKEN not set: using the stock moto image instead of LocalStack Pro"
    );
    let c = GenericImage::new("motoserver/moto", "5.2.5")
        .with_exposed_port(5000.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Running on"))
        .start()
        .await
        .expect("start motoserver/moto:5.2.5");
    let url = format!(
        "http://{}:{}",
        c.get_host().await.expect("host"),
        c.get_host_port_ipv4(5000).await.expect("port 5000")
    );
    Some(AwsContainer::Moto(c, url))
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_hierarchy_in_a_container() {
    let Some(container) = start().await else {
        return;
    };
    let h = standin::create_active_hierarchy(container.endpoint()).await;
    assert!(h.root_pem.contains("BEGIN CERTIFICATE"));
    let pca = standin::pca_client(container.endpoint());
    let ca = pca
        .describe_certificate_authority()
        .certificate_authority_arn(&h.issuing_arn)
        .send()
        .await
        .expect("describe issuing CA");
    assert_eq!(
        ca.certificate_authority().and_then(|c| c.status()).cloned(),
        Some(aws_sdk_acmpca::types::CertificateAuthorityStatus::Active)
    );
}
