//! When a certificate is due for renewal: pure arithmetic on the CURRENT record, no I/O.
//!
//! - The renewal point is a fraction of the certificate's lifetime L = NotAfter − NotBefore:
//!   2/3 by default (cert-manager's and `step ca renew`'s convention), `--at PERCENT` instead,
//!   or `--within D`: due once NotAfter − D is reached.
//! - `--jitter J` moves each device's point *earlier* by h·J% of L, where h ∈ [0, 1) is a hash of
//!   the device id: deterministic (a rerun decides the same), spread over the fleet, and never
//!   later than the point asked for.
//! - The min-interval guard (batch runs only): a certificate recorded less than `--min-interval`
//!   ago (default L/3) is not renewed, whatever the rule says. It is what keeps a `--within`
//!   longer than the lifetime, or a CA that shortened lifetimes, from renewing a fleet on every
//!   run (the re-issue storm).

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::duration::{self, Unit};
use crate::error::{Error, Result};
use crate::pca::records::CertRecord;

/// Which point of the lifetime makes a certificate due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DueRule {
    /// At this fraction of the lifetime (0..=1).
    Fraction(f64),
    /// When at most this many seconds of validity are left.
    Within(i64),
}

impl Default for DueRule {
    fn default() -> Self {
        DueRule::Fraction(2.0 / 3.0)
    }
}

/// The selection policy of a run.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The renewal point.
    pub rule: DueRule,
    /// Jitter in percent of the lifetime (0 = none).
    pub jitter_pct: f64,
    /// Minimum age of the current certificate before a batch renews it (seconds); `None` = a
    /// third of its lifetime.
    pub min_interval: Option<i64>,
    /// Apply the min-interval guard (`--all`, `--manifest`).
    pub guard: bool,
    /// Renew whatever the rule says (`--force`, named devices only; the guard does not apply).
    pub force: bool,
}

/// The decision for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Renew now.
    Due,
    /// Not yet: due at this time.
    NotDue(OffsetDateTime),
    /// Past its point, but recorded less than the min-interval ago: not before this time.
    TooRecent(OffsetDateTime),
}

/// Seconds in a duration; months count 30 days and years 365 (a renewal window, not a calendar
/// date).
pub fn seconds(d: duration::Duration) -> i64 {
    let unit: i64 = match d.unit {
        Unit::Seconds => 1,
        Unit::Minutes => 60,
        Unit::Hours => 3600,
        Unit::Days => 86_400,
        Unit::Weeks => 7 * 86_400,
        Unit::Months => 30 * 86_400,
        Unit::Years => 365 * 86_400,
    };
    i64::from(d.count) * unit
}

/// Parses a duration flag (the tool's one parser) into seconds.
pub fn parse_seconds(flag: &str, s: &str) -> Result<i64> {
    duration::parse(s)
        .map(seconds)
        .map_err(|e| Error::input(format!("{flag}: {}", e.message(s))))
}

/// Parses a percentage `0..=100` (`66`, `66.7`, `66%`).
pub fn parse_percent(flag: &str, s: &str) -> Result<f64> {
    let t = s.trim().trim_end_matches('%');
    match t.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(Error::input(format!(
            "{flag}: '{}' is not a percentage from 0 to 100",
            duration::shown(s)
        ))),
    }
}

