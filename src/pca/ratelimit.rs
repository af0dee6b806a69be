//! Client-side request shaping for AWS Private CA: one token bucket per rate-limited operation
//! (IssueCertificate, GetCertificate, RevokeCertificate — AWS's per-account quotas),
//! paced at an adaptive rate ([`Aimd`]) that backs off when the service throttles.
//!
//! Every AWS command installs it (`provision` for one device and `--manifest` at `--issue-tps` /
//! `--get-tps`, the other commands at AWS's default quotas), so one device is paced like a batch.
//!
//! How it plugs in: [`Shaper::install`] wraps the ACM PCA client's HTTP client, so *every attempt*
//! of a shaped operation — first tries, the SDK's retries and the `certificate_issued` waiter's
//! polls alike — waits for its slot before it is sent (the operation is read from the
//! `X-Amz-Target` header). An interceptor watches the attempts: a throttle (as the SDK's retry
//! classifiers type it) cuts that operation's rate to 70 %, at most once per congestion event
//! (half a second) and never below 5 % of the ceiling; successes add back 5 % of the ceiling per
//! second, up to the ceiling (`--issue-tps`…). A cut also re-schedules the requests already
//! waiting for a slot, so it takes effect at once. The throttled call itself is retried within
//! the retry budget ([`crate::pca::aws`]), so throttling never reaches the user unless it
//! outlasts the budget.
//!
//! Several runners sharing one account (scale-out) share its quota through this feedback alone:
//! each starts at the ceiling, the throttles they get cut them, and because every runner adds the
//! same amount per second and cuts by the same factor they converge on equal shares that add up to
//! about the quota — no shared state, so it works across hosts (design §3.4).
//!
//! Why not the SDK's *adaptive* retry mode alone: its client rate limiter is per retry partition
//! (one rate for the whole ACM PCA client), so throttled IssueCertificate calls would also slow
//! GetCertificate, whose quota is three times higher, and it only starts limiting after the first
//! throttle. Per-operation buckets pace at the quota from the first request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_acmpca::config::{
    ConfigBag, HttpClient, Intercept, RuntimeComponents, SharedHttpClient,
};
use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::retries::classifiers::{RetryAction, RetryReason};
use aws_smithy_types::retry::ErrorKind;

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

/// Multiplicative decrease on a throttle (the SDKs' adaptive mode uses 0.7 too).
const DECREASE: f64 = 0.7;
/// Additive increase: this fraction of the ceiling per second of successes.
const INCREASE_PER_SEC: f64 = 0.05;
/// The rate never goes below this fraction of the ceiling.
const FLOOR: f64 = 0.05;
/// Throttles within this long of a decrease belong to the same congestion event (requests that
/// were already under way when the rate was cut): they do not cut it again.
const HOLD: Duration = Duration::from_millis(500);

/// The adaptive rate of one operation: additive increase, multiplicative decrease (AIMD) between
/// a floor and the ceiling (`--issue-tps`…). Every runner sharing an account runs its own; since
/// each adds the same amount per second and cuts by the same factor, N runners converge on equal
/// shares of what AWS grants, without any shared state (the argument is in design §3.4). Time is
/// passed in, so the controller is tested with an injected clock.
#[derive(Clone, Debug)]
pub struct Aimd {
    ceiling: f64,
    rate: f64,
    /// When the rate last changed (the additive increase accrues from here).
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl Aimd {
    /// Starts at the ceiling: one runner alone is never throttled and runs at its full rate.
    pub fn new(ceiling: f64) -> Self {
        Aimd {
            ceiling,
            rate: ceiling,
            last_update: None,
            last_decrease: None,
        }
    }

    /// The current rate (requests per second).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// A throttled answer at `now`; true when it cut the rate (the first of a congestion event).
    pub fn on_throttle(&mut self, now: Instant) -> bool {
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < HOLD)
        {
            return false;
        }
        self.rate = (self.rate * DECREASE).max(self.ceiling * FLOOR);
        self.last_decrease = Some(now);
        self.last_update = Some(now);
        true
    }

    /// A successful answer at `now`: the rate grows by `INCREASE_PER_SEC` of the ceiling per
    /// second since its last change, up to the ceiling.
    pub fn on_success(&mut self, now: Instant) {
        if let Some(t) = self.last_update {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            self.rate = (self.rate + self.ceiling * INCREASE_PER_SEC * dt).min(self.ceiling);
        }
        self.last_update = Some(now);
    }
}

