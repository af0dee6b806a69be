//! The endpoint's clock against ours: an interceptor that keeps the `Date` header of the last
//! response (and when it arrived), and the rule that turns the difference into a check. SigV4
//! refuses requests more than 5 minutes off (`RequestTimeTooSkewed`); from 60 s on, doctor warns.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::Check;

/// Skew from which doctor warns.
pub const WARN_SKEW: Duration = Duration::from_secs(60);
/// Skew from which AWS refuses SigV4 requests.
pub const FAIL_SKEW: Duration = Duration::from_secs(300);

/// What the last response said: its HTTP status, its `Date` header and our clock when it came.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP status code.
    pub status: u16,
    /// The `Date` header, if any.
    pub date: Option<String>,
    /// Our clock when the response arrived.
    pub at: SystemTime,
}

/// Records every response of the operation it is attached to (see [`Seen`]).
#[derive(Debug, Clone, Default)]
pub struct DateCapture(Arc<Mutex<Option<Seen>>>);

impl DateCapture {
    /// The last response seen, if any reached us.
    pub fn seen(&self) -> Option<Seen> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

impl Intercept for DateCapture {
    fn name(&self) -> &'static str {
        "hsm-demo doctor date capture"
    }

    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resp = ctx.response();
        let seen = Seen {
            status: resp.status().as_u16(),
            date: resp.headers().get("date").map(str::to_string),
            at: SystemTime::now(),
        };
        if let Ok(mut g) = self.0.lock() {
            *g = Some(seen);
        }
        Ok(())
    }
}

pub use crate::pca::aws_auth::skew_seconds;

/// The `clock` check from a response's `Date` header. The header has a resolution of one second.
pub fn clock_check(endpoint: &str, seen: &Seen) -> Check {
    let Some(date) = &seen.date else {
        return Check::skip("clock", format!("{endpoint} sent no Date header"));
    };
    let Some(skew) = skew_seconds(date, seen.at) else {
        return Check::skip(
            "clock",
            format!("{endpoint} sent an unreadable Date header"),
        );
    };
    let way = if skew >= 0.0 { "ahead of" } else { "behind" };
    let text = format!("this host's clock is {:.0} s {way} {endpoint}", skew.abs());
    let abs = Duration::from_secs_f64(skew.abs());
    if abs >= FAIL_SKEW {
        Check::fail(
            "clock",
            text,
            "AWS refuses signatures more than 5 minutes off; the SDK measures the offset and signs again (one more attempt per call), but other AWS tools and every certificate validity check on this host do not: sync the clock (chrony/NTP)",
        )
    } else if abs >= WARN_SKEW {
        Check::warn(
            "clock",
            text,
            "sync the clock (chrony/NTP) before it reaches 5 minutes",
        )
    } else {
        Check::pass("clock", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn seen(date: &str, at_unix: u64) -> Seen {
        Seen {
            status: 200,
            date: Some(date.to_string()),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_unix),
        }
    }

    #[test]
    fn skew_is_classified_at_60_s_and_5_min() {
        // Mon, 07 Dec 2026 06:00:00 GMT = 1796623200
        let d = "Mon, 07 Dec 2026 06:00:00 GMT";
        let t = 1_796_623_200;
        assert_eq!(skew_seconds(d, seen(d, t).at), Some(0.0));
        assert_eq!(clock_check("e", &seen(d, t + 59)).status, Status::Pass);
        assert_eq!(clock_check("e", &seen(d, t + 60)).status, Status::Warn);
        assert_eq!(clock_check("e", &seen(d, t - 299)).status, Status::Warn);
        let c = clock_check("e", &seen(d, t - 300));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("300 s behind"), "{}", c.detail);
        assert_eq!(clock_check("e", &seen("yesterday", t)).status, Status::Skip);
        let mut none = seen(d, t);
        none.date = None;
        assert_eq!(clock_check("e", &none).status, Status::Skip);
    }
}