/// The device's jitter factor in [0, 1): the first 8 bytes of SHA-256 over a fixed prefix and the
/// device id.
pub fn jitter_factor(device_id: &str) -> f64 {
    let h = Sha256::digest(format!("hsm-demo/renew-jitter/v1\0{device_id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn parse_time(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| Error::Registry(format!("malformed time '{s}' in a registry record")))
}

impl Policy {
    /// The renewal point of `cur` (jitter applied).
    pub fn due_at(&self, cur: &CertRecord) -> Result<OffsetDateTime> {
        let nb = parse_time(&cur.not_before)?;
        let na = parse_time(&cur.not_after)?;
        let life = (na - nb).whole_seconds().max(0);
        let jitter = (jitter_factor(&cur.device_id) * self.jitter_pct / 100.0 * life as f64) as i64;
        let point = match self.rule {
            DueRule::Fraction(f) => nb + time::Duration::seconds((f * life as f64) as i64),
            DueRule::Within(w) => na - time::Duration::seconds(w),
        };
        Ok(point - time::Duration::seconds(jitter))
    }

    /// Whether `cur` is due at `now`.
    pub fn decide(&self, cur: &CertRecord, now: OffsetDateTime) -> Result<Decision> {
        if self.force {
            return Ok(Decision::Due);
        }
        let due_at = self.due_at(cur)?;
        if now < due_at {
            return Ok(Decision::NotDue(due_at));
        }
        if self.guard {
            let nb = parse_time(&cur.not_before)?;
            let na = parse_time(&cur.not_after)?;
            let min = self
                .min_interval
                .unwrap_or_else(|| (na - nb).whole_seconds().max(0) / 3);
            let not_before = parse_time(&cur.issued_at)? + time::Duration::seconds(min);
            if now < not_before {
                return Ok(Decision::TooRecent(not_before));
            }
        }
        Ok(Decision::Due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pca::records::CertStatus;

    fn rec(id: &str, nb: &str, na: &str, issued: &str) -> CertRecord {
        CertRecord {
            device_id: id.into(),
            generation: 0,
            serial: "01".into(),
            ca_arn: "ca".into(),
            cert_arn: "arn".into(),
            status: CertStatus::Issued,
            not_before: nb.into(),
            not_after: na.into(),
            issued_at: issued.into(),
            revoked_at: None,
            revocation_reason: None,
            token: String::new(),
            template_arn: String::new(),
            cert_pem: None,
            chain_pem: None,
            recorded_by: None,
        }
    }

    fn t(s: &str) -> OffsetDateTime {
        parse_time(s).unwrap()
    }

    #[test]
    fn default_point_is_two_thirds_of_the_lifetime() {
        // 30 days: due after day 20.
        let r = rec(
            "d",
            "2026-01-01T00:00:00Z",
            "2026-01-31T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        let p = Policy::default();
        assert_eq!(p.due_at(&r).unwrap(), t("2026-01-21T00:00:00Z"));
        assert!(matches!(
            p.decide(&r, t("2026-01-20T23:59:59Z")).unwrap(),
            Decision::NotDue(_)
        ));
        assert_eq!(
            p.decide(&r, t("2026-01-21T00:00:00Z")).unwrap(),
            Decision::Due
        );
        let at = Policy {
            rule: DueRule::Fraction(0.5),
            ..Policy::default()
        };
        assert_eq!(at.due_at(&r).unwrap(), t("2026-01-16T00:00:00Z"));
        let within = Policy {
            rule: DueRule::Within(2 * 86_400),
            ..Policy::default()
        };
        assert_eq!(within.due_at(&r).unwrap(), t("2026-01-29T00:00:00Z"));
    }

    #[test]
    fn min_interval_guard_holds_whatever_within_says_and_force_overrides_it() {
        let r = rec(
            "d",
            "2026-01-01T00:00:00Z",
            "2026-01-31T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        let now = t("2026-01-05T00:00:00Z");
        let storm = Policy {
            rule: DueRule::Within(365 * 86_400),
            guard: true,
            ..Policy::default()
        };
        // Default guard: a third of 30 days.
        assert_eq!(
            storm.decide(&r, now).unwrap(),
            Decision::TooRecent(t("2026-01-11T00:00:00Z"))
        );
        let short = Policy {
            min_interval: Some(86_400),
            ..storm.clone()
        };
        assert_eq!(short.decide(&r, now).unwrap(), Decision::Due);
        let named = Policy {
            guard: false,
            ..storm.clone()
        };
        assert_eq!(named.decide(&r, now).unwrap(), Decision::Due);
        let forced = Policy {
            force: true,
            rule: DueRule::default(),
            ..storm
        };
        assert_eq!(forced.decide(&r, now).unwrap(), Decision::Due);
    }

    #[test]
    fn jitter_is_deterministic_spread_and_only_earlier() {
        let f: Vec<f64> = (0..1000)
            .map(|i| jitter_factor(&format!("device-{i}")))
            .collect();
        assert!(f.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(jitter_factor("device-7"), f[7]);
        let mean = f.iter().sum::<f64>() / f.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
        let low = f.iter().filter(|x| **x < 0.1).count();
        assert!((50..150).contains(&low), "{low} in the lowest tenth");
        let r = rec(
            "device-7",
            "2026-01-01T00:00:00Z",
            "2026-01-31T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        let p = Policy {
            jitter_pct: 10.0,
            ..Policy::default()
        };
        let plain = Policy::default().due_at(&r).unwrap();
        let j = p.due_at(&r).unwrap();
        assert!(j <= plain && plain - j <= time::Duration::days(3));
    }

    #[test]
    fn durations_and_percentages() {
        assert_eq!(parse_seconds("--within", "2h").unwrap(), 7200);
        assert_eq!(parse_seconds("--within", "1w").unwrap(), 604_800);
        assert!(parse_seconds("--within", "30m").is_err());
        assert_eq!(parse_percent("--at", "66.5%").unwrap(), 66.5);
        assert!(parse_percent("--at", "101").is_err());
        assert!(parse_percent("--at", "x").is_err());
    }
}