/// A pacing token bucket (GCRA) at the AIMD rate: `reserve` hands out send times `1/rate` apart,
/// allowing a burst of `burst` back-to-back requests after an idle period.
#[derive(Debug)]
struct Bucket {
    aimd: Aimd,
    burst: f64,
    /// Theoretical arrival time of the next request.
    tat: Option<Instant>,
    /// Bumped when the rate is cut: requests waiting on a slot of an older epoch reserve again,
    /// so a cut takes effect at once instead of after the slots already handed out.
    epoch: u64,
    throttled: u64,
}

impl Bucket {
    fn new(target: f64) -> Self {
        Bucket {
            aimd: Aimd::new(target),
            burst: 1.0,
            tat: None,
            epoch: 0,
            throttled: 0,
        }
    }

    fn reserve(&mut self, now: Instant) -> (Duration, u64) {
        let interval = Duration::from_secs_f64(1.0 / self.aimd.rate());
        let slack = interval.mul_f64((self.burst - 1.0).max(0.0));
        let tat = match self.tat {
            Some(t) if t > now => t,
            _ => now,
        };
        let send_at = if tat > now + slack { tat - slack } else { now };
        self.tat = Some(tat + interval);
        (send_at.saturating_duration_since(now), self.epoch)
    }

    fn on_throttle(&mut self, now: Instant) {
        self.throttled += 1;
        if self.aimd.on_throttle(now) {
            self.epoch += 1;
            self.tat = Some(now + Duration::from_secs_f64(1.0 / self.aimd.rate()));
        }
    }

    fn on_success(&mut self, now: Instant) {
        self.aimd.on_success(now);
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

    /// How long a request of `op` must wait for its slot (reserves it), and the bucket's epoch:
    /// when [`Shaper::epoch`] has moved on by the end of the wait, the rate was cut meanwhile and
    /// the request reserves again.
    pub fn reserve(&self, op: &str) -> (Duration, u64) {
        self.with(op, |b| b.reserve(Instant::now()))
            .unwrap_or_default()
    }

    /// The epoch of `op`'s bucket (see [`Shaper::reserve`]).
    pub fn epoch(&self, op: &str) -> u64 {
        self.with(op, |b| b.epoch).unwrap_or_default()
    }

    /// The current rate of `op` (requests per second).
    pub fn rate(&self, op: &str) -> Option<f64> {
        self.with(op, |b| b.aimd.rate())
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
        let op = request.headers().get("x-amz-target").and_then(operation_of);
        let shaper = self.shaper.clone();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            if let Some(op) = op {
                loop {
                    let (delay, epoch) = shaper.reserve(op);
                    if delay.is_zero() {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if shaper.epoch(op) == epoch {
                        break;
                    }
                }
            }
            inner.call(request).await
        })
    }
}

/// Feeds throttling answers and successes back into the buckets. A throttle is what the SDK's
/// retry classifiers call one (`ErrorKind::ThrottlingError`: the modeled error code, never the
/// message); `LimitExceededException`, a resource quota, is not (its retry is forbidden).
#[derive(Debug)]
struct Feedback(Shaper);

