//! Effective limits: what a plugin's `[limits]` asks for, filled in with
//! the supervisor's defaults. Pure; applied by `sandbox` (rlimits) and
//! `worker` (call deadlines).

use corral_plugin_api::manifest::Limits;
use corral_plugin_api::wire::EffectiveLimits;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Supervisor-wide defaults for limits a manifest leaves unset.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub(crate) memory_mb: u64,
    pub(crate) call_timeout: Duration,
    pub(crate) open_files: u64,
    pub(crate) threads: u64,
    pub(crate) file_size_mb: u64,
}

impl Defaults {
    pub(crate) fn new(call_timeout: Duration) -> Self {
        Self {
            memory_mb: 256,
            call_timeout,
            open_files: 64,
            threads: 64,
            file_size_mb: 64,
        }
    }

    /// `asked`, with these defaults where it is silent.
    pub(crate) fn apply(&self, asked: &Limits) -> EffectiveLimits {
        EffectiveLimits {
            memory_bytes: asked
                .memory_mb
                .unwrap_or(self.memory_mb)
                .saturating_mul(MIB),
            cpu_seconds: asked.cpu_seconds,
            cpu_percent: asked.cpu_percent,
            call_timeout_ms: asked.call_timeout_ms.unwrap_or_else(|| {
                u64::try_from(self.call_timeout.as_millis()).unwrap_or(u64::MAX)
            }),
            open_files: asked.open_files.unwrap_or(self.open_files),
            threads: asked.threads.unwrap_or(self.threads),
            wasm_fuel: asked.wasm_fuel.unwrap_or(0),
            file_size_bytes: asked
                .file_size_mb
                .unwrap_or(self.file_size_mb)
                .saturating_mul(MIB),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_values_win_over_defaults() {
        let defaults = Defaults::new(Duration::from_secs(30));
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
}
