//! cgroup v2 limits, only inside a delegated subtree the admin configured
//! (`corral serve --cgroup DIR`, e.g. a systemd unit's `Delegate=yes`
//! cgroup). corral never touches any other part of the cgroup tree; without
//! a subtree, rlimits and the watchdog cover memory, CPU and threads.
//!
//! Each plugin gets `DIR/NAME` with `memory.max`, `pids.max` and `cpu.max`;
//! a new worker is moved into it before it is sent `Hello`, so no plugin
//! code runs outside it. `memory.events` tells an OOM kill apart from other
//! `SIGKILL`s.

use corral_plugin_api::wire::EffectiveLimits;
use std::io;
use std::path::{Path, PathBuf};

/// One plugin's cgroup.
#[derive(Debug, Clone)]
pub(crate) struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// The cgroup for plugin `name` under the delegated `subtree`.
    pub(crate) fn new(subtree: &Path, name: &str) -> Self {
        Self {
            dir: subtree.join(name),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the cgroup (if needed) and writes its limits.
    pub(crate) fn prepare(&self, limits: &EffectiveLimits) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let cpu = limits.cpu_percent.map_or_else(
            || "max 100000".to_owned(),
            |percent| format!("{} 100000", percent.saturating_mul(1000)),
        );
        for (file, value) in [
            ("memory.max", limits.memory_bytes.to_string()),
            ("pids.max", limits.threads.to_string()),
            ("cpu.max", cpu),
        ] {
            std::fs::write(self.dir.join(file), value).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", self.dir.join(file).display()))
            })?;
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup.
    pub(crate) fn add(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// The `oom_kill` count of `memory.events`, if readable.
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        let events = std::fs::read_to_string(self.dir.join("memory.events")).ok()?;
        events
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|count| count.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EffectiveLimits {
        EffectiveLimits {
            memory_bytes: 64 << 20,
            cpu_seconds: None,
            cpu_percent: Some(50),
            call_timeout_ms: 1000,
            open_files: 64,
            threads: 16,
            file_size_bytes: 1 << 20,
            wasm_fuel: 0,
            storage_bytes: 1 << 20,
        }
    }

    #[test]
    fn writes_limits_and_members_into_its_own_folder() {
        let subtree = tempfile::tempdir().unwrap();
        let cgroup = Cgroup::new(subtree.path(), "hello");
        cgroup.prepare(&limits()).unwrap();
        cgroup.add(4242).unwrap();
        let read =
            |file: &str| std::fs::read_to_string(subtree.path().join("hello").join(file)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "16");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cgroup.procs"), "4242");
        assert_eq!(cgroup.oom_kills(), None);
        std::fs::write(
            subtree.path().join("hello/memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cgroup.oom_kills(), Some(2));
    }
}
