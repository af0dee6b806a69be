//! AWS client set-up from the standard AWS configuration, and SDK error mapping.
//!
//! Configuration comes from the usual places (aws-config's default chain): `AWS_REGION` /
//! `AWS_DEFAULT_REGION` or the profile's region, `AWS_PROFILE`, the credential chain (env,
//! profile, SSO, web identity, IMDS…), `AWS_ENDPOINT_URL` and the service-specific
//! `AWS_ENDPOINT_URL_ACM_PCA` / `AWS_ENDPOINT_URL_DYNAMODB`. Nothing here runs for HSM-only
//! commands: the CLI creates the tokio runtime and calls [`AwsClients::load`] only inside `pca` and
//! `provision`.
//!
//! Retries — what the SDK's *standard* strategy really does, and why it is not used as is. For
//! attempt n (1-based) it sleeps `U[0,1) × min(initial × 2^(n-1), max)` ("full jitter"): with
//! 100 ms / 5 s and 8 attempts the seven waits are drawn below 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 and
//! 5 s — 5.7 s on average, often under one second in all. Every retry also takes tokens from a
//! per-process retry quota (500 tokens; 5 per throttled retry, 10 per timeout, refunded only by
//! successes), so a batch that is throttled or stalled for a while stops retrying altogether (50
//! timeouts empty it). An attempt count is the right bound for a 5xx, not for a throttle: how long
//! AWS throttles depends on the account's other callers, not on us.
//!
//! So [`RetryBudget`] (an interceptor) decides before the strategy does, per call: throttling
//! errors (every code the SDK classifies as throttling: `ThrottlingException`,
//! `ProvisionedThroughputExceededException`…) and answers that do not come in time (attempt
//! timeouts, stalled transfers, responses cut short) are retried until
//! [`AwsOptions::retry_budget`] has passed since the call began (`--retry-budget-secs`, default
//! 60 s), with capped exponential backoff (100 ms doubling to 5 s) and full jitter; 5xx, refused
//! or reset connections and other retryable errors get [`AwsOptions::max_attempts`] attempts. It hands the standard strategy a one-attempt-more (or
//! no-more) retry configuration whose backoff is the cap it chose, and the retry quota is
//! disabled (an unlimited token bucket). A call still throttled, or still unanswered, when the
//! budget is spent fails with a message that says so; a line on stderr reports any call that has
//! waited for more than a few seconds. ACM PCA's `LimitExceededException` — which the SDK lists
//! among throttling codes — is a quota on the *number* of resources (CAs, certificates), not a
//! rate: a classifier forbids retrying it.
//!
//! Every ACM PCA request is also paced by the client-side limiter ([`crate::pca::ratelimit`]),
//! for one device as for a batch.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_acmpca::config::{
    ConfigBag, HttpClient, Intercept, RuntimeComponents, SharedHttpClient,
};
use aws_sdk_acmpca::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_acmpca::operation::RequestId;
use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextMut, InterceptorContext,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, RetryReason,
};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use aws_smithy_types::retry::ErrorKind;

use crate::error::{Error, Result};

