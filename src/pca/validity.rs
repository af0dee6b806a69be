//! `--validity` parsing: `12h`, `30d`, `2w`, `6mo`, `1y` → AWS Private CA `Validity` (the
//! duration syntax is the tool's one parser, [`crate::duration`]; a bare `m` is refused as
//! ambiguous).
//!
//! Whole days, months and years map to DAYS / MONTHS / YEARS. Anything that is not a whole number of
//! days (`12h`, `36h`) becomes ABSOLUTE with the end time as Unix seconds — never `DAYS=0`, which
//! AWS rejects (relative validity is at least one day; aws-privateca-issuer #71). Below one hour is
//! rejected. The end time is also computed locally so it can be checked against the CA's NotAfter
//! before any call.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::duration::{self, DurationError, Unit};
use crate::error::{Error, Result};

/// The shortest validity accepted.
pub const MIN_VALIDITY: Duration = Duration::hours(1);

/// A parsed `--validity` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValiditySpec {
    /// A number of hours that is not a whole number of days.
    Hours(u32),
    /// Days.
    Days(u32),
    /// Calendar months.
    Months(u32),
    /// Calendar years.
    Years(u32),
}

/// AWS `ValidityPeriodType` as stored in intent records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidityKind {
    /// `ABSOLUTE`: value is the end time in Unix seconds.
    Absolute,
    /// `DAYS`.
    Days,
    /// `MONTHS`.
    Months,
    /// `YEARS`.
    Years,
}

impl ValidityKind {
    /// The AWS enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidityKind::Absolute => "ABSOLUTE",
            ValidityKind::Days => "DAYS",
            ValidityKind::Months => "MONTHS",
            ValidityKind::Years => "YEARS",
        }
    }

    /// Parses the AWS enum name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ABSOLUTE" => ValidityKind::Absolute,
            "DAYS" => ValidityKind::Days,
            "MONTHS" => ValidityKind::Months,
            "YEARS" => ValidityKind::Years,
            _ => return None,
        })
    }
}

/// A validity resolved at a point in time: what to send, and when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedValidity {
    /// The AWS validity type.
    pub kind: ValidityKind,
    /// The AWS validity value (a count, or Unix seconds for ABSOLUTE).
    pub value: i64,
    /// The expected NotAfter of the certificate.
    pub not_after: OffsetDateTime,
}

