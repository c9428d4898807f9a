//! Effective limits: what a plugin's `[limits]` asks for, filled in with
//! the supervisor's defaults. Pure; applied by `sandbox` (rlimits) and
//! `worker` (call deadlines).

use corral_plugin_api::manifest::Limits;
use corral_plugin_api::wire::EffectiveLimits;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Keys a plugin's storage holds unless its manifest says otherwise.
const DEFAULT_STORAGE_KEYS: u64 = 1_000_000;

/// Supervisor-wide defaults for limits a manifest leaves unset: the
/// `[limits]` of corral.toml, then corral's own.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    call_timeout: Duration,
    limits: Limits,
}

impl Defaults {
    pub(crate) fn new(call_timeout: Duration, limits: &Limits) -> Self {
        Self {
            call_timeout,
            limits: limits.clone(),
        }
    }

    /// `asked`, with these defaults where it is silent.
    pub(crate) fn apply(&self, asked: &Limits) -> EffectiveLimits {
        let d = &self.limits;
        EffectiveLimits {
            memory_bytes: asked
                .memory_mb
                .or(d.memory_mb)
                .unwrap_or(256)
                .saturating_mul(MIB),
            cpu_seconds: asked.cpu_seconds.or(d.cpu_seconds),
            cpu_percent: asked.cpu_percent.or(d.cpu_percent),
            call_timeout_ms: asked.call_timeout_ms.unwrap_or_else(|| {
                u64::try_from(self.call_timeout.as_millis()).unwrap_or(u64::MAX)
            }),
            open_files: asked.open_files.or(d.open_files).unwrap_or(64),
            threads: asked.threads.or(d.threads).unwrap_or(64),
            wasm_fuel: asked.wasm_fuel.or(d.wasm_fuel).unwrap_or(0),
            file_size_bytes: asked
                .file_size_mb
                .or(d.file_size_mb)
                .unwrap_or(64)
                .saturating_mul(MIB),
            storage_bytes: asked
                .storage_mb
                .or(d.storage_mb)
                .unwrap_or(16)
                .saturating_mul(MIB),
            storage_keys: asked
                .storage_keys
                .or(d.storage_keys)
                .unwrap_or(DEFAULT_STORAGE_KEYS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_values_win_over_defaults() {
        let defaults = Defaults::new(Duration::from_secs(30), &Limits::default());
        let silent = defaults.apply(&Limits::default());
        assert_eq!(silent.memory_bytes, 256 * MIB);
        assert_eq!(silent.call_timeout_ms, 30_000);
        assert_eq!(silent.cpu_seconds, None);
        let asked = Limits {
            memory_mb: Some(64),
            call_timeout_ms: Some(250),
            cpu_seconds: Some(5),
            open_files: Some(16),
            ..Limits::default()
        };
        let effective = defaults.apply(&asked);
        assert_eq!(effective.memory_bytes, 64 * MIB);
        assert_eq!(effective.call_timeout_ms, 250);
        assert_eq!(effective.cpu_seconds, Some(5));
        assert_eq!(effective.open_files, 16);
        assert_eq!(effective.file_size_bytes, 64 * MIB);
    }

    #[test]
    fn supervisor_defaults_sit_between() {
        let supervisor = Limits {
            memory_mb: Some(128),
            threads: Some(8),
            ..Limits::default()
        };
        let defaults = Defaults::new(Duration::from_secs(30), &supervisor);
        let silent = defaults.apply(&Limits::default());
        assert_eq!(silent.memory_bytes, 128 * MIB);
        assert_eq!(silent.threads, 8);
        assert_eq!(silent.open_files, 64);
        let asked = defaults.apply(&Limits {
            memory_mb: Some(32),
            ..Limits::default()
        });
        assert_eq!(asked.memory_bytes, 32 * MIB);
    }
}