/// Default of [`AwsOptions::retry_budget`].
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(60);
/// Default of [`AwsOptions::attempt_timeout`].
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default of [`AwsOptions::stall_grace`] (the SDK's own default for its latest behavior version).
pub const DEFAULT_STALL_GRACE: Duration = Duration::from_secs(5);
/// A call that has waited this long for an answer (or for retries) gets a line on stderr.
const NOTICE_AFTER: Duration = Duration::from_secs(5);

/// Knobs for the AWS clients.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Attempts per call (first try + retries) for 5xx and other retryable service errors.
    pub max_attempts: u32,
    /// How long one call keeps retrying throttling errors and slow responses (timeouts, stalled
    /// transfers, dropped connections), counted from the call's first attempt.
    pub retry_budget: Duration,
    /// First backoff cap; doubles on every retry of the same kind, up to `max_backoff` (full
    /// jitter below the cap).
    pub initial_backoff: Duration,
    /// Cap of the backoff.
    pub max_backoff: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Grace period of the SDK's stalled-stream protection: a transfer that moves no byte for this
    /// long is a stall (retried within `retry_budget`, like a throttle).
    pub stall_grace: Duration,
    /// Client-side rate limiting of ACM PCA operations, see [`crate::pca::ratelimit`]; `None` =
    /// unshaped. The default paces at AWS's default quotas.
    pub shaper: Option<crate::pca::ratelimit::Shaper>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            max_attempts: 8,
            retry_budget: DEFAULT_RETRY_BUDGET,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            stall_grace: DEFAULT_STALL_GRACE,
            shaper: Some(crate::pca::ratelimit::Shaper::at_default_quotas()),
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
    /// Fails with one line when no region is configured or an endpoint URL is malformed.
    pub async fn load(opts: &AwsOptions) -> Result<Self> {
        check_endpoint_env()?;
        check_profile_env()?;
        // The budget below decides every retry; the strategy's own attempt limit only backs it.
        let retry = RetryConfig::standard()
            .with_max_attempts(opts.max_attempts.max(1))
            .with_initial_backoff(opts.initial_backoff)
            .with_max_backoff(opts.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(opts.connect_timeout)
            .operation_attempt_timeout(opts.attempt_timeout)
            .build();
        let stalls = StalledStreamProtectionConfig::enabled()
            .grace_period(opts.stall_grace)
            .build();
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts)
            .stalled_stream_protection(stalls)
            .load()
            .await;
        let Some(region) = conf.region().map(|r| r.to_string()) else {
            return Err(Error::aws(
                "no AWS region configured: set AWS_REGION (or a region in the AWS_PROFILE profile)",
            ));
        };
        if conf.credentials_provider().is_none() {
            return Err(Error::aws(
                "no AWS credentials provider: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ));
        }
        if let Some(url) = conf.endpoint_url() {
            check_endpoint_url("the configured endpoint_url", url)?;
        }
        let pca_endpoint = endpoint_for("ACM_PCA", "acm-pca", &region, conf.endpoint_url());
        let ddb_endpoint = endpoint_for("DYNAMODB", "dynamodb", &region, conf.endpoint_url());
        let http = conf
            .http_client()
            .or_else(crate::pca::ratelimit::default_http_client)
            .ok_or_else(|| {
                Error::aws("internal: no default HTTP client (AWS SDK built without one?)")
            })?;
        let watched = |endpoint: &str, enforce_timeout: bool| {
            SharedHttpClient::new(WatchedClient {
                inner: http.clone(),
                endpoint: endpoint.to_string(),
                attempt_timeout: opts.attempt_timeout,
                enforce_timeout,
            })
        };
        let budget = RetryBudget::new(opts);
        // ACM PCA requests wait for their slot inside the HTTP client (the shaper): that wait is
        // neither part of the attempt timeout (enforced below the shaper, by `WatchedConnector`)
        // nor an upload stall (request bodies are small and sent whole; the SDK's upload check
        // would see the wait as a body nobody reads). Answers keep the stalled-stream check.
        let mut pca_builder = aws_sdk_acmpca::config::Builder::from(&conf)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .disable_operation_attempt_timeout()
                    .build(),
            )
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .upload_enabled(false)
                    .grace_period(opts.stall_grace)
                    .build(),
            )
            .retry_classifier(NoRetryOnLimitExceeded)
            .retry_partition(unlimited_partition("hsm-demo-acmpca"))
            .http_client(watched(&pca_endpoint, true))
            .interceptor(budget.for_endpoint(&pca_endpoint))
            .interceptor(RetryLogger)
            .interceptor(crate::pca::aws_log::CallLogger);
        if let Some(shaper) = &opts.shaper {
            pca_builder = shaper.install(pca_builder, Some(watched(&pca_endpoint, true)))?;
        }
        let pca_conf = pca_builder.build();
        let ddb_conf = aws_sdk_dynamodb::config::Builder::from(&conf)
            .retry_partition(unlimited_partition("hsm-demo-dynamodb"))
            .http_client(watched(&ddb_endpoint, false))
            .interceptor(budget.for_endpoint(&ddb_endpoint))
            .interceptor(RetryLogger)
            .interceptor(crate::pca::aws_log::CallLogger)
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

/// A retry partition without the SDK's retry quota: [`RetryBudget`] bounds the retries.
fn unlimited_partition(name: &'static str) -> RetryPartition {
    RetryPartition::custom(name)
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// The endpoint variables must hold http(s) URLs: the SDK ignores a malformed one with a log
/// line and talks to the real AWS endpoint instead.
fn check_endpoint_env() -> Result<()> {
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ACM_PCA",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ] {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => check_endpoint_url(var, &v)?,
            _ => {}
        }
    }
    Ok(())
}

/// `AWS_PROFILE` must name a profile of the shared config or credentials file: otherwise the
/// SDK silently falls through to the next provider, and the error then blames the instance
/// metadata service instead of the typo.
fn check_profile_env() -> Result<()> {
    let Some(profile) = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let config = file("AWS_CONFIG_FILE", "config");
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let mut known = Vec::new();
    for (path, is_config) in [(&config, true), (&credentials, false)] {
        let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) else {
            continue;
        };
        known.extend(profile_names(&text, is_config));
    }
    if known.contains(&profile) {
        return Ok(());
    }
    let shown = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("-".to_string(), |p| p.display().to_string())
    };
    Err(Error::aws(format!(
        "AWS_PROFILE {} is not defined in {} or {} (profiles there: {})",
        printable(&profile),
        shown(&config),
        shown(&credentials),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}

/// Profile names of a shared config file (`[default]`, `[profile NAME]`) or credentials file
/// (`[NAME]`).
fn profile_names(text: &str, is_config: bool) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
        .filter_map(|h| {
            let h = h.trim();
            if !is_config {
                return Some(h.to_string());
            }
            match h.strip_prefix("profile ") {
                Some(name) => Some(name.trim().to_string()),
                None if h == "default" => Some(h.to_string()),
                None => None,
            }
        })
        .collect()
}

/// One line naming `what` and its value when `url` is not `http(s)://host[:port][/path]`.
pub fn check_endpoint_url(what: &str, url: &str) -> Result<()> {
    let ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|authority| {
            let host = authority
                .rsplit_once(':')
                .filter(|(_, port)| port.parse::<u16>().is_ok())
                .map_or(authority, |(h, _)| h);
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::aws(format!(
            "{what}={} is not an http(s) URL (expected e.g. http://127.0.0.1:4566 or https://acm-pca.us-east-1.amazonaws.com)",
            crate::pca::aws::printable(url)
        )))
    }
}

