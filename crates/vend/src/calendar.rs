//! UTC dates and times as the API reads and writes them: sale times in Unix seconds,
//! `YYYY-MM-DD` days for reports, `YYYY-MM` months for the free allowance. Every calendar
//! boundary is UTC (the server's time zone plays no part).

use sts_core::UtcMinute;

/// Seconds in a day (UTC has no daylight saving; leap seconds are not counted by Unix time).
pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC).
pub(crate) fn rfc3339(seconds: i64) -> String {
    let (y, mo, d, h, mi) = UtcMinute::from_unix_seconds(seconds).to_civil();
    let s = seconds.rem_euclid(60);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub(crate) fn date(day: i64) -> String {
    let (y, mo, d, _, _) =
        UtcMinute::from_unix_minutes(day * UtcMinute::MINUTES_PER_DAY).to_civil();
    format!("{y:04}-{mo:02}-{d:02}")
}

/// The calendar month (UTC) of a Unix time: `YYYY-MM`.
pub(crate) fn month(seconds: i64) -> String {
    let (y, mo, _, _, _) = UtcMinute::from_unix_seconds(seconds).to_civil();
    format!("{y:04}-{mo:02}")
}

/// Parses `YYYY-MM-DD` (a UTC day) into days since 1970-01-01.
///
/// # Errors
/// What is wrong, for a field error.
pub(crate) fn parse_date(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err("expected a date YYYY-MM-DD".to_owned());
    }
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| "expected a date YYYY-MM-DD".to_owned())
    };
    let year = number(&text[0..4])?;
    let minute = UtcMinute::from_civil(
        i32::try_from(year).map_err(|_| "no such date".to_owned())?,
        number(&text[5..7])?,
        number(&text[8..10])?,
        0,
        0,
    )
    .map_err(|_| "no such date".to_owned())?;
    Ok(minute.unix_minutes().div_euclid(UtcMinute::MINUTES_PER_DAY))
}

/// Parses a UTC time: `YYYY-MM-DD` (its midnight), `YYYY-MM-DD HH:MM`, or RFC 3339
/// `YYYY-MM-DDTHH:MM:SSZ`; into Unix seconds. Times are kept to the minute: seconds other than
/// `00` are refused rather than dropped.
///
/// # Errors
/// What is wrong, for a field error.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    const EXPECTED: &str =
        "expected a UTC time: YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DDTHH:MM:SSZ";
    let text = text.trim();
    if text.len() == 10 {
        return parse_date(text).map(|day| day * SECONDS_PER_DAY);
    }
    let bare = text.strip_suffix('Z').unwrap_or(text);
    // A UTC offset other than Z (`+02:00`) is not read as UTC: refuse it.
    if bare.len() > 19 || !bare.is_ascii() {
        return Err(EXPECTED.to_owned());
    }
    if bare.len() == 19 && &bare[16..] != ":00" {
        return Err("whole minutes only: the seconds must be 00".to_owned());
    }
    let minute: UtcMinute = bare.parse().map_err(|e| match e {
        sts_core::TimeError::Format => EXPECTED.to_owned(),
        sts_core::TimeError::Range => "no such date or time of day".to_owned(),
    })?;
    Ok(minute.unix_minutes() * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        let t = parse_time("2026-07-01T00:00:00Z").unwrap();
        assert_eq!(rfc3339(t), "2026-07-01T00:00:00Z");
        assert_eq!(parse_time("2026-07-01 00:00"), Ok(t));
        assert_eq!(parse_time("2026-07-01"), Ok(t));
        assert_eq!(parse_time("2026-07-01T00:00Z"), Ok(t));
        assert_eq!(rfc3339(t + 61), "2026-07-01T00:01:01Z");
    }

    #[test]
    fn refuses_what_is_not_a_utc_minute() {
        for text in [
            "",
            "tomorrow",
            "2026-07-01T00:00:00+02:00",
            "2026-13-01",
            "2026-02-30 00:00",
            "2026-07-01T24:00:00Z",
            "2026-07-01T00:00:30Z",
            "2026-7-1",
            "2026-07-01T00:00:00.5Z",
        ] {
            assert!(parse_time(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn dates_and_months_are_utc() {
        let day = parse_date("2026-02-28").unwrap();
        assert_eq!(date(day), "2026-02-28");
        assert_eq!(date(day + 1), "2026-03-01");
        assert_eq!(date(0), "1970-01-01");
        let last_second_of_june = parse_time("2026-07-01").unwrap() - 1;
        assert_eq!(month(last_second_of_june), "2026-06");
        assert_eq!(month(last_second_of_june + 1), "2026-07");
        assert_eq!(
            (last_second_of_june + 1) / SECONDS_PER_DAY,
            parse_date("2026-07-01").unwrap()
        );
        for bad in [
            "2026-02-29",
            "26-02-01",
            "2026/02/01",
            "2026-02-01x",
            "+026-02-01",
        ] {
            assert!(parse_date(bad).is_err(), "{bad:?}");
        }
    }
}
