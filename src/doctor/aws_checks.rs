//! The AWS half of `doctor`: credentials and region, the endpoints and the clock, the CA, the
//! registry table, the CRL bucket. Only describe calls, each with a short retry budget.

use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_acmpca::operation::describe_certificate_authority::DescribeCertificateAuthorityOutput;
use aws_sdk_acmpca::types::CertificateAuthorityStatus;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;

use super::clock::{clock_check, DateCapture, Seen};
use super::{Check, DoctorOptions};
use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, AwsOptions, Service};
use crate::pca::ids::CaArn;

const NAMES: [&str; 6] = ["credentials", "endpoint", "clock", "ca", "table", "crl"];

/// The AWS checks, in order. All are skipped when nothing about AWS is configured.
pub fn run(opts: &DoctorOptions) -> Vec<Check> {
    if opts.ca_arn.is_none() && !aws_configured() {
        let why = "no AWS configuration (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, ~/.aws) and no --ca-arn";
        return NAMES.iter().map(|n| Check::skip(n, why)).collect();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = Error::io("cannot start the async runtime", e);
            return NAMES
                .iter()
                .map(|n| Check::fail(n, e.one_line(), ""))
                .collect();
        }
    };
    rt.block_on(run_async(opts))
}

fn aws_configured() -> bool {
    let env = [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ];
    if env
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    [
        file("AWS_CONFIG_FILE", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ]
    .into_iter()
    .flatten()
    .any(|p| p.is_file())
}

async fn run_async(opts: &DoctorOptions) -> Vec<Check> {
    let mut checks = vec![credentials_check().await];
    if checks[0].status == super::Status::Fail {
        checks.extend(
            NAMES[1..]
                .iter()
                .map(|n| Check::skip(n, "needs AWS credentials and a region")),
        );
        return checks;
    }
    let aws = AwsOptions {
        max_attempts: 2,
        retry_budget: opts.aws_budget,
        attempt_timeout: opts.aws_budget.max(Duration::from_secs(1)),
        shaper: None,
        ..AwsOptions::default()
    };
    let clients = match AwsClients::load(&aws).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail(
                "endpoint",
                e.one_line(),
                "fix the endpoint configuration (AWS_ENDPOINT_URL must be an http(s) URL)",
            ));
            checks.extend(
                NAMES[2..]
                    .iter()
                    .map(|n| Check::skip(n, "needs the endpoint check to pass")),
            );
            return checks;
        }
    };
    let probes = Probes::run(&clients, opts).await;
    checks.push(probes.endpoint_check(&clients, opts));
    checks.push(probes.clock());
    checks.push(probes.ca_check(&clients, opts));
    checks.push(table_check(&clients, opts, probes.table).await);
    checks.push(probes.crl);
    checks
}