/// `s` quoted, control characters escaped (for messages echoing outside input).
pub fn printable(s: &str) -> String {
    format!("{:?}", s.chars().take(200).collect::<String>())
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

/// What one call has spent so far (kept in the call's config bag).
#[derive(Clone, Debug)]
struct CallClock {
    start: Instant,
    /// Retries of throttling errors and slow responses.
    slow: u32,
    /// Retries of 5xx and other retryable errors.
    other: u32,
    /// Whether this call already printed its "waiting" line.
    noticed: bool,
}

impl Storable for CallClock {
    type Storer = StoreReplace<Self>;
}

/// The retry rules of [`RetryBudget`], free of the SDK (unit-tested).
#[derive(Clone, Copy, Debug)]
pub struct RetryRules {
    /// Attempts for 5xx and other retryable errors.
    pub max_attempts: u32,
    /// Time budget for throttling errors and slow responses.
    pub budget: Duration,
    /// First backoff cap.
    pub initial: Duration,
    /// Largest backoff cap.
    pub max: Duration,
}

/// Which rule a retryable error falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Throttled: wait within the time budget.
    Throttled,
    /// No (complete) answer in time: timeout, stalled transfer, dropped connection.
    Slow,
    /// 5xx and other retryable errors: a number of attempts.
    Counted,
}

