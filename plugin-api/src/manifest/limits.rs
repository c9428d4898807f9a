//! `[limits]`: the resource limits a plugin asks for ([`Limits`]), the
//! values each key accepts ([`Limits::RANGES`]), and [`LimitsTable`], the
//! table as written, which the supervisor's `corral.toml` shares. Also
//! `checked`, the range check (and its message) that `[restart]` and
//! `[health]` use too.

use super::error::ManifestError;
use serde::Deserialize;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use toml::Spanned;

/// `[limits]`: each `None` takes the supervisor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Data memory (heap) in MiB: `RLIMIT_DATA`.
    pub memory_mb: Option<u64>,
    /// CPU time in seconds over the worker's life: `RLIMIT_CPU`.
    pub cpu_seconds: Option<u64>,
    /// Sustained CPU use, in percent of one core, above which the
    /// supervisor's watchdog kills the worker.
    pub cpu_percent: Option<u64>,
    /// Deadline of one call in milliseconds; a worker that misses it is
    /// killed.
    pub call_timeout_ms: Option<u64>,
    /// Open file descriptors: `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// Threads and processes: `RLIMIT_NPROC` (needs a per-worker uid).
    pub threads: Option<u64>,
    /// Largest file the plugin may write, in MiB: `RLIMIT_FSIZE`.
    pub file_size_mb: Option<u64>,
    /// wasm only: fuel (about one unit per instruction) a call may burn;
    /// `0` or unset = no fuel metering, the deadline alone.
    pub wasm_fuel: Option<u64>,
    /// Quota of the host key-value storage, in MiB (keys and values).
    pub storage_mb: Option<u64>,
    /// Most keys the host key-value storage holds.
    pub storage_keys: Option<u64>,
}

impl Limits {
    /// Every `[limits]` key with the values it accepts (inclusive), in
    /// the order of the reference.
    pub const RANGES: [(&'static str, u64, u64); 10] = [
        ("memory_mb", 16, 1 << 20),
        ("call_timeout_ms", 1, 24 * 3_600_000),
        ("cpu_seconds", 1, 1 << 32),
        ("cpu_percent", 1, 100 * 1024),
        ("open_files", 8, 1 << 20),
        ("threads", 1, 1 << 16),
        ("file_size_mb", 1, 1 << 30),
        ("wasm_fuel", 0, u64::MAX),
        ("storage_mb", 1, 1 << 20),
        ("storage_keys", 1, 1 << 32),
    ];
}

/// A `[limits]` table as written, with where each value stands: deserialize
/// it as part of a TOML document, then [`validate`](Self::validate) it
/// against the document's text. Shared by `plugin.toml` and the
/// supervisor's `corral.toml`, so both accept the same keys and ranges.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsTable {
    memory_mb: Option<Spanned<u64>>,
    cpu_seconds: Option<Spanned<u64>>,
    cpu_percent: Option<Spanned<u64>>,
    call_timeout_ms: Option<Spanned<u64>>,
    open_files: Option<Spanned<u64>>,
    threads: Option<Spanned<u64>>,
    file_size_mb: Option<Spanned<u64>>,
    wasm_fuel: Option<Spanned<u64>>,
    storage_mb: Option<Spanned<u64>>,
    storage_keys: Option<Spanned<u64>>,
}

impl LimitsTable {
    /// Checks every value against [`Limits::RANGES`]; `text` is the whole
    /// document this table was read from and `path` its file, for the
    /// error's position.
    pub fn validate(self, path: &Path, text: &str) -> Result<Limits, ManifestError> {
        let range = |value: Option<Spanned<u64>>, key: &str| {
            let (_, min, max) = Limits::RANGES
                .into_iter()
                .find(|(name, _, _)| *name == key)
                .expect("every limit has a range");
            checked(value, "[limits]", key, min..=max, "")
                .map_err(|(span, message)| ManifestError::at(path, text, Some(span), message))
        };
        Ok(Limits {
            memory_mb: range(self.memory_mb, "memory_mb")?,
            cpu_seconds: range(self.cpu_seconds, "cpu_seconds")?,
            cpu_percent: range(self.cpu_percent, "cpu_percent")?,
            call_timeout_ms: range(self.call_timeout_ms, "call_timeout_ms")?,
            open_files: range(self.open_files, "open_files")?,
            threads: range(self.threads, "threads")?,
            file_size_mb: range(self.file_size_mb, "file_size_mb")?,
            wasm_fuel: range(self.wasm_fuel, "wasm_fuel")?,
            storage_mb: range(self.storage_mb, "storage_mb")?,
            storage_keys: range(self.storage_keys, "storage_keys")?,
        })
    }
}