impl Intercept for Feedback {
    fn name(&self) -> &'static str {
        "hsm-demo rate-limit feedback"
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(op) = cfg.load::<Metadata>().map(|m| m.name().to_string()) else {
            return Ok(());
        };
        let now = Instant::now();
        if ctx.response().is_some_and(|r| r.status().is_success()) {
            self.0.with(&op, |b| b.on_success(now));
            return Ok(());
        }
        let throttled = matches!(
            run_classifiers_on_ctx(rc.retry_classifiers(), ctx.inner()),
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            })
        );
        if throttled {
            tracing::info!(operation = %op, "throttled by the service: slowing down");
            self.0.with(&op, |b| b.on_throttle(now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bucket_paces_at_the_rate() {
        let mut b = Bucket::new(25.0);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..5).map(|_| b.reserve(t0).0).collect();
        assert_eq!(delays[0], Duration::ZERO);
        for (i, d) in delays.iter().enumerate() {
            let want = 40 * MS * i as u32;
            assert!(d.abs_diff(want) < MS, "{i}: {d:?}");
        }
        // After an idle second the schedule restarts at "now".
        assert_eq!(b.reserve(t0 + Duration::from_secs(2)).0, Duration::ZERO);
    }

    #[test]
    fn a_throttle_cuts_the_rate_once_per_congestion_event() {
        let t0 = Instant::now();
        let mut a = Aimd::new(20.0);
        assert!(a.on_throttle(t0));
        assert!((a.rate() - 14.0).abs() < 1e-9, "{}", a.rate());
        // The answers to requests already under way when it was cut: same event, no second cut.
        assert!(!a.on_throttle(t0 + 100 * MS));
        assert!(!a.on_throttle(t0 + 499 * MS));
        assert!((a.rate() - 14.0).abs() < 1e-9, "{}", a.rate());
        // Half a second later a throttle is news: cut again.
        assert!(a.on_throttle(t0 + 500 * MS));
        assert!((a.rate() - 9.8).abs() < 1e-9, "{}", a.rate());
        // Never below 5 % of the ceiling.
        for i in 2..100u32 {
            a.on_throttle(t0 + 500 * MS * i);
        }
        assert!((a.rate() - 1.0).abs() < 1e-9, "{}", a.rate());
    }

    #[test]
    fn successes_add_back_a_fixed_amount_per_second_up_to_the_ceiling() {
        let t0 = Instant::now();
        let mut a = Aimd::new(20.0);
        a.on_throttle(t0); // 14
                           // 5 % of the ceiling per second, however many successes carry it: 1 request/s per s.
        for i in 1..=10u32 {
            a.on_success(t0 + 100 * MS * i);
        }
        assert!((a.rate() - 15.0).abs() < 1e-9, "{}", a.rate());
        a.on_success(t0 + Duration::from_secs(3));
        assert!((a.rate() - 17.0).abs() < 1e-9, "{}", a.rate());
        a.on_success(t0 + Duration::from_secs(60));
        assert!(
            (a.rate() - 20.0).abs() < 1e-9,
            "capped at the ceiling: {}",
            a.rate()
        );
    }

    /// The reason AIMD shares a quota without shared state: two runners that see the same
    /// throttles and successes end at equal rates, whatever they started from (the additive
    /// part is the same for both, the multiplicative part shrinks the gap by 30 % per cut).
    #[test]
    fn two_runners_with_unequal_rates_converge_on_equal_shares() {
        let t0 = Instant::now();
        let mut fast = Aimd::new(25.0);
        let mut slow = Aimd::new(25.0);
        for i in 0..4u32 {
            slow.on_throttle(t0 + 600 * MS * i); // slow: 25 × 0.7^4 ≈ 6.0
        }
        let mut t = t0 + Duration::from_secs(3);
        let gap0 = fast.rate() - slow.rate();
        // Ten congestion cycles: one second of successes, then a throttle each.
        for _ in 0..10 {
            t += Duration::from_secs(1);
            fast.on_success(t);
            slow.on_success(t);
            t += 100 * MS;
            fast.on_throttle(t);
            slow.on_throttle(t);
        }
        let gap = fast.rate() - slow.rate();
        assert!(gap0 > 15.0, "{gap0}");
        assert!(gap.abs() < gap0 * 0.7f64.powi(9), "gap {gap0} -> {gap}");
    }

    #[test]
    fn a_cut_moves_the_epoch_and_reschedules_from_now_at_the_new_rate() {
        let mut b = Bucket::new(10.0);
        let t0 = Instant::now();
        let slots: Vec<(Duration, u64)> = (0..5).map(|_| b.reserve(t0)).collect();
        assert_eq!(slots[4], (400 * MS, 0));
        b.on_throttle(t0 + 50 * MS);
        assert_eq!(b.throttled, 1);
        assert_eq!(
            b.epoch, 1,
            "requests waiting on epoch-0 slots reserve again"
        );
        // At 7/s the next slot is one interval after the cut, not after the old schedule.
        let (d, e) = b.reserve(t0 + 60 * MS);
        assert_eq!(e, 1);
        let want = Duration::from_secs_f64(0.05 + 1.0 / 7.0) - 60 * MS;
        assert!(d.abs_diff(want) < MS, "{d:?} vs {want:?}");
        // A throttle of the same event counts but neither cuts nor moves the epoch.
        b.on_throttle(t0 + 100 * MS);
        assert_eq!((b.throttled, b.epoch), (2, 1));
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