/// Resolves the credentials (never printing the secret) and the region.
async fn credentials_check() -> Check {
    let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let Some(region) = conf.region().map(|r| r.to_string()) else {
        return Check::fail(
            "credentials",
            "no AWS region configured",
            "set AWS_REGION (or region in the AWS_PROFILE profile)",
        );
    };
    let Some(provider) = conf.credentials_provider() else {
        return Check::fail(
            "credentials",
            "no AWS credentials provider",
            "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        );
    };
    let creds = match provider.provide_credentials().await {
        Ok(c) => c,
        Err(e) => {
            let msg = crate::pca::aws::printable(&error_chain(&e));
            return Check::fail("credentials", format!("no usable AWS credentials: {msg}"), "set AWS_PROFILE to an existing profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (aws configure list shows what the SDK sees)");
        }
    };
    let key = creds.access_key_id();
    let shown = format!("…{}", &key[key.len().saturating_sub(4)..]);
    let detail = format!(
        "access key {shown} from {}, region {region}",
        credential_source()
    );
    match creds.expiry() {
        Some(t) if t <= std::time::SystemTime::now() => Check::fail(
            "credentials",
            format!("{detail}: expired"),
            "refresh the credentials (aws sso login, or new session credentials)",
        ),
        Some(t) => {
            let left = t
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Check::pass(
                "credentials",
                format!("{detail}, expiring in {} min", left.as_secs() / 60),
            )
        }
        None => Check::pass("credentials", detail),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// Where the SDK's default chain found the credentials, named after what is configured.
fn credential_source() -> String {
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        "the environment (AWS_ACCESS_KEY_ID)".into()
    } else if let Some(p) = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
        format!("profile '{}'", crate::pca::aws::printable(&p))
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".into()
    } else {
        "the default provider chain (default profile, container or instance role)".into()
    }
}

/// The describe calls, each with its own [`DateCapture`] and latency.
struct Probes {
    table: Probe<std::result::Result<DescribeTableOutput, Error>>,
    ca: Option<Probe<std::result::Result<DescribeCertificateAuthorityOutput, Error>>>,
    crl: Check,
}

struct Probe<T> {
    result: T,
    seen: Option<Seen>,
    latency: Duration,
    not_found: bool,
}

impl Probes {
    async fn run(clients: &AwsClients, opts: &DoctorOptions) -> Probes {
        let cap = DateCapture::default();
        let start = Instant::now();
        let r = clients
            .ddb
            .describe_table()
            .table_name(&opts.table)
            .customize()
            .interceptor(cap.clone())
            .send()
            .await;
        let not_found = r.as_ref().err().and_then(error_code) == Some("ResourceNotFoundException");
        let table = Probe {
            result: r.map_err(|e| map_sdk_error(clients, Service::Ddb, "DescribeTable", e)),
            seen: cap.seen(),
            latency: start.elapsed(),
            not_found,
        };
        let ca = match &opts.ca_arn {
            Some(arn) if arn.region() == clients.region => Some(describe_ca(clients, arn).await),
            _ => None,
        };
        let crl = crl_check(
            clients,
            opts,
            ca.as_ref().and_then(|p| p.result.as_ref().ok()),
        )
        .await;
        Probes { table, ca, crl }
    }

    fn endpoint_check(&self, clients: &AwsClients, opts: &DoctorOptions) -> Check {
        let mut parts = Vec::new();
        let mut failed = Vec::new();
        let mut note = |name: &str,
                        endpoint: &str,
                        seen: &Option<Seen>,
                        latency: Duration,
                        err: Option<&Error>| match (seen, err) {
            (Some(s), _) => parts.push(format!(
                "{name} {endpoint} answered HTTP {} in {} ms",
                s.status,
                latency.as_millis()
            )),
            (None, Some(e)) => failed.push(e.one_line()),
            (None, None) => failed.push(format!("{name} {endpoint}: no response")),
        };
        note(
            "dynamodb",
            &clients.ddb_endpoint,
            &self.table.seen,
            self.table.latency,
            self.table.result.as_ref().err(),
        );
        if let Some(p) = &self.ca {
            note(
                "acm-pca",
                &clients.pca_endpoint,
                &p.seen,
                p.latency,
                p.result.as_ref().err(),
            );
        } else if opts.ca_arn.is_none() {
            parts.push("acm-pca not checked (no --ca-arn)".into());
        }
        if failed.is_empty() {
            Check::pass("endpoint", parts.join("; "))
        } else {
            Check::fail(
                "endpoint",
                failed.join("; "),
                "check the network path, the endpoint URL (AWS_ENDPOINT_URL) and the region",
            )
        }
    }

    fn clock(&self) -> Check {
        let seen = self
            .table
            .seen
            .iter()
            .chain(self.ca.iter().filter_map(|p| p.seen.as_ref()))
            .find(|s| s.date.is_some());
        match seen {
            Some(s) => clock_check("the AWS endpoint", s),
            None => Check::skip("clock", "no response with a Date header to compare with"),
        }
    }

    fn ca_check(&self, clients: &AwsClients, opts: &DoctorOptions) -> Check {
        let Some(arn) = &opts.ca_arn else {
            return Check::skip("ca", "no --ca-arn (or HSM_DEMO_CA_ARN) given");
        };
        if arn.region() != clients.region {
            return Check::fail(
                "ca",
                format!(
                    "CA {arn} is in region {} but the configured region is {}",
                    arn.region(),
                    clients.region
                ),
                format!("set AWS_REGION={}", arn.region()),
            );
        }
        let Some(p) = &self.ca else {
            return Check::skip("ca", "not described");
        };
        match &p.result {
            Ok(out) => ca_state(arn, out),
            Err(e) if p.not_found => Check::fail(
                "ca",
                format!("no CA {arn} in {}: {}", clients.region, e.one_line()),
                "check --ca-arn / HSM_DEMO_CA_ARN and the account",
            ),
            Err(e) => Check::fail(
                "ca",
                e.one_line(),
                "the caller needs acm-pca:DescribeCertificateAuthority on the CA",
            ),
        }
    }
}

async fn describe_ca(
    clients: &AwsClients,
    arn: &CaArn,
) -> Probe<std::result::Result<DescribeCertificateAuthorityOutput, Error>> {
    let cap = DateCapture::default();
    let start = Instant::now();
    let r = clients
        .pca
        .describe_certificate_authority()
        .certificate_authority_arn(arn.as_str())
        .customize()
        .interceptor(cap.clone())
        .send()
        .await;
    let not_found = r.as_ref().err().and_then(error_code) == Some("ResourceNotFoundException");
    Probe {
        result: r
            .map_err(|e| map_sdk_error(clients, Service::Pca, "DescribeCertificateAuthority", e)),
        seen: cap.seen(),
        latency: start.elapsed(),
        not_found,
    }
}

/// ACTIVE, with its key algorithm and the time its certificate has left.
fn ca_state(arn: &CaArn, out: &DescribeCertificateAuthorityOutput) -> Check {
    let Some(ca) = out.certificate_authority() else {
        return Check::fail(
            "ca",
            format!("DescribeCertificateAuthority returned no CA for {arn}"),
            "check --ca-arn",
        );
    };
    let status = ca
        .status()
        .map_or("UNKNOWN", CertificateAuthorityStatus::as_str);
    let alg = ca
        .certificate_authority_configuration()
        .map_or("?", |c| c.key_algorithm().as_str());
    let days_left = ca.not_after().map(|t| (t.secs() - now_secs()) / 86_400);
    let left = days_left.map_or("no certificate yet".to_string(), |d| {
        format!("{d} days of validity left")
    });
    let detail = format!(
        "{} {status}, {alg}, {left}",
        ca.r#type().map_or("CA", |t| t.as_str())
    );
    match (status, days_left) {
        ("ACTIVE", Some(d)) if d < 60 => Check::warn("ca", detail, "the CA expires soon: certificates cannot outlive it; plan its renewal"),
        ("ACTIVE", _) => Check::pass("ca", detail),
        ("PENDING_CERTIFICATE", _) => Check::fail("ca", detail, "install the CA certificate (infra/deploy: phase 2, or ImportCertificateAuthorityCertificate)"),
        ("DISABLED", _) => Check::fail("ca", detail, "enable it: aws acm-pca update-certificate-authority --status ACTIVE"),
        _ => Check::fail("ca", detail, "this CA cannot issue: use an ACTIVE CA"),
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The table exists, is ACTIVE, has the `pk`/`sk` string key, and point-in-time recovery is on.
async fn table_check(
    clients: &AwsClients,
    opts: &DoctorOptions,
    p: Probe<std::result::Result<DescribeTableOutput, Error>>,
) -> Check {
    let out = match p.result {
        Ok(out) => out,
        Err(_) if p.not_found => {
            return Check::fail(
                "table",
                format!(
                    "registry table '{}' not found in {}",
                    opts.table, clients.region
                ),
                "create it: hsm-demo pca init-table (or deploy infra/)",
            )
        }
        Err(e) => {
            return Check::fail(
                "table",
                e.one_line(),
                "the caller needs dynamodb:DescribeTable on the registry",
            )
        }
    };
    let Some(t) = out.table() else {
        return Check::fail("table", "DescribeTable returned no table", "check --table");
    };
    if let Err(why) = key_schema_ok(t) {
        return Check::fail("table", format!("registry table '{}': {why}", opts.table), "use a table created by hsm-demo pca init-table or infra/ (pk: string HASH, sk: string RANGE)");
    }
    let status = t.table_status().map_or("UNKNOWN", |s| s.as_str());
    let detail = format!(
        "'{}' {status}, key pk/sk, {} items",
        opts.table,
        t.item_count().unwrap_or(0)
    );
    match pitr(clients, &opts.table).await {
        Ok(true) => Check::pass("table", format!("{detail}, point-in-time recovery on")),
        Ok(false) => Check::warn("table", format!("{detail}, point-in-time recovery off"), format!("aws dynamodb update-continuous-backups --table-name {} --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true", opts.table)),
        Err(e) => Check::warn("table", format!("{detail}; point-in-time recovery unknown: {}", e.one_line()), "the caller needs dynamodb:DescribeContinuousBackups"),
    }
}

fn key_schema_ok(t: &aws_sdk_dynamodb::types::TableDescription) -> std::result::Result<(), String> {
    use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType};
    let key_of = |kt: KeyType| {
        t.key_schema()
            .iter()
            .find(|k| *k.key_type() == kt)
            .map(|k| k.attribute_name().to_string())
    };
    let type_of = |name: &str| {
        t.attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().clone())
    };
    match (key_of(KeyType::Hash), key_of(KeyType::Range)) {
        (Some(h), Some(r)) if h == "pk" && r == "sk" => {}
        (h, r) => {
            return Err(format!(
                "key schema is {}/{}, expected pk/sk",
                h.unwrap_or("-".into()),
                r.unwrap_or("-".into())
            ))
        }
    }
    for a in ["pk", "sk"] {
        if type_of(a) != Some(ScalarAttributeType::S) {
            return Err(format!("attribute {a} is not a string"));
        }
    }
    Ok(())
}

async fn pitr(clients: &AwsClients, table: &str) -> Result<bool> {
    use aws_sdk_dynamodb::types::PointInTimeRecoveryStatus;
    let out = clients
        .ddb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .map_err(|e| map_sdk_error(clients, Service::Ddb, "DescribeContinuousBackups", e))?;
    Ok(out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled))
}

