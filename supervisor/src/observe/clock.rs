//! Wall-clock times as people and log files read them: UTC, RFC 3339 with
//! milliseconds (`humantime` writes and reads them), and milliseconds
//! since the Unix epoch, as the wire carries them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of `time` (0 before it).
#[must_use]
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// A Unix time in milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC); past
/// the year 9999, which RFC 3339 cannot write, as `N ms after 1970`.
#[must_use]
pub fn utc(unix_ms: u64) -> String {
    use std::fmt::Write;
    let written = UNIX_EPOCH
        .checked_add(Duration::from_millis(unix_ms))
        .and_then(|time| {
            let mut text = String::new();
            write!(text, "{}", humantime::format_rfc3339_millis(time))
                .ok()
                .map(|()| text)
        });
    written.unwrap_or_else(|| format!("{unix_ms} ms after 1970"))
}

/// The inverse of [`utc`]: exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, years
/// 1970 to 9999, no leap second) as a Unix time in milliseconds; `None` for
/// anything else, including other RFC 3339 spellings.
#[must_use]
pub fn parse_utc(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    // humantime reads any RFC 3339 time in UTC, and a leap second as the
    // one before; corral writes only this shape, and no leap seconds.
    let shape = [(10, b'T'), (19, b'.'), (23, b'Z')];
    if bytes.len() != 24
        || shape.iter().any(|&(at, byte)| bytes[at] != byte)
        || bytes[17..19] == *b"60"
    {
        return None;
    }
    let time = humantime::parse_rfc3339(text).ok()?;
    time.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u64::try_from(since.as_millis()).ok())
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
        assert_eq!(utc(u64::MAX), format!("{} ms after 1970", u64::MAX));
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
