//! AWS client set-up from the standard AWS configuration, and SDK error mapping.
//!
//! Configuration comes from the usual places (aws-config's default chain): `AWS_REGION` /
//! `AWS_DEFAULT_REGION` or the profile's region, `AWS_PROFILE`, the credential chain (env,
//! profile, SSO, web identity, IMDS…), `AWS_ENDPOINT_URL` and the service-specific
//! `AWS_ENDPOINT_URL_ACM_PCA` / `AWS_ENDPOINT_URL_DYNAMODB`. Nothing here runs for HSM-only
//! commands: the CLI creates the tokio runtime and calls [`AwsClients::load`] only inside `pca` and
//! `provision`.
//!
//! Retries: the SDK's *standard* retry strategy (exponential backoff with full jitter) for
//! throttling, 5xx, timeouts and dropped connections, `max_attempts` attempts in total. ACM PCA's
//! `LimitExceededException` — which the SDK lists among throttling codes — is a quota on the
//! *number* of resources (CAs, certificates), not a rate: a classifier forbids retrying it.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_acmpca::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

use crate::error::{Error, Result};

/// Knobs for the AWS clients.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Total attempts per call (first try + retries), standard retry mode.
    pub max_attempts: u32,
    /// Initial backoff of the retry strategy (full jitter up to `max_backoff`).
    pub initial_backoff: Duration,
    /// Cap of the backoff.
    pub max_backoff: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Client-side rate limiting of ACM PCA operations (batch provisioning), see
    /// [`crate::pca::ratelimit`]; `None` = unshaped.
    pub shaper: Option<crate::pca::ratelimit::Shaper>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(20),
            shaper: None,
        }
    }
}

/// The two service clients the pca module uses, shareable across tasks (they are `Clone` and
/// cheap to clone).
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// ACM PCA.
    pub pca: aws_sdk_acmpca::Client,
    /// DynamoDB.
    pub ddb: aws_sdk_dynamodb::Client,
    /// The configured region.
    pub region: String,
    /// ACM PCA endpoint, for error messages.
    pub pca_endpoint: String,
    /// DynamoDB endpoint, for error messages.
    pub ddb_endpoint: String,
}

impl AwsClients {
    /// Loads the standard AWS configuration and builds both clients.
    ///
    /// Fails with one line when no region is configured.
    pub async fn load(opts: &AwsOptions) -> Result<Self> {
        let retry = RetryConfig::standard()
            .with_max_attempts(opts.max_attempts.max(1))
            .with_initial_backoff(opts.initial_backoff)
            .with_max_backoff(opts.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(opts.connect_timeout)
            .operation_attempt_timeout(opts.attempt_timeout)
            .build();
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts)
            .load()
            .await;
        let Some(region) = conf.region().map(|r| r.to_string()) else {
            return Err(Error::Aws(
                "no AWS region configured: set AWS_REGION (or a region in the AWS_PROFILE profile)"
                    .into(),
            ));
        };
        if conf.credentials_provider().is_none() {
            return Err(Error::Aws(
                "no AWS credentials provider: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
            ));
        }
        let pca_endpoint = endpoint_for("ACM_PCA", "acm-pca", &region, conf.endpoint_url());
        let ddb_endpoint = endpoint_for("DYNAMODB", "dynamodb", &region, conf.endpoint_url());
        let mut pca_builder = aws_sdk_acmpca::config::Builder::from(&conf)
            .retry_classifier(NoRetryOnLimitExceeded)
            .interceptor(RetryLogger);
        if let Some(shaper) = &opts.shaper {
            pca_builder = shaper.install(pca_builder, conf.http_client())?;
        }
        let pca_conf = pca_builder.build();
        let ddb_conf = aws_sdk_dynamodb::config::Builder::from(&conf)
            .interceptor(RetryLogger)
            .build();
        Ok(AwsClients {
            pca: aws_sdk_acmpca::Client::from_conf(pca_conf),
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb_conf),
            region,
            pca_endpoint,
            ddb_endpoint,
        })
    }
}

