//! Civil time at minute resolution, in UTC, with no clock: callers pass the time in.
//!
//! STS counts token identifiers in whole minutes; seconds are truncated (STS.md section 3).

use core::{fmt, str::FromStr};

/// A UTC minute: whole minutes since 1970-01-01 00:00 UTC.
///
/// Parses `YYYY-MM-DD HH:MM` (a `T` may stand for the space; `:SS` and a trailing `Z` are
/// accepted and the seconds dropped). Displays as `YYYY-MM-DD HH:MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcMinute(i64);

/// A date or time that does not exist or could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// The text is not of the form `YYYY-MM-DD HH:MM`.
    Format,
    /// A field is out of range (month 13, 31 April, hour 24 ...).
    Range,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Format => "invalid time: expected YYYY-MM-DD HH:MM (UTC)",
            Self::Range => "invalid time: no such date or time of day",
        })
    }
}

impl core::error::Error for TimeError {}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) const fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01 (inverse of [`days_from_civil`]).
const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

const fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

impl UtcMinute {
    /// Minutes in a day.
    pub const MINUTES_PER_DAY: i64 = 1440;

    pub(crate) const fn from_days_and_minute(days: i64, minute_of_day: i64) -> Self {
        Self(days * Self::MINUTES_PER_DAY + minute_of_day)
    }

    /// The minute from a calendar date and time of day.
    ///
    /// # Errors
    /// [`TimeError::Range`] when the date or time does not exist (years 1..=9999 only).
    pub const fn from_civil(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
    ) -> Result<Self, TimeError> {
        if year < 1
            || year > 9999
            || month < 1
            || month > 12
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
        {
            return Err(TimeError::Range);
        }
        Ok(Self::from_days_and_minute(
            days_from_civil(year, month, day),
            (hour * 60 + minute) as i64,
        ))
    }

    /// The minute containing a Unix time in seconds (seconds are truncated toward the past).
    #[must_use]
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.div_euclid(60))
    }

    /// The minute from minutes since 1970-01-01 00:00 UTC.
    #[must_use]
    pub const fn from_unix_minutes(minutes: i64) -> Self {
        Self(minutes)
    }

    /// Minutes since 1970-01-01 00:00 UTC.
    #[must_use]
    pub const fn unix_minutes(self) -> i64 {
        self.0
    }

    /// The minute `minutes` later (or earlier, when negative).
    #[must_use]
    pub const fn add_minutes(self, minutes: i64) -> Self {
        Self(self.0 + minutes)
    }

    /// Year, month, day, hour, minute.
    #[must_use]
    pub const fn to_civil(self) -> (i64, u32, u32, u32, u32) {
        let days = self.0.div_euclid(Self::MINUTES_PER_DAY);
        let minute_of_day = self.0.rem_euclid(Self::MINUTES_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        (
            y,
            m,
            d,
            (minute_of_day / 60) as u32,
            (minute_of_day % 60) as u32,
        )
    }
}

fn number(bytes: &[u8]) -> Result<u32, TimeError> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(TimeError::Format);
    }
    Ok(bytes
        .iter()
        .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

impl FromStr for UtcMinute {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_suffix('Z').unwrap_or(s).as_bytes();
        // YYYY-MM-DD?HH:MM[:SS]
        if !(s.len() == 16 || s.len() == 19) {
            return Err(TimeError::Format);
        }
        if s[4] != b'-' || s[7] != b'-' || !(s[10] == b' ' || s[10] == b'T') || s[13] != b':' {
            return Err(TimeError::Format);
        }
        if s.len() == 19 {
            if s[16] != b':' {
                return Err(TimeError::Format);
            }
            if number(&s[17..19])? > 59 {
                return Err(TimeError::Range);
            }
        }
        let year = number(&s[0..4])?;
        Self::from_civil(
            year as i32,
            number(&s[5..7])?,
            number(&s[8..10])?,
            number(&s[11..13])?,
            number(&s[14..16])?,
        )
    }
}

impl fmt::Display for UtcMinute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi) = self.to_civil();
        write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_round_trip() {
        assert_eq!(
            "1970-01-01 00:00"
                .parse::<UtcMinute>()
                .map(UtcMinute::unix_minutes),
            Ok(0)
        );
        let t: UtcMinute = "2024-11-24T20:15:59Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-11-24 20:15");
        assert_eq!(UtcMinute::from_unix_seconds(-1).unix_minutes(), -1);
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(
            "2023-02-29 00:00".parse::<UtcMinute>(),
            Err(TimeError::Range)
        );
        assert!("2024-02-29 00:00".parse::<UtcMinute>().is_ok());
        assert_eq!(
            "2024-01-01 24:00".parse::<UtcMinute>(),
            Err(TimeError::Range)
        );
        assert_eq!(
            "2024-1-01 00:00".parse::<UtcMinute>(),
            Err(TimeError::Format)
        );
        assert_eq!(
            "2024-01-01 00:00:60".parse::<UtcMinute>(),
            Err(TimeError::Range)
        );
        assert_eq!("".parse::<UtcMinute>(), Err(TimeError::Format));
        assert_eq!(
            "２０24-01-01 00:00".parse::<UtcMinute>(),
            Err(TimeError::Format)
        );
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-700_000..2_900_000).step_by(997) {
            let t = UtcMinute::from_days_and_minute(days, 61);
            let (y, m, d, h, mi) = t.to_civil();
            assert_eq!(UtcMinute::from_civil(y as i32, m, d, h, mi), Ok(t));
        }
    }
}