/// The CA's CRL: fetched from its bucket and checked as `pca crl` does (issuer, signature with
/// the CA certificate, freshness), when the CA publishes one.
async fn crl_check(
    clients: &AwsClients,
    opts: &DoctorOptions,
    ca: Option<&DescribeCertificateAuthorityOutput>,
) -> Check {
    let Some(arn) = &opts.ca_arn else {
        return Check::skip("crl", "no --ca-arn given");
    };
    let Some(ca) = ca.and_then(|o| o.certificate_authority()) else {
        return Check::skip("crl", "needs the CA check to pass");
    };
    let enabled = ca
        .revocation_configuration()
        .and_then(|r| r.crl_configuration())
        .is_some_and(|c| c.enabled());
    if !enabled {
        return Check::skip("crl", "CRL publication is not enabled on the CA");
    }
    match crate::pca::crl::fetch(clients, arn, None).await {
        Ok((info, _)) => {
            let detail = format!(
                "s3://{}/{}: CRL number {}, {} revoked, next update {}",
                info.location.bucket,
                info.location.key,
                info.crl_number.as_deref().unwrap_or("-"),
                info.revoked_count,
                info.next_update.as_deref().unwrap_or("-")
            );
            if info.stale {
                Check::warn("crl", format!("{detail}: stale"), "the CA has not refreshed its CRL: check the bucket policy that lets acm-pca write it")
            } else {
                Check::pass("crl", detail)
            }
        }
        Err(e) => Check::fail(
            "crl",
            e.one_line(),
            "the caller needs s3:GetObject on the CRL objects (crl/*), and acm-pca must be able to write them",
        ),
    }
}