/// The endpoint the SDK will use, as far as it can be known up front (for messages only).
fn endpoint_for(env_suffix: &str, host: &str, region: &str, global: Option<&str>) -> String {
    if let Ok(v) = std::env::var(format!("AWS_ENDPOINT_URL_{env_suffix}")) {
        if !v.is_empty() {
            return v;
        }
    }
    match global {
        Some(g) => g.to_string(),
        None => format!("https://{host}.{region}.amazonaws.com"),
    }
}

/// Logs every retry (attempt ≥ 2) at INFO with the operation: visible with `-v`, and how tests
/// see that throttling / 5xx / dropped connections were retried rather than surfaced.
#[derive(Debug)]
struct RetryLogger;

impl aws_sdk_acmpca::config::Intercept for RetryLogger {
    fn name(&self) -> &'static str {
        "hsm-demo retry logger"
    }

    fn read_before_attempt(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_acmpca::config::RuntimeComponents,
        cfg: &mut aws_sdk_acmpca::config::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        use aws_smithy_runtime_api::client::retries::RequestAttempts;
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            let (svc, op) = cfg
                .load::<Metadata>()
                .map_or(("?", "?"), |m| (m.service(), m.name()));
            tracing::info!(service = svc, operation = op, attempt, "retrying AWS call");
        }
        Ok(())
    }
}

/// Forbids retrying ACM PCA's `LimitExceededException` (a resource quota, not a rate limit).
#[derive(Debug)]
struct NoRetryOnLimitExceeded;

impl ClassifyRetry for NoRetryOnLimitExceeded {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        // awsJson1_1 carries the error type in the body's `__type` and often in this header.
        let header = resp
            .headers()
            .get("x-amzn-errortype")
            .unwrap_or_default()
            .to_string();
        let body = resp.body().bytes().unwrap_or_default();
        let in_body = body.len() < 64 * 1024
            && std::str::from_utf8(body).is_ok_and(|b| b.contains("LimitExceededException"));
        if header.starts_with("LimitExceededException") || in_body {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "hsm-demo: no retry on ACM PCA LimitExceededException"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(
            RetryClassifierPriority::modeled_as_retryable_classifier(),
        )
    }
}

/// Which service a call went to (for messages).
#[derive(Clone, Copy, Debug)]
pub enum Service {
    /// AWS Private CA.
    Pca,
    /// DynamoDB.
    Ddb,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Pca => "AWS Private CA",
            Service::Ddb => "DynamoDB",
        }
    }
}

/// The error code of a service error (`ResourceNotFoundException`…), if it is one.
pub fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Maps an SDK error to one line: unreachable endpoints are named, service errors keep their code.
pub fn map_sdk_error<E, R>(
    clients: &AwsClients,
    service: Service,
    op: &str,
    e: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    let endpoint = match service {
        Service::Pca => &clients.pca_endpoint,
        Service::Ddb => &clients.ddb_endpoint,
    };
    match &e {
        SdkError::DispatchFailure(df) => Error::Aws(format!(
            "cannot reach the {} endpoint {endpoint}: {}",
            service.name(),
            root_cause(&e).unwrap_or_else(|| {
                if df.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                }
            })
        )),
        SdkError::TimeoutError(_) => Error::Aws(format!(
            "cannot reach the {} endpoint {endpoint}: {op} timed out",
            service.name()
        )),
        SdkError::ResponseError(_) => Error::Aws(format!(
            "{} {op}: unreadable response from {endpoint}: {}",
            service.name(),
            root_cause(&e).unwrap_or_default()
        )),
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("UnknownError");
            let msg = err.message().unwrap_or("").replace(['\n', '\r'], " ");
            Error::Aws(format!(
                "{} {op} failed: {code}{}{}",
                service.name(),
                if msg.is_empty() { "" } else { ": " },
                msg
            ))
        }
        _ => Error::Aws(format!(
            "{} {op} failed: {}",
            service.name(),
            root_cause(&e).unwrap_or_else(|| "request could not be built".into())
        )),
    }
}

/// The innermost error message in a source chain, one line.
fn root_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string().replace(['\n', '\r'], " "))
}