impl RetryClass {
    /// Throttling codes and no-timely-answer failures (attempt timeout, connect or stalled-stream
    /// timeout, a response cut short) wait within the budget; a refused or reset connection, a
    /// 5xx, anything else retryable counts attempts.
    fn of(kind: ErrorKind, ctx: &InterceptorContext) -> Self {
        let slow = || {
            ctx.output_or_error()
                .and_then(std::result::Result::err)
                .is_some_and(|e| {
                    e.is_timeout_error()
                        || e.is_response_error()
                        || e.as_connector_error().is_some_and(|c| c.is_timeout())
                })
        };
        match kind {
            ErrorKind::ThrottlingError => RetryClass::Throttled,
            ErrorKind::TransientError if slow() => RetryClass::Slow,
            _ => RetryClass::Counted,
        }
    }
}

/// Whether the attempt failed while its answer was being read: the SDK's stalled-stream
/// protection fired on the response body (no byte for the grace period), or the body was cut
/// short — an `SdkError::ResponseError`, as opposed to no answer at all.
fn answer_stalled(ctx: &InterceptorContext) -> bool {
    ctx.output_or_error()
        .and_then(std::result::Result::err)
        .is_some_and(|e| e.is_response_error())
}

impl RetryRules {
    /// The backoff cap before the next attempt, or `None` when this call must give up.
    /// `slow`/`other` are the retries of each class so far; `elapsed` the time since the call
    /// began.
    pub fn next(
        &self,
        class: RetryClass,
        slow: u32,
        other: u32,
        elapsed: Duration,
    ) -> Option<Duration> {
        let (n, left) = match class {
            RetryClass::Throttled | RetryClass::Slow => {
                if elapsed >= self.budget {
                    return None;
                }
                (slow, self.budget - elapsed)
            }
            RetryClass::Counted => {
                if other + 1 >= self.max_attempts {
                    return None;
                }
                (other, self.max)
            }
        };
        let cap = self
            .initial
            .checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
            .min(left);
        Some(cap.max(Duration::from_millis(1)))
    }
}

/// Decides each retry before the SDK's standard strategy does (see the module documentation):
/// it stores, in the call's config bag, a retry configuration allowing exactly one more attempt
/// after a backoff of at most the chosen cap, or none.
#[derive(Clone, Debug)]
struct RetryBudget {
    rules: RetryRules,
    endpoint: String,
}

impl RetryBudget {
    fn new(o: &AwsOptions) -> Self {
        RetryBudget {
            rules: RetryRules {
                max_attempts: o.max_attempts.max(1),
                budget: o.retry_budget,
                initial: o.initial_backoff,
                max: o.max_backoff,
            },
            endpoint: String::new(),
        }
    }

    fn for_endpoint(&self, endpoint: &str) -> Self {
        RetryBudget {
            endpoint: endpoint.to_string(),
            ..self.clone()
        }
    }
}

impl Intercept for RetryBudget {
    fn name(&self) -> &'static str {
        "hsm-demo retry budget"
    }

    fn modify_before_retry_loop(
        &self,
        _ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallClock {
            start: Instant::now(),
            slow: 0,
            other: 0,
            noticed: false,
        });
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let action = run_classifiers_on_ctx(rc.retry_classifiers(), ctx.inner());
        let RetryAction::RetryIndicated(RetryReason::RetryableError { kind, .. }) = action else {
            return Ok(()); // the strategy does not retry this one anyway
        };
        let Some(mut clock) = cfg.load::<CallClock>().cloned() else {
            return Ok(());
        };
        let attempts = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let class = RetryClass::of(kind, ctx.inner());
        let elapsed = clock.start.elapsed();
        let next = self.rules.next(class, clock.slow, clock.other, elapsed);
        match class {
            RetryClass::Counted => clock.other += 1,
            _ => clock.slow += 1,
        }
        let (svc, op) = cfg
            .load::<Metadata>()
            .map_or(("?".to_string(), "?".to_string()), |m| {
                (m.service().to_string(), m.name().to_string())
            });
        match class {
            RetryClass::Throttled => {
                tracing::info!(service = %svc, operation = %op, "throttled: will retry within the retry budget");
            }
            RetryClass::Slow if answer_stalled(ctx.inner()) => {
                tracing::info!(service = %svc, operation = %op, "stalled: will retry within the retry budget");
            }
            RetryClass::Slow => {
                tracing::info!(service = %svc, operation = %op, "no timely answer: will retry within the retry budget");
            }
            RetryClass::Counted => {}
        }
        let retry = match next {
            Some(cap) => {
                if class != RetryClass::Counted && elapsed >= NOTICE_AFTER && !clock.noticed {
                    clock.noticed = true;
                    notice(&format!(
                        "waiting: {svc} {op} at {}: {} for {} s; retrying for up to {} s in all (--retry-budget-secs)",
                        self.endpoint,
                        match class {
                            RetryClass::Throttled => "throttled",
                            _ if answer_stalled(ctx.inner()) => "stalled",
                            _ => "no timely answer",
                        },
                        elapsed.as_secs(),
                        self.rules.budget.as_secs()
                    ));
                }
                RetryConfig::standard()
                    .with_max_attempts(attempts.saturating_add(1))
                    .with_initial_backoff(cap)
                    .with_max_backoff(cap)
            }
            None => {
                tracing::info!(service = %svc, operation = %op, attempts, ?class, "giving up: retry budget spent");
                RetryConfig::standard().with_max_attempts(attempts)
            }
        };
        cfg.interceptor_state().store_put(clock);
        cfg.interceptor_state().store_put(retry);
        Ok(())
    }
}

