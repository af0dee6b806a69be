//! Client-side request shaping for AWS Private CA: one token bucket per rate-limited operation
//! (IssueCertificate, GetCertificate, RevokeCertificate — AWS's per-account quotas, REFERENCE §3),
//! with additive-increase / multiplicative-decrease when the service throttles anyway.
//!
//! Every AWS command installs it (`provision` for one device and `--manifest` at `--issue-tps` /
//! `--get-tps`, the other commands at AWS's default quotas), so one device is paced like a batch.
//!
//! How it plugs in: [`Shaper::install`] wraps the ACM PCA client's HTTP client, so *every attempt*
//! of a shaped operation — first tries, the SDK's retries and the `certificate_issued` waiter's
//! polls alike — waits for its slot before it is sent (the operation is read from the
//! `X-Amz-Target` header). An interceptor watches the responses: a `ThrottlingException` cuts that
//! operation's rate to 70 % (never below 10 % of the quota); each success adds back 2 % of the
//! quota. The throttled call itself is retried within the retry budget ([`crate::pca::aws`]), so
//! throttling never reaches the user unless it outlasts the budget.
//!
//! Why not the SDK's *adaptive* retry mode alone: its client rate limiter is per retry partition
//! (one rate for the whole ACM PCA client), so throttled IssueCertificate calls would also slow
//! GetCertificate, whose quota is three times higher, and it only starts limiting after the first
//! throttle. Per-operation buckets pace at the quota from the first request. The limits are per
//! process: several processes sharing one account should split `--issue-tps`; the AIMD feedback
//! keeps them within the quota if they don't.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_acmpca::config::{
    ConfigBag, HttpClient, Intercept, RuntimeComponents, SharedHttpClient,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};

use crate::error::{Error, Result};

/// AWS's default quotas (per account and region): IssueCertificate.
pub const DEFAULT_ISSUE_TPS: f64 = 25.0;
/// GetCertificate.
pub const DEFAULT_GET_TPS: f64 = 75.0;
/// RevokeCertificate.
pub const DEFAULT_REVOKE_TPS: f64 = 20.0;

/// The configured rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// IssueCertificate requests per second.
    pub issue_tps: f64,
    /// GetCertificate requests per second.
    pub get_tps: f64,
    /// RevokeCertificate requests per second.
    pub revoke_tps: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            issue_tps: DEFAULT_ISSUE_TPS,
            get_tps: DEFAULT_GET_TPS,
            revoke_tps: DEFAULT_REVOKE_TPS,
        }
    }
}

impl RateLimits {
    /// Checks that every rate is a positive finite number.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("--issue-tps", self.issue_tps),
            ("--get-tps", self.get_tps),
            ("revoke rate", self.revoke_tps),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 10_000.0) {
                return Err(Error::input(format!(
                    "{name} must be a number of requests per second in (0, 10000], got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// A pacing token bucket (GCRA): `reserve` hands out send times `1/rate` apart, allowing a burst
/// of `burst` back-to-back requests after an idle period.
#[derive(Debug)]
struct Bucket {
    target: f64,
    rate: f64,
    burst: f64,
    /// Theoretical arrival time of the next request.
    tat: Option<Instant>,
    throttled: u64,
}

impl Bucket {
    fn new(target: f64) -> Self {
        Bucket {
            target,
            rate: target,
            burst: 1.0,
            tat: None,
            throttled: 0,
        }
    }

    fn reserve(&mut self, now: Instant) -> Duration {
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let slack = interval.mul_f64((self.burst - 1.0).max(0.0));
        let tat = match self.tat {
            Some(t) if t > now => t,
            _ => now,
        };
        let send_at = if tat > now + slack { tat - slack } else { now };
        self.tat = Some(tat + interval);
        send_at.saturating_duration_since(now)
    }

    fn on_throttle(&mut self) {
        self.throttled += 1;
        self.rate = (self.rate * 0.7).max(self.target * 0.1);
    }

    fn on_success(&mut self) {
        self.rate = (self.rate + self.target * 0.02).min(self.target);
    }
}

/// The shared shaping state (cheap to clone: an `Arc`).
#[derive(Clone, Debug)]
pub struct Shaper {
    buckets: Arc<Mutex<HashMap<&'static str, Bucket>>>,
}

/// What the shaper saw (for the run summary).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ShaperStats {
    /// ThrottlingException answers per operation (each was retried by the SDK).
    pub throttled: HashMap<String, u64>,
}

fn operation_of(target: &str) -> Option<&'static str> {
    // awsJson1_1: `X-Amz-Target: ACMPrivateCA.IssueCertificate`
    match target.rsplit('.').next()? {
        "IssueCertificate" => Some("IssueCertificate"),
        "GetCertificate" => Some("GetCertificate"),
        "RevokeCertificate" => Some("RevokeCertificate"),
        _ => None,
    }
}

impl Shaper {
    /// Buckets at `limits`.
    pub fn new(limits: RateLimits) -> Result<Self> {
        limits.validate()?;
        Ok(Self::from_valid(limits))
    }

    /// Buckets at AWS's default quotas (what commands without rate flags use).
    pub fn at_default_quotas() -> Self {
        Self::from_valid(RateLimits::default())
    }

    fn from_valid(limits: RateLimits) -> Self {
        let mut m = HashMap::new();
        m.insert("IssueCertificate", Bucket::new(limits.issue_tps));
        m.insert("GetCertificate", Bucket::new(limits.get_tps));
        m.insert("RevokeCertificate", Bucket::new(limits.revoke_tps));
        Shaper {
            buckets: Arc::new(Mutex::new(m)),
        }
    }

    fn with<R>(&self, op: &str, f: impl FnOnce(&mut Bucket) -> R) -> Option<R> {
        let mut g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        g.get_mut(op).map(f)
    }

    /// How long a request of `op` must wait for its slot (reserves it).
    pub fn reserve(&self, op: &str) -> Duration {
        self.with(op, |b| b.reserve(Instant::now()))
            .unwrap_or_default()
    }

    /// Throttling counts so far.
    pub fn stats(&self) -> ShaperStats {
        let g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        ShaperStats {
            throttled: g
                .iter()
                .filter(|(_, b)| b.throttled > 0)
                .map(|(k, b)| (k.to_string(), b.throttled))
                .collect(),
        }
    }

    /// Installs the shaping on an ACM PCA client configuration: wraps `inner` (the HTTP client
    /// the configuration would use) and adds the feedback interceptor.
    pub fn install(
        &self,
        builder: aws_sdk_acmpca::config::Builder,
        inner: Option<SharedHttpClient>,
    ) -> Result<aws_sdk_acmpca::config::Builder> {
        let inner = inner.or_else(default_http_client).ok_or_else(|| {
            Error::aws(
                "internal: no default HTTP client to shape (AWS SDK built without its default HTTPS client?)"
                    ,
            )
        })?;
        Ok(builder
            .http_client(ShapedClient {
                inner,
                shaper: self.clone(),
            })
            .interceptor(Feedback(self.clone())))
    }
}

/// The HTTP client the SDK would install by default (its own default plugin, latest behavior).
pub(crate) fn default_http_client() -> Option<SharedHttpClient> {
    use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
    let plugin = aws_smithy_runtime::client::defaults::default_http_client_plugin_v2(
        BehaviorVersion::latest(),
    )?;
    let base = RuntimeComponentsBuilder::new("hsm-demo shaped client");
    plugin.runtime_components(&base).http_client()
}

#[derive(Debug)]
struct ShapedClient {
    inner: SharedHttpClient,
    shaper: Shaper,
}

impl HttpClient for ShapedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ShapedConnector {
            inner: self.inner.http_connector(settings, components),
            shaper: self.shaper.clone(),
        })
    }
}