impl ValiditySpec {
    /// Parses a duration (the tool's one parser, [`crate::duration`]): `12h`, `30d`, `2w`, `6mo`,
    /// `1y`; minutes and seconds only as whole hours (`90min` is refused, `120min` is `2h`).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let d = duration::parse(s).map_err(|e| {
            Error::input(match e {
                DurationError::Malformed => format!(
                    "invalid validity '{}': expected a number and a unit h, d, w, mo or y (e.g. 12h, 30d, 6mo, 1y)",
                    duration::shown(s)
                ),
                other => format!("invalid validity: {}", other.message(s)),
            })
        })?;
        let below = || {
            Error::input(format!(
                "validity '{}' is below the minimum of 1 hour",
                duration::shown(t)
            ))
        };
        let hours = |n: u32| {
            if n < 1 {
                return Err(below());
            }
            Ok(if n.is_multiple_of(24) {
                ValiditySpec::Days(n / 24)
            } else {
                ValiditySpec::Hours(n)
            })
        };
        let sub_hour = |n: u32, per_hour: u32| {
            if n < per_hour {
                return Err(below());
            }
            if !n.is_multiple_of(per_hour) {
                return Err(Error::input(format!(
                    "validity '{}' is not a whole number of hours",
                    duration::shown(t)
                )));
            }
            hours(n / per_hour)
        };
        let n = d.count;
        let spec = match d.unit {
            Unit::Seconds => sub_hour(n, 3600)?,
            Unit::Minutes => sub_hour(n, 60)?,
            Unit::Hours => hours(n)?,
            Unit::Days => ValiditySpec::Days(n),
            Unit::Weeks => ValiditySpec::Days(n.checked_mul(7).ok_or_else(|| {
                Error::input(format!("validity '{}' is out of range", duration::shown(t)))
            })?),
            Unit::Months => ValiditySpec::Months(n),
            Unit::Years => ValiditySpec::Years(n),
        };
        let zero = matches!(
            spec,
            ValiditySpec::Days(0) | ValiditySpec::Months(0) | ValiditySpec::Years(0)
        );
        if zero {
            return Err(Error::input(format!(
                "validity '{t}' is below the minimum of 1 hour"
            )));
        }
        if spec.approx_days() > 100 * 366 {
            return Err(Error::input(format!(
                "validity '{t}' is longer than 100 years"
            )));
        }
        Ok(spec)
    }

    fn approx_days(self) -> u64 {
        match self {
            ValiditySpec::Hours(h) => u64::from(h) / 24,
            ValiditySpec::Days(d) => u64::from(d),
            ValiditySpec::Months(m) => u64::from(m) * 31,
            ValiditySpec::Years(y) => u64::from(y) * 366,
        }
    }

    /// Resolves against `now` (the intent's creation time).
    pub fn resolve(self, now: OffsetDateTime) -> Result<ResolvedValidity> {
        let overflow = || Error::input("validity is out of range".to_string());
        Ok(match self {
            ValiditySpec::Hours(h) => {
                let end = now
                    .checked_add(Duration::hours(i64::from(h)))
                    .ok_or_else(overflow)?;
                ResolvedValidity {
                    kind: ValidityKind::Absolute,
                    value: end.unix_timestamp(),
                    not_after: end,
                }
            }
            ValiditySpec::Days(d) => ResolvedValidity {
                kind: ValidityKind::Days,
                value: i64::from(d),
                not_after: now
                    .checked_add(Duration::days(i64::from(d)))
                    .ok_or_else(overflow)?,
            },
            ValiditySpec::Months(m) => ResolvedValidity {
                kind: ValidityKind::Months,
                value: i64::from(m),
                not_after: add_months(now, m).ok_or_else(overflow)?,
            },
            ValiditySpec::Years(y) => ResolvedValidity {
                kind: ValidityKind::Years,
                value: i64::from(y),
                not_after: add_months(now, y.checked_mul(12).ok_or_else(overflow)?)
                    .ok_or_else(overflow)?,
            },
        })
    }
}

impl ResolvedValidity {
    /// Rebuilds from an intent record's stored kind/value (the expected end is recomputed from
    /// `created`).
    pub fn from_stored(kind: ValidityKind, value: i64, created: OffsetDateTime) -> Option<Self> {
        let not_after = match kind {
            ValidityKind::Absolute => OffsetDateTime::from_unix_timestamp(value).ok()?,
            ValidityKind::Days => {
                created.checked_add(Duration::seconds(value.checked_mul(86_400)?))?
            }
            ValidityKind::Months => add_months(created, u32::try_from(value).ok()?)?,
            ValidityKind::Years => {
                add_months(created, u32::try_from(value).ok()?.checked_mul(12)?)?
            }
        };
        Some(ResolvedValidity {
            kind,
            value,
            not_after,
        })
    }
}

impl fmt::Display for ValiditySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValiditySpec::Hours(n) => write!(f, "{n}h"),
            ValiditySpec::Days(n) => write!(f, "{n}d"),
            ValiditySpec::Months(n) => write!(f, "{n}mo"),
            ValiditySpec::Years(n) => write!(f, "{n}y"),
        }
    }
}