/// Prints a "waiting" line on stderr, at most one every 10 s per process.
fn notice(line: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 10_000;
    let last = LAST.load(Ordering::Relaxed);
    if (last == 0 || now >= last + 10_000)
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        eprintln!("{line}");
    }
}

/// Wraps the HTTP client to print a line on stderr when an attempt has had no answer for a few
/// seconds (an endpoint that accepts connections and never answers waits for the attempt timeout),
/// and — with `enforce_timeout` — to end an attempt that has had no answer within the attempt
/// timeout ([`AttemptTimedOut`], a connector timeout: retried within the retry budget). The SDK's
/// own attempt timeout would also count the time a request waits in the shaper before it.
#[derive(Debug)]
struct WatchedClient {
    inner: SharedHttpClient,
    endpoint: String,
    attempt_timeout: Duration,
    enforce_timeout: bool,
}

impl HttpClient for WatchedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(WatchedConnector {
            inner: self.inner.http_connector(settings, components),
            endpoint: self.endpoint.clone(),
            attempt_timeout: self.attempt_timeout,
            enforce_timeout: self.enforce_timeout,
        })
    }
}

#[derive(Debug)]
struct WatchedConnector {
    inner: SharedHttpConnector,
    endpoint: String,
    attempt_timeout: Duration,
    enforce_timeout: bool,
}

/// An attempt had no answer within the attempt timeout (`--attempt-timeout-secs`).
#[derive(Debug)]
pub struct AttemptTimedOut(pub Duration);

impl std::fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no answer within the attempt timeout of {} s (--attempt-timeout-secs)",
            self.0.as_secs()
        )
    }
}

impl StdError for AttemptTimedOut {}

impl HttpConnector for WatchedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let op = request
            .headers()
            .get("x-amz-target")
            .unwrap_or("request")
            .to_string();
        let line = format!(
            "waiting: no answer from {} to {op} for {} s (attempt timeout {} s)",
            self.endpoint,
            NOTICE_AFTER.as_secs(),
            self.attempt_timeout.as_secs()
        );
        let call = self.inner.call(request);
        let watched = async move {
            let t0 = std::time::Instant::now();
            tokio::pin!(call);
            let r = tokio::select! {
                r = &mut call => r,
                () = tokio::time::sleep(NOTICE_AFTER) => {
                    notice(&line);
                    call.await
                }
            };
            // The endpoint's own latency (connection, request, response head), without the
            // time the request waited for its slot in the shaper.
            let http_ms = t0.elapsed().as_millis() as u64;
            tracing::debug!(operation = %op, http_ms, "AWS HTTP exchange");
            r
        };
        let limit = self.enforce_timeout.then_some(self.attempt_timeout);
        HttpConnectorFuture::new(async move {
            let Some(limit) = limit else {
                return watched.await;
            };
            match tokio::time::timeout(limit, watched).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::timeout(Box::new(AttemptTimedOut(limit)))),
            }
        })
    }
}