#[derive(Debug)]
struct ShapedConnector {
    inner: SharedHttpConnector,
    shaper: Shaper,
}

impl HttpConnector for ShapedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let delay = request
            .headers()
            .get("x-amz-target")
            .and_then(operation_of)
            .map(|op| self.shaper.reserve(op))
            .unwrap_or_default();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            inner.call(request).await
        })
    }
}

/// Feeds throttling answers and successes back into the buckets.
#[derive(Debug)]
struct Feedback(Shaper);

impl Intercept for Feedback {
    fn name(&self) -> &'static str {
        "hsm-demo rate-limit feedback"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(op) = cfg.load::<Metadata>().map(|m| m.name().to_string()) else {
            return Ok(());
        };
        let resp = ctx.response();
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            self.0.with(&op, Bucket::on_success);
            return Ok(());
        }
        let header = resp.headers().get("x-amzn-errortype").unwrap_or_default();
        let body = resp.body().bytes().unwrap_or_default();
        let throttled = header.starts_with("ThrottlingException")
            || (body.len() < 64 * 1024
                && std::str::from_utf8(body).is_ok_and(|b| b.contains("ThrottlingException")));
        if throttled {
            tracing::info!(operation = %op, "throttled by the service: slowing down");
            self.0.with(&op, Bucket::on_throttle);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paces_at_the_rate() {
        let mut b = Bucket::new(25.0);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..5).map(|_| b.reserve(t0)).collect();
        assert_eq!(delays[0], Duration::ZERO);
        for (i, d) in delays.iter().enumerate() {
            let want = Duration::from_millis(40 * i as u64);
            assert!(d.abs_diff(want) < Duration::from_millis(1), "{i}: {d:?}");
        }
        // After an idle second the schedule restarts at "now".
        assert_eq!(b.reserve(t0 + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn throttle_slows_down_and_success_recovers() {
        let mut b = Bucket::new(20.0);
        b.on_throttle();
        assert!((b.rate - 14.0).abs() < 1e-9);
        for _ in 0..100 {
            b.on_throttle();
        }
        assert!((b.rate - 2.0).abs() < 1e-9, "floor at 10 %");
        for _ in 0..1000 {
            b.on_success();
        }
        assert!((b.rate - 20.0).abs() < 1e-9, "back to the quota");
        assert_eq!(b.throttled, 101);
    }

    #[test]
    fn operations_from_target_header() {
        assert_eq!(
            operation_of("ACMPrivateCA.IssueCertificate"),
            Some("IssueCertificate")
        );
        assert_eq!(
            operation_of("ACMPrivateCA.GetCertificate"),
            Some("GetCertificate")
        );
        assert_eq!(
            operation_of("ACMPrivateCA.DescribeCertificateAuthority"),
            None
        );
        assert!(RateLimits {
            issue_tps: 0.0,
            ..RateLimits::default()
        }
        .validate()
        .is_err());
    }
}
