//! The local AWS stand-in for Rust integration tests.
//!
//! [`endpoint()`] returns the URL of an AWS endpoint: `AWS_ENDPOINT_URL` if set; else whatever
//! AWS endpoint answers on 127.0.0.1:4566 (`make aws-up`, LocalStack); else a stand-in started
//! once per test binary from `$ROOT/.venv/bin/python -m hsm_demo_standin` on a free port, with
//! `--parent-pid <this test process>` so it exits when the test binary does (even on SIGKILL).
//!
//! Isolation: tests share one server; create your own CAs (e.g. [`create_active_hierarchy`]) and
//! scope run-time switches (throttling, async issuance, faults) to your own access key id with
//! [`set_switches_for`] + [`pca_client_with_key`], so parallel tests don't disturb each other.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_acmpca::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityType, KeyAlgorithm,
    SigningAlgorithm, Validity, ValidityPeriodType,
};

/// Region used with the stand-in.
pub const REGION: &str = "us-east-1";
/// Access key id of the shared (unscoped) test credentials.
pub const ACCESS_KEY: &str = "test";
/// Secret of every test credential.
pub const SECRET_KEY: &str = "test";
/// How long to wait for a server to answer.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// A CA hierarchy created and activated through the AWS SDK: root → PathLen1 → PathLen0 (issuing).
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub root_arn: String,
    pub intermediate_arn: String,
    pub issuing_arn: String,
    /// The root CA certificate (PEM).
    pub root_pem: String,
}

/// The project root (where `.venv/` and `standin/` are).
pub fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// URL of the AWS endpoint tests should use (see the module docs). Starts a stand-in if needed.
pub fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            // `make test` sets HSM_DEMO_TEST_OWN_STANDIN: every test binary then uses a stand-in
            // of its own — not :4566 and not make's AWS_ENDPOINT_URL (mk/30-infra.mk exports it
            // for the infra targets), so a server that is absent or stopped mid-run cannot fail
            // the suite.
            if std::env::var_os("HSM_DEMO_TEST_OWN_STANDIN").is_some() {
                return start_standin();
            }
            if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
                if !url.trim().is_empty() {
                    return url.trim().trim_end_matches('/').to_string();
                }
            }
            if let Some(kind) = probe("127.0.0.1:4566") {
                if kind != Probe::Other {
                    return "http://127.0.0.1:4566".to_string();
                }
            }
            start_standin()
        })
        .clone()
}

/// What answers on an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// hsm-demo's stand-in (moto + plugin): the control switches work.
    Standin,
    /// Stock moto: AWS APIs work, switches don't.
    Moto,
    /// LocalStack.
    LocalStack,
    /// Something that is not an AWS endpoint.
    Other,
}

/// Whether `url` is our stand-in (switches and `/moto-api/reset` available).
pub fn is_standin(url: &str) -> bool {
    probe(host_port(url)).is_some_and(|p| p == Probe::Standin)
}

/// What answers on `addr` ("host:port"), None when nothing listens.
pub fn probe(addr: &str) -> Option<Probe> {
    let sock: SocketAddr = addr.parse().ok()?;
    TcpStream::connect_timeout(&sock, Duration::from_millis(500)).ok()?;
    let ok = |path: &str, needle: &str| {
        http(addr, "GET", path, None)
            .map(|(status, body)| status == 200 && body.contains(needle))
            .unwrap_or(false)
    };
    Some(if ok("/_standin/info", "hsm-demo") {
        Probe::Standin
    } else if ok("/moto-api/", "") {
        Probe::Moto
    } else if ok("/_localstack/health", "") {
        Probe::LocalStack
    } else {
        Probe::Other
    })
}

fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// A minimal HTTP/1.1 request (no extra crates): returns (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let sock: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn start_standin() -> String {
    let root = root_dir();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "error: {} not found: run `make deps-py` (or `make aws-up`, or set AWS_ENDPOINT_URL)",
        python.display()
    );
    let mut child = Command::new(&python)
        .args([
            "-m",
            "hsm_demo_standin",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--quiet",
        ])
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .env("PYTHONPATH", root.join("standin"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("error: cannot run {}: {e}", python.display()));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let Some((_, url)) = line.trim().rsplit_once("listening on ") else {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        let _ = child.wait();
        let reason = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        panic!("error: the AWS stand-in did not start: {reason}");
    };
    let url = url.to_string();
    // Drain both pipes so the server never blocks on a full pipe; it exits with this process.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
    });
    wait_ready(&url, READY_DEADLINE);
    std::mem::forget(child); // reaped by nobody on purpose: --parent-pid ends it
    url
}