/// Logs every retry (attempt ≥ 2) at INFO with the operation: visible with `-v`, and how tests
/// see that throttling / 5xx / dropped connections were retried rather than surfaced.
#[derive(Debug)]
struct RetryLogger;

impl Intercept for RetryLogger {
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
        SdkError::DispatchFailure(_) if credentials_error(&e).is_some() => Error::aws(format!(
            "no AWS credentials for {} {op}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({})",
            service.name(),
            credentials_error(&e).unwrap_or_default()
        )),
        SdkError::DispatchFailure(df) if df.is_timeout() => Error::aws(format!(
            "{} {op}: no timely answer from {endpoint} ({}); still none when the retry budget ran out (--retry-budget-secs)",
            service.name(),
            root_cause(&e).unwrap_or_else(|| "timed out".into())
        )),
        SdkError::DispatchFailure(_) => Error::aws(format!(
            "cannot reach the {} endpoint {endpoint}: {}",
            service.name(),
            root_cause(&e).unwrap_or_else(|| "connection failed".into())
        )),
        SdkError::TimeoutError(_) => Error::aws(format!(
            "{} {op}: no answer from {endpoint} within the attempt timeout; still none when the retry budget ran out (--attempt-timeout-secs, --retry-budget-secs)",
            service.name()
        )),
        SdkError::ResponseError(_) => Error::aws(format!(
            "{} {op}: the AWS endpoint {endpoint} stalled: its answer began, then stopped arriving or was cut short; still so when the retry budget ran out (--stall-grace-secs, --retry-budget-secs): {}",
            service.name(),
            root_cause(&e).unwrap_or_default()
        )),
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("UnknownError");
            if let Some(refused) =
                crate::pca::aws_auth::refusal(&format!("{} {op}", service.name()), &e)
            {
                return refused;
            }
            let msg = err.message().unwrap_or("").replace(['\n', '\r'], " ");
            let throttled = is_throttling_code(code);
            Error::Aws {
                message: format!(
                    "{} {op} failed: {code}{}{}{}",
                    service.name(),
                    if msg.is_empty() { "" } else { ": " },
                    msg,
                    if throttled {
                        " (still throttled when the retry budget ran out: raise --retry-budget-secs, or lower the request rate)"
                    } else {
                        ""
                    }
                ),
                code: err.code().map(str::to_string),
                request_id: err.meta().request_id().map(str::to_string),
            }
        }
        _ => Error::aws(format!(
            "{} {op} failed: {}",
            service.name(),
            root_cause(&e).unwrap_or_else(|| "request could not be built".into())
        )),
    }
}

/// Error codes AWS uses for throttling (the SDK's list, without `LimitExceededException`: a
/// resource quota for ACM PCA).
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "RequestThrottled"
            | "SlowDown"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
    )
}

/// The SDK's credentials error in a source chain (no credentials found, provider failed), one line.
fn credentials_error(e: &(dyn StdError + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(ce) = c.downcast_ref::<CredentialsError>() {
            let what = match ce {
                CredentialsError::CredentialsNotLoaded(_) => {
                    "the SDK's credential chain found none"
                }
                CredentialsError::ProviderTimedOut(_) => "the credentials provider timed out",
                CredentialsError::InvalidConfiguration(_) => {
                    "the credentials configuration is invalid"
                }
                _ => "the credentials provider failed",
            };
            let detail = root_cause(c).unwrap_or_else(|| c.to_string());
            return Some(format!("{what}: {}", detail.replace(['\n', '\r'], " ")));
        }
        cur = c.source();
    }
    None
}

