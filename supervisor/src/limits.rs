//! Effective limits: what a plugin's `[limits]` asks for, filled in with
//! the supervisor's defaults. Pure; applied by `sandbox` (rlimits) and
//! `worker` (call deadlines).

use corral_plugin_api::manifest::Limits;
use serde::Serialize;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// The limits a worker runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EffectiveLimits {
    /// `RLIMIT_DATA`, bytes.
    pub(crate) memory_bytes: u64,
    /// `RLIMIT_CPU`, seconds; `None` = unlimited.
    pub(crate) cpu_seconds: Option<u64>,
    /// A call's deadline; a worker that misses it is killed.
    #[serde(rename = "call_timeout_ms", serialize_with = "as_millis")]
    pub(crate) call_timeout: Duration,
    /// `RLIMIT_NOFILE`.
    pub(crate) open_files: u64,
    /// `RLIMIT_NPROC`, when it can be enforced (see `sandbox`).
    pub(crate) threads: u64,
    /// `RLIMIT_FSIZE`, bytes.
    pub(crate) file_size_bytes: u64,
}

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
            call_timeout: asked
                .call_timeout_ms
                .map_or(self.call_timeout, Duration::from_millis),
            open_files: asked.open_files.unwrap_or(self.open_files),
            threads: asked.threads.unwrap_or(self.threads),
            file_size_bytes: asked
                .file_size_mb
                .unwrap_or(self.file_size_mb)
                .saturating_mul(MIB),
        }
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_values_win_over_defaults() {
        let defaults = Defaults::new(Duration::from_secs(30));
        let silent = defaults.apply(&Limits::default());
        assert_eq!(silent.memory_bytes, 256 * MIB);
        assert_eq!(silent.call_timeout, Duration::from_secs(30));
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
        assert_eq!(effective.call_timeout, Duration::from_millis(250));
        assert_eq!(effective.cpu_seconds, Some(5));
        assert_eq!(effective.open_files, 16);
        assert_eq!(effective.file_size_bytes, 64 * MIB);
    }
}