/// Polls `GET {url}/moto-api/` (or LocalStack's health) until it answers, panicking after `deadline`.
pub fn wait_ready(url: &str, deadline: Duration) {
    let addr = host_port(url).to_string();
    let end = Instant::now() + deadline;
    let mut delay = Duration::from_millis(20);
    loop {
        if matches!(
            probe(&addr),
            Some(Probe::Standin | Probe::Moto | Probe::LocalStack)
        ) {
            return;
        }
        assert!(
            Instant::now() < end,
            "error: the AWS stand-in at {url} did not answer within {deadline:?}"
        );
        std::thread::sleep(delay); // back-off between polls, bounded by the deadline
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Sets global run-time switches of the stand-in (JSON object, e.g.
/// `{"throttle_enabled": true}`); returns the resulting configuration. Panics on a 4xx answer.
/// Prefer [`set_switches_for`] in tests that run in parallel with others.
pub fn set_switches(endpoint: &str, switches: serde_json::Value) -> serde_json::Value {
    control(endpoint, "POST", "/_standin/config", Some(switches))
}

/// Sets switches only for requests signed with access key id `access_key_id`.
///
/// Switches: `idempotency_window_seconds` (300), `async_pending_gets` (0: GetCertificate answers
/// RequestInProgressException for the first K calls per certificate), `throttle_enabled` (false),
/// `throttle_tps` ({"IssueCertificate": 25, "GetCertificate": 75, "RevokeCertificate": 20}),
/// `fault_5xx_probability` (0), `fault_drop_probability` (0), `fault_operations` ([] = all
/// operations), `fault_seed` (null), `issue_limit_exceeded` (false: IssueCertificate →
/// LimitExceededException), `fail_issuance` (false/0; true or a probability: new issuances end
/// failed, GetCertificate → RequestFailedException).
pub fn set_switches_for(
    endpoint: &str,
    access_key_id: &str,
    switches: serde_json::Value,
) -> serde_json::Value {
    let mut body = switches;
    body.as_object_mut()
        .expect("switches must be a JSON object")
        .insert("access_key_id".into(), access_key_id.into());
    set_switches(endpoint, body)
}

/// Restores every switch (global and scoped) to its start-up value.
pub fn reset_switches(endpoint: &str) -> serde_json::Value {
    control(endpoint, "POST", "/_standin/config/reset", None)
}

/// Current switches: `{"global": {...}, "scopes": {akid: {...}}}`.
pub fn switches(endpoint: &str) -> serde_json::Value {
    control(endpoint, "GET", "/_standin/config", None)
}

/// `GET /_standin/stats?ca_arn=…`: the call counters of one CA (zeros for a CA never called):
/// `{"IssueCertificate": {"calls", "issued", "failed", "idempotent_replays", "errors": {code: n}},
/// "GetCertificate": {"calls", "errors": {code: n}}}`. Counts the API calls that reached the ACM
/// PCA backend (not those refused by the throttle or an injected fault); safe under concurrency.
pub fn issue_stats(endpoint: &str, ca_arn: &str) -> serde_json::Value {
    let query: String = ca_arn
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let all = control(
        endpoint,
        "GET",
        &format!("/_standin/stats?ca_arn={query}"),
        None,
    );
    all["certificate_authorities"][ca_arn].clone()
}

fn stat(endpoint: &str, ca_arn: &str, op: &str, counter: &str) -> u64 {
    let v = issue_stats(endpoint, ca_arn);
    v[op][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("stand-in stats of {ca_arn}: no {op}.{counter} in {v}"))
}

/// IssueCertificate calls to `ca_arn` that created a new certificate (idempotent replays and
/// errors not counted): "no second IssueCertificate" is `issued_count(..) == 1`.
pub fn issued_count(endpoint: &str, ca_arn: &str) -> u64 {
    stat(endpoint, ca_arn, "IssueCertificate", "issued")
}

/// All IssueCertificate calls to `ca_arn` that reached the backend (issued, failed, replayed or
/// answered with an error): the number of attempts, retries included.
pub fn issue_calls(endpoint: &str, ca_arn: &str) -> u64 {
    stat(endpoint, ca_arn, "IssueCertificate", "calls")
}

/// All GetCertificate calls for certificates of `ca_arn` that reached the backend.
pub fn get_certificate_calls(endpoint: &str, ca_arn: &str) -> u64 {
    stat(endpoint, ca_arn, "GetCertificate", "calls")
}

fn control(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let body = body.map(|b| b.to_string());
    let (status, text) = http(host_port(endpoint), method, path, body.as_deref())
        .unwrap_or_else(|e| panic!("stand-in control {method} {path} at {endpoint}: {e}"));
    assert!(
        status == 200,
        "stand-in control {method} {path} answered {status}: {text} (is {endpoint} hsm-demo's stand-in?)"
    );
    serde_json::from_str(&text).expect("control endpoint answers JSON")
}

/// Shared SDK configuration for `endpoint` (static test credentials, us-east-1), for any service.
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_with_key(endpoint, ACCESS_KEY)
}

/// Like [`sdk_config`] with its own access key id (for scoped switches).
pub fn sdk_config_with_key(endpoint: &str, access_key_id: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_provider(access_key_id))
        .build()
}

fn aws_credential_provider(
    access_key_id: &str,
) -> aws_sdk_acmpca::config::SharedCredentialsProvider {
    aws_sdk_acmpca::config::SharedCredentialsProvider::new(Credentials::new(
        access_key_id,
        SECRET_KEY,
        None,
        None,
        "hsm-demo-standin-fixture",
    ))
}

/// An ACM PCA client for `endpoint` with the shared test credentials.
pub fn pca_client(endpoint: &str) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::new(&sdk_config(endpoint))
}