/// The innermost error message in a source chain, one line.
fn root_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string().replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn service_errors_keep_their_code_and_request_id_with_the_same_message() {
        use aws_sdk_acmpca::operation::issue_certificate::IssueCertificateError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let pca = aws_sdk_acmpca::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_acmpca::config::Region::new("us-east-1"))
            .build();
        let ddb = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let clients = AwsClients {
            pca: aws_sdk_acmpca::Client::from_conf(pca),
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb),
            region: "us-east-1".into(),
            pca_endpoint: "http://127.0.0.1:1".into(),
            ddb_endpoint: "http://127.0.0.1:1".into(),
        };
        let meta = ErrorMetadata::builder()
            .code("MalformedCSRException")
            .message("bad\nCSR")
            .custom("aws_request_id", "req-42")
            .build();
        let raw = Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty());
        let e = SdkError::service_error(IssueCertificateError::generic(meta), raw);
        let mapped = map_sdk_error(&clients, Service::Pca, "IssueCertificate", e);
        assert_eq!(
            mapped.to_string(),
            "AWS Private CA IssueCertificate failed: MalformedCSRException: bad CSR"
        );
        assert_eq!(mapped.aws_code(), Some("MalformedCSRException"));
        let Error::Aws { request_id, .. } = &mapped else {
            panic!("not an AWS error: {mapped:?}");
        };
        assert_eq!(request_id.as_deref(), Some("req-42"));
        // Rewording keeps the code, so decisions taken on it survive.
        let reworded = mapped.reword_aws(|m| format!("{m} (terminal)"));
        assert!(reworded.to_string().ends_with("bad CSR (terminal)"));
        assert_eq!(reworded.aws_code(), Some("MalformedCSRException"));
    }

    fn rules() -> RetryRules {
        RetryRules {
            max_attempts: 3,
            budget: Duration::from_secs(60),
            initial: 100 * MS,
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn throttling_waits_double_up_to_the_cap_within_the_time_budget_not_an_attempt_count() {
        let r = rules();
        let caps: Vec<Duration> = (0..8)
            .map(|n| r.next(RetryClass::Throttled, n, 0, Duration::ZERO).unwrap())
            .collect();
        let want: Vec<Duration> = [100, 200, 400, 800, 1600, 3200, 5000, 5000]
            .iter()
            .map(|&m| m * MS)
            .collect();
        assert_eq!(caps, want);
        // Far more retries than max_attempts while the budget lasts, none once it is spent.
        assert!(r
            .next(RetryClass::Throttled, 40, 0, Duration::from_secs(59))
            .is_some());
        assert_eq!(
            r.next(RetryClass::Slow, 3, 0, Duration::from_secs(60)),
            None
        );
        // The last wait never reaches past the budget.
        let last = r.next(RetryClass::Slow, 9, 0, Duration::from_millis(59_700));
        assert_eq!(last, Some(300 * MS));
        // A huge retry count does not overflow.
        assert_eq!(
            r.next(RetryClass::Throttled, 400, 0, Duration::ZERO),
            Some(r.max)
        );
    }

    #[test]
    fn server_errors_count_attempts_separately() {
        let r = rules();
        assert_eq!(
            r.next(RetryClass::Counted, 50, 0, Duration::ZERO),
            Some(100 * MS)
        );
        assert_eq!(
            r.next(RetryClass::Counted, 0, 1, Duration::ZERO),
            Some(200 * MS)
        );
        assert_eq!(
            r.next(RetryClass::Counted, 0, 2, Duration::ZERO),
            None,
            "3 attempts in all"
        );
        // Attempts are not limited by time.
        assert!(r
            .next(RetryClass::Counted, 0, 0, Duration::from_secs(600))
            .is_some());
    }

    #[test]
    fn endpoint_urls_are_checked() {
        for ok in [
            "http://127.0.0.1:4566",
            "https://acm-pca.us-east-1.amazonaws.com",
            "http://localhost:4566/",
            "http://[::1]:4566",
        ] {
            assert!(check_endpoint_url("X", ok).is_ok(), "{ok}");
        }
        for bad in [
            "not a url",
            "ftp://h",
            "http://",
            "http://a b",
            "127.0.0.1:4566",
        ] {
            let e = check_endpoint_url("AWS_ENDPOINT_URL", bad)
                .unwrap_err()
                .one_line();
            assert!(
                e.starts_with(&format!("AWS_ENDPOINT_URL={bad:?} is not")),
                "{e}"
            );
        }
    }

    #[test]
    fn throttling_codes() {
        assert!(is_throttling_code("ThrottlingException"));
        assert!(is_throttling_code("ProvisionedThroughputExceededException"));
        assert!(!is_throttling_code("LimitExceededException"));
        assert!(!is_throttling_code("MalformedCSRException"));
    }
}
