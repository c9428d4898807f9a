//! Wall-clock times as people and log files read them: UTC, RFC 3339 with
//! milliseconds, without a calendar crate.

use std::ops::Range;

/// A Unix time in milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
#[must_use]
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        unix_ms % 1000
    )
}

/// The inverse of [`utc`]: exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, years
/// 1970 to 9999, no leap second) as a Unix time in milliseconds; `None` for
/// anything else, including other RFC 3339 spellings.
#[must_use]
pub fn parse_utc(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 24 {
        return None;
    }
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let number = |range: Range<usize>| {
        bytes[range].iter().try_fold(0u64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u64::from(byte - b'0'))
        })
    };
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    let hour = number(11..13)?;
    let minute = number(14..16)?;
    let second = number(17..19)?;
    let milli = number(20..23)?;
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(secs * 1000 + milli)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid date from 1970 on (Howard Hinnant's
/// algorithm; every intermediate stays non-negative for such dates).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year % 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10000-01-01T00:00:00.000Z, the first time `utc` writes with five
    /// year digits.
    const YEAR_10000: u64 = 253_402_300_800_000;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_608_000_000), "2026-11-25T12:00:00.000Z");
    }

    #[test]
    fn parse_utc_reads_known_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_utc("2000-02-29T00:00:00.123Z"), Some(951_782_400_123));
        assert_eq!(
            parse_utc("2026-11-25T12:00:00.000Z"),
            Some(1_795_608_000_000)
        );
        assert_eq!(parse_utc("9999-12-31T23:59:59.999Z"), Some(YEAR_10000 - 1));
    }

    #[test]
    fn parse_utc_inverts_utc() {
        let round_trip = |unix_ms: u64| {
            let text = utc(unix_ms);
            assert_eq!(parse_utc(&text), Some(unix_ms), "{unix_ms} as {text}");
        };
        // Every day from 1970 into 2401 (all leap-year rules), at a varying
        // time of day, and the last millisecond of each day.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for day in 0..157_000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            round_trip(day * 86_400_000 + (seed >> 33) % 86_400_000);
            round_trip(day * 86_400_000 + 86_399_999);
        }
        // Spread over the whole range `utc` writes with four year digits.
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            round_trip((seed >> 11) % YEAR_10000);
        }
        round_trip(YEAR_10000 - 1);
        assert_eq!(parse_utc(&utc(YEAR_10000)), None);
    }

    #[test]
    fn parse_utc_rejects_anything_else() {
        for text in [
            "",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.0000Z",
            "1970-01-01T00:00:00.000",
            "1970-01-01T00:00:00.000z",
            "1970-01-01t00:00:00.000Z",
            "1970-01-01 00:00:00.000Z",
            "1970-01-01T00:00:00,000Z",
            "1970/01/01T00:00:00.000Z",
            "1970-01-01T00:00:00.000+00:00",
            " 1970-01-01T00:00:00.000Z",
            "1970-01-01T00:00:00.000Z ",
            "1969-12-31T23:59:59.999Z",
            "+970-01-01T00:00:00.000Z",
            "1970-+1-01T00:00:00.000Z",
            "1970-01-01T00:00:0a.000Z",
            "1970-00-01T00:00:00.000Z",
            "1970-13-01T00:00:00.000Z",
            "1970-01-00T00:00:00.000Z",
            "1970-01-32T00:00:00.000Z",
            "1970-04-31T00:00:00.000Z",
            "2023-02-29T00:00:00.000Z",
            "2100-02-29T00:00:00.000Z",
            "2024-02-30T00:00:00.000Z",
            "1970-01-01T24:00:00.000Z",
            "1970-01-01T00:60:00.000Z",
            "1970-01-01T00:00:60.000Z",
            "1970-01-01T00:00:00.é0Z",
            "10000-01-01T00:00:00.000Z",
        ] {
            assert_eq!(parse_utc(text), None, "{text:?}");
        }
        // Any one character replaced, separator or digit.
        let valid = "2024-02-29T23:59:59.999Z";
        for at in 0..valid.len() {
            for replacement in ["x", "0", "-", " "] {
                let text = format!("{}{replacement}{}", &valid[..at], &valid[at + 1..]);
                let digit = valid.as_bytes()[at].is_ascii_digit();
                if digit && replacement == "0" {
                    continue;
                }
                if !digit && replacement == &valid[at..=at] {
                    continue;
                }
                assert_eq!(parse_utc(&text), None, "{text:?}");
            }
        }
        assert!(parse_utc(valid).is_some());
        assert!(parse_utc("2024-02-29T00:00:00.000Z").is_some());
        assert!(parse_utc("2000-02-29T00:00:00.000Z").is_some());
    }
}
