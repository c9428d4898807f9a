//! Durations, ages and sizes as people read them in tables (`ps`, `top`,
//! `inspect`): `2m05s`, `1.2ms`, `5.3M`.

use std::time::Duration;

pub(super) use corral::clock::now_ms;

/// How long before `now_ms` `at_unix_ms` was: `5s`, `2m05s`, ...
pub(super) fn ago(now_ms: u64, at_unix_ms: u64) -> String {
    human(Duration::from_millis(now_ms.saturating_sub(at_unix_ms)))
}

/// A duration to the second: `59s`, `1m01s`, `1h01m`, `1d01h`.
pub(super) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// A latency for people: `850us`, `1.2ms`, `340ms`, `2.5s`.
pub(super) fn human_us(duration: Duration) -> String {
    let us = duration.as_micros();
    if us < 1_000 {
        format!("{us}us")
    } else if us < 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// Bytes as mebibytes, `12.3M` below 100 MiB, `256M` above.
pub(super) fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib < 100.0 {
        format!("{mib:.1}M")
    } else {
        format!("{mib:.0}M")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (61, "1m01s"),
            (3_660, "1h01m"),
            (90_000, "1d01h"),
        ];
        for (secs, text) in cases {
            assert_eq!(human(Duration::from_secs(secs)), text);
        }
    }
}