/// Calendar month addition, clamping the day to the target month's length.
fn add_months(t: OffsetDateTime, months: u32) -> Option<OffsetDateTime> {
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month()) - 1) + i64::from(months);
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(month.length(year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parse_units() {
        assert_eq!(ValiditySpec::parse("30d").unwrap(), ValiditySpec::Days(30));
        assert_eq!(ValiditySpec::parse("12h").unwrap(), ValiditySpec::Hours(12));
        assert_eq!(ValiditySpec::parse("48h").unwrap(), ValiditySpec::Days(2));
        assert_eq!(ValiditySpec::parse("2w").unwrap(), ValiditySpec::Days(14));
        assert_eq!(ValiditySpec::parse("6mo").unwrap(), ValiditySpec::Months(6));
        assert_eq!(
            ValiditySpec::parse("120min").unwrap(),
            ValiditySpec::Hours(2)
        );
        assert_eq!(
            ValiditySpec::parse("1440min").unwrap(),
            ValiditySpec::Days(1)
        );
        assert_eq!(ValiditySpec::parse("1y").unwrap(), ValiditySpec::Years(1));
        assert_eq!(ValiditySpec::parse("1h").unwrap(), ValiditySpec::Hours(1));
    }

    #[test]
    fn rejects_short_and_garbage() {
        for bad in [
            "0h", "0d", "30min", "59s", "", "d", "12", "1.5d", "-1d", "1x", "200y", "30m", "90min",
        ] {
            let e = ValiditySpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("validity"), "{bad}: {e}");
        }
        assert!(ValiditySpec::parse("0h")
            .unwrap_err()
            .to_string()
            .contains("minimum of 1 hour"));
        assert_eq!(
            ValiditySpec::parse("30m").unwrap_err().to_string(),
            "invalid validity: '30m' is ambiguous: write 30min (minutes) or 30mo (months)"
        );
        assert!(ValiditySpec::parse("30min")
            .unwrap_err()
            .to_string()
            .contains("minimum of 1 hour"));
    }

    #[test]
    fn sub_day_is_absolute_never_days_zero() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let r = ValiditySpec::parse("12h").unwrap().resolve(now).unwrap();
        assert_eq!(r.kind, ValidityKind::Absolute);
        assert_eq!(r.value, datetime!(2026-11-29 00:00 UTC).unix_timestamp());
        let r = ValiditySpec::parse("36h").unwrap().resolve(now).unwrap();
        assert_eq!(r.kind, ValidityKind::Absolute);
        let r = ValiditySpec::parse("30d").unwrap().resolve(now).unwrap();
        assert_eq!((r.kind, r.value), (ValidityKind::Days, 30));
    }

    #[test]
    fn months_clamp() {
        let t = datetime!(2026-01-31 10:00 UTC);
        let r = ValiditySpec::Months(1).resolve(t).unwrap();
        assert_eq!(r.not_after, datetime!(2026-02-28 10:00 UTC));
        let r = ValiditySpec::Years(1).resolve(t).unwrap();
        assert_eq!(r.not_after, datetime!(2027-01-31 10:00 UTC));
        assert_eq!(
            ResolvedValidity::from_stored(ValidityKind::Months, 1, t).unwrap(),
            r_with(ValidityKind::Months, 1, datetime!(2026-02-28 10:00 UTC))
        );
    }

    #[test]
    fn stored_values_out_of_range_are_none_not_a_panic() {
        let t = datetime!(2026-01-31 10:00 UTC);
        for kind in [
            ValidityKind::Absolute,
            ValidityKind::Days,
            ValidityKind::Months,
            ValidityKind::Years,
        ] {
            for value in [i64::MAX, i64::MIN, i64::MAX / 86_400, -1] {
                if let Some(r) = ResolvedValidity::from_stored(kind, value, t) {
                    assert!(r.not_after.year() <= 9999 && r.not_after.year() >= -9999);
                }
            }
        }
        assert!(ResolvedValidity::from_stored(ValidityKind::Days, i64::MAX, t).is_none());
    }

    fn r_with(kind: ValidityKind, value: i64, not_after: OffsetDateTime) -> ResolvedValidity {
        ResolvedValidity {
            kind,
            value,
            not_after,
        }
    }
}
