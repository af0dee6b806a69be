//! The one parser for every duration flag of the tool (`pca issue --validity`, `provision
//! --validity`, `key-ceremony --validity`, `sign-intermediate --validity`, the ceremony config's
//! `certificate.validity`).
//!
//! A duration is a whole number and a unit, optionally separated by spaces, in any case:
//!
//! | unit    | spellings                        |
//! |---------|----------------------------------|
//! | seconds | `s`, `sec`, `secs`, `second(s)`  |
//! | minutes | `min`, `mins`, `minute(s)`       |
//! | hours   | `h`, `hr`, `hrs`, `hour(s)`      |
//! | days    | `d`, `day(s)`                    |
//! | weeks   | `w`, `wk`, `week(s)`             |
//! | months  | `mo`, `mon`, `month(s)`          |
//! | years   | `y`, `yr`, `yrs`, `year(s)`      |
//!
//! A bare `m` is refused: `30m` reads as minutes to some and as months to others, so the error
//! names both spellings. What each flag accepts (its units, minimum and maximum) is checked by
//! the flag's own type on top of this parser.

use std::fmt;

/// A unit of a [`Duration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days.
    Days,
    /// Weeks.
    Weeks,
    /// Calendar months.
    Months,
    /// Calendar years.
    Years,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "s" | "sec" | "secs" | "second" | "seconds" => Unit::Seconds,
            "min" | "mins" | "minute" | "minutes" => Unit::Minutes,
            "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hours,
            "d" | "day" | "days" => Unit::Days,
            "w" | "wk" | "week" | "weeks" => Unit::Weeks,
            "mo" | "mon" | "month" | "months" => Unit::Months,
            "y" | "yr" | "yrs" | "year" | "years" => Unit::Years,
            _ => return None,
        })
    }

    /// The canonical short spelling (`min`, `h`, `d`, `w`, `mo`, `y`, `s`).
    pub fn short(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Minutes => "min",
            Unit::Hours => "h",
            Unit::Days => "d",
            Unit::Weeks => "w",
            Unit::Months => "mo",
            Unit::Years => "y",
        }
    }
}

/// A parsed duration: a count of a unit (calendar units stay calendar units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    /// The number.
    pub count: u32,
    /// The unit.
    pub unit: Unit,
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.short())
    }
}

/// The value as given, with control characters escaped and long values cut (for error messages).
pub fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_default).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Why a duration did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not `<number><unit>` with a known unit.
    Malformed,
    /// The number does not fit.
    OutOfRange,
    /// A bare `m`: minutes or months? (the count, to suggest both spellings)
    Ambiguous(u32),
}

impl DurationError {
    /// The one-line message for the value `s` as given.
    pub fn message(&self, s: &str) -> String {
        let v = shown(s);
        match self {
            DurationError::Malformed => format!(
                "'{v}' is not a duration: expected a whole number and a unit min, h, d, w, mo or y (e.g. 30min, 12h, 30d, 6mo, 1y)"
            ),
            DurationError::OutOfRange => format!("'{v}' is out of range"),
            DurationError::Ambiguous(n) => {
                format!("'{v}' is ambiguous: write {n}min (minutes) or {n}mo (months)")
            }
        }
    }
}

/// Parses `<number><unit>` (see the module docs).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed)?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(DurationError::Malformed);
    }
    let count: u32 = num.parse().map_err(|_| DurationError::OutOfRange)?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    if unit == "m" {
        return Err(DurationError::Ambiguous(count));
    }
    let unit = Unit::parse(&unit).ok_or(DurationError::Malformed)?;
    Ok(Duration { count, unit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(count: u32, unit: Unit) -> Duration {
        Duration { count, unit }
    }

    #[test]
    fn units_and_spellings() {
        for (s, want) in [
            ("30min", d(30, Unit::Minutes)),
            ("12h", d(12, Unit::Hours)),
            ("30d", d(30, Unit::Days)),
            ("2w", d(2, Unit::Weeks)),
            ("6mo", d(6, Unit::Months)),
            ("1y", d(1, Unit::Years)),
            ("20 years", d(20, Unit::Years)),
            ("365 days", d(365, Unit::Days)),
            ("10Y", d(10, Unit::Years)),
            (" 3 months ", d(3, Unit::Months)),
            ("90s", d(90, Unit::Seconds)),
        ] {
            assert_eq!(parse(s).unwrap(), want, "{s}");
        }
        assert_eq!(d(6, Unit::Months).to_string(), "6mo");
        assert_eq!(d(30, Unit::Minutes).to_string(), "30min");
    }

    #[test]
    fn bare_m_is_ambiguous_and_names_both() {
        for s in ["30m", "30M", "30 m"] {
            let e = parse(s).unwrap_err();
            assert_eq!(e, DurationError::Ambiguous(30));
            assert_eq!(
                e.message(s),
                format!(
                    "'{}' is ambiguous: write 30min (minutes) or 30mo (months)",
                    shown(s)
                )
            );
        }
    }

    #[test]
    fn garbage_is_refused_in_one_line() {
        for s in [
            "",
            "d",
            "12",
            "1.5d",
            "-1d",
            "1x",
            "+1d",
            "1d2h",
            "99999999999d",
            "1\nd",
            "1\u{1b}d",
        ] {
            let e = parse(s).unwrap_err().message(s);
            assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{s:?}: {e}");
        }
    }
}