/// An ACM PCA client signing with `access_key_id` (see [`set_switches_for`]).
pub fn pca_client_with_key(endpoint: &str, access_key_id: &str) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::new(&sdk_config_with_key(endpoint, access_key_id))
}

async fn create_ca(
    pca: &aws_sdk_acmpca::Client,
    ca_type: CertificateAuthorityType,
    cn: &str,
) -> String {
    let config = CertificateAuthorityConfiguration::builder()
        .key_algorithm(KeyAlgorithm::EcPrime256v1)
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .subject(
            Asn1Subject::builder()
                .common_name(cn)
                .organization("hsm-demo test")
                .build(),
        )
        .build()
        .expect("CA configuration");
    pca.create_certificate_authority()
        .certificate_authority_configuration(config)
        .certificate_authority_type(ca_type)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateCertificateAuthority {cn}: {e:?}"))
        .certificate_authority_arn()
        .expect("CA ARN")
        .to_string()
}

/// IssueCertificate + GetCertificate (waiting out RequestInProgressException): (cert, chain) PEM.
pub async fn issue_and_get(
    pca: &aws_sdk_acmpca::Client,
    ca_arn: &str,
    csr_pem: &str,
    template: &str,
    years: i64,
) -> (String, String) {
    let validity = Validity::builder()
        .r#type(ValidityPeriodType::Years)
        .value(years)
        .build()
        .expect("validity");
    let arn = pca
        .issue_certificate()
        .certificate_authority_arn(ca_arn)
        .csr(Blob::new(csr_pem.as_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn(format!("arn:aws:acm-pca:::template/{template}"))
        .validity(validity)
        .send()
        .await
        .unwrap_or_else(|e| panic!("IssueCertificate ({template}) from {ca_arn}: {e:?}"))
        .certificate_arn()
        .expect("certificate ARN")
        .to_string();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match pca
            .get_certificate()
            .certificate_authority_arn(ca_arn)
            .certificate_arn(&arn)
            .send()
            .await
        {
            Ok(out) => {
                return (
                    out.certificate().expect("certificate").to_string(),
                    out.certificate_chain().unwrap_or_default().to_string(),
                )
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_request_in_progress_exception())
                    && Instant::now() < end =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("GetCertificate {arn}: {e:?}"),
        }
    }
}

async fn ca_csr(pca: &aws_sdk_acmpca::Client, ca_arn: &str) -> String {
    pca.get_certificate_authority_csr()
        .certificate_authority_arn(ca_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetCertificateAuthorityCsr {ca_arn}: {e:?}"))
        .csr()
        .expect("CSR")
        .to_string()
}

async fn import(pca: &aws_sdk_acmpca::Client, ca_arn: &str, cert: &str, chain: Option<&str>) {
    let mut req = pca
        .import_certificate_authority_certificate()
        .certificate_authority_arn(ca_arn)
        .certificate(Blob::new(cert.as_bytes()));
    if let Some(chain) = chain {
        req = req.certificate_chain(Blob::new(chain.as_bytes()));
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("ImportCertificateAuthorityCertificate {ca_arn}: {e:?}"));
}

/// Creates and activates root (10 y) → intermediate PathLen1 (8 y) → issuing PathLen0 (5 y),
/// EC_prime256v1 / SHA256WITHECDSA, through the real AWS SDK. Each call makes new CAs.
pub async fn create_active_hierarchy(endpoint: &str) -> Hierarchy {
    let pca = pca_client(endpoint);
    let root = create_ca(&pca, CertificateAuthorityType::Root, "hsm-demo test root").await;
    let (root_pem, _) = issue_and_get(
        &pca,
        &root,
        &ca_csr(&pca, &root).await,
        "RootCACertificate/V1",
        10,
    )
    .await;
    import(&pca, &root, &root_pem, None).await;

    let inter = create_ca(
        &pca,
        CertificateAuthorityType::Subordinate,
        "hsm-demo test intermediate",
    )
    .await;
    let (cert, chain) = issue_and_get(
        &pca,
        &root,
        &ca_csr(&pca, &inter).await,
        "SubordinateCACertificate_PathLen1/V1",
        8,
    )
    .await;
    import(&pca, &inter, &cert, Some(&chain)).await;

    let issuing = create_ca(
        &pca,
        CertificateAuthorityType::Subordinate,
        "hsm-demo test issuing",
    )
    .await;
    let (cert, chain) = issue_and_get(
        &pca,
        &inter,
        &ca_csr(&pca, &issuing).await,
        "SubordinateCACertificate_PathLen0/V1",
        5,
    )
    .await;
    import(&pca, &issuing, &cert, Some(&chain)).await;

    Hierarchy {
        root_arn: root,
        intermediate_arn: inter,
        issuing_arn: issuing,
        root_pem,
    }
}

/// [`create_active_hierarchy`] for non-async tests (builds its own runtime; don't call it from
/// inside a tokio runtime).
pub fn create_active_hierarchy_blocking(endpoint: &str) -> Hierarchy {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(create_active_hierarchy(endpoint))
}

/// `GET /_standin/calls?access_key_id=…`: every request signed with `akid` that reached the
/// stand-in (counted on arrival, throttled and fault-injected ones included, every service):
/// `{"total": n, "operations": {op: n}}`.
pub fn calls_of(endpoint: &str, akid: &str) -> serde_json::Value {
    let query: String = akid
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let all = control(
        endpoint,
        "GET",
        &format!("/_standin/calls?access_key_id={query}"),
        None,
    );
    all["access_keys"][akid].clone()
}

/// Calls of `operation` (e.g. "RevokeCertificate", "PutItem") signed with `akid` that reached
/// the stand-in; see [`calls_of`].
pub fn calls(endpoint: &str, akid: &str, operation: &str) -> u64 {
    calls_of(endpoint, akid)["operations"][operation]
        .as_u64()
        .unwrap_or(0)
}

/// All calls signed with `akid` that reached the stand-in, of any operation and service.
pub fn total_calls(endpoint: &str, akid: &str) -> u64 {
    calls_of(endpoint, akid)["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("stand-in calls of {akid}: no total"))
}

/// Arms a one-shot hold for requests signed with `akid` (`POST /_standin/hold`): the first
/// `operation` request (after an answered `after` request, when given) is stopped at `stage` —
/// `"request"`: before the backend sees it; `"answer"`: the backend acted, the answer waits —
/// until [`release`]. With [`wait_held`] a crash test kills the client exactly there.
pub fn hold(
    endpoint: &str,
    akid: &str,
    operation: &str,
    stage: &str,
    after: Option<&str>,
) -> serde_json::Value {
    let body = serde_json::json!({
        "access_key_id": akid, "operation": operation, "stage": stage, "after": after,
    });
    control(endpoint, "POST", "/_standin/hold", Some(body))
}

/// `GET /_standin/held?access_key_id=…&wait=…`: waits (long poll, at most `wait_secs` <= 25) until
/// a request of `akid` is held; returns `{"held": [{"id", "operation", "stage", ...}], "armed",
/// "history"}` (`held` empty when nothing was held within the wait).
pub fn wait_held(endpoint: &str, akid: &str, wait_secs: u32) -> serde_json::Value {
    assert!(wait_secs <= 25, "the control client reads for 30 s at most");
    control(
        endpoint,
        "GET",
        &format!("/_standin/held?access_key_id={akid}&wait={wait_secs}"),
        None,
    )
}

/// Releases the requests of `akid` held now (`"proceed"` or `"drop"`); answers once each went on.
pub fn release(endpoint: &str, akid: &str, action: &str) -> serde_json::Value {
    let body = serde_json::json!({"access_key_id": akid, "action": action});
    control(endpoint, "POST", "/_standin/release", Some(body))
}