/// `value` when it lies in `range`; otherwise the error `[table] key =
/// value: expected MIN to MAX` (`what` replaces the `MIN to MAX` part when
/// not empty), with the value's span.
pub(super) fn checked(
    value: Option<Spanned<u64>>,
    table: &str,
    key: &str,
    range: RangeInclusive<u64>,
    what: &str,
) -> Result<Option<u64>, (Range<usize>, String)> {
    match value {
        Some(value) if !range.contains(value.get_ref()) => {
            let expected = if what.is_empty() {
                format!("{} to {}", range.start(), range.end())
            } else {
                what.to_owned()
            };
            Err((
                value.span(),
                format!("{table} {key} = {}: expected {expected}", value.get_ref()),
            ))
        }
        value => Ok(value.map(Spanned::into_inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{GOOD, error, parse, refused_at};

    #[test]
    fn limits_are_set_key_by_key() {
        let text = format!(
            "{GOOD}\n[permissions]\nread = [\"data\"]\nnetwork = true\n\n[limits]\nmemory_mb = 64\ncall_timeout_ms = 250\n"
        );
        let manifest = parse(&text).unwrap();
        assert_eq!(manifest.limits.memory_mb, Some(64));
        assert_eq!(manifest.limits.call_timeout_ms, Some(250));
        assert_eq!(manifest.limits.open_files, None);

        let message = error(&format!("{GOOD}\n[limits]\nmemory_mb = 1\n"));
        assert!(
            message.contains(":10:13: [limits] memory_mb = 1: expected 16 to"),
            "{message}"
        );
        let message = error(&format!("{GOOD}\n[limits]\nmemroy_mb = 64\n"));
        assert!(message.contains("unknown field `memroy_mb`"), "{message}");
    }

    #[test]
    fn every_limit_is_range_checked() {
        for (key, min, max) in Limits::RANGES {
            let with = |value: u64| format!("{GOOD}\n[limits]\n{key} = {value}\n");
            assert!(parse(&with(min)).is_ok(), "{key} = {min}");
            if max <= i64::MAX as u64 {
                assert!(parse(&with(max)).is_ok(), "{key} = {max}");
                if max < i64::MAX as u64 {
                    refused_at(
                        &with(max + 1),
                        10,
                        &format!("[limits] {key} = {}: expected {min} to {max}", max + 1),
                    );
                }
            }
            if min > 0 {
                refused_at(
                    &with(min - 1),
                    10,
                    &format!("[limits] {key} = {}: expected {min} to {max}", min - 1),
                );
            }
        }
    }

    #[test]
    fn limits_table_is_usable_from_other_documents() {
        #[derive(Deserialize)]
        struct Settings {
            limits: LimitsTable,
        }
        let path = Path::new("corral.toml");
        let text = "[limits]\nthreads = 8\nopen_files = 4\n";
        let settings: Settings = toml::from_str(text).unwrap();
        let message = settings
            .limits
            .validate(path, text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "corral.toml:3:14: [limits] open_files = 4: expected 8 to 1048576"
        );
        let text = "[limits]\nthreads = 8\n";
        let settings: Settings = toml::from_str(text).unwrap();
        assert_eq!(
            settings.limits.validate(path, text).unwrap().threads,
            Some(8)
        );
        let text = "[limits]\nthraeds = 8\n";
        let error = toml::from_str::<Settings>(text).map(|_| ()).unwrap_err();
        let message = ManifestError::from_toml(path, text, &error).to_string();
        assert!(
            message.starts_with("corral.toml:2:1: unknown field `thraeds`"),
            "{message}"
        );
    }
}
