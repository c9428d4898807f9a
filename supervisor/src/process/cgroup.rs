//! cgroup v2 limits, only inside a delegated subtree the admin configured
//! (`corral serve --cgroup DIR`, e.g. a systemd unit's `Delegate=yes`
//! cgroup). corral never touches any other part of the cgroup tree; without
//! a subtree, rlimits and the watchdog cover memory, CPU and threads.
//!
//! Each plugin gets `DIR/NAME` with `memory.max`, `pids.max` and `cpu.max`;
//! a new worker is moved into it before it is sent `Hello`, so no plugin
//! code runs outside it. `memory.events` tells an OOM kill apart from other
//! `SIGKILL`s.
//!
//! `cgroup = "auto"` takes the subtree systemd delegates to the unit
//! (`Delegate=yes`): see [`delegated`].

use corral_plugin_api::wire::EffectiveLimits;
use corral_plugin_api::wire::Layer;
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

    /// The cgroup layer of worker `pid`, as `corral inspect` shows it: in
    /// force when the worker is listed in its `cgroup.procs`.
    pub(crate) fn layer(&self, pid: u32) -> Layer {
        let members = std::fs::read_to_string(self.dir().join("cgroup.procs")).unwrap_or_default();
        Layer {
            name: "cgroup".into(),
            active: members
                .split_whitespace()
                .any(|member| member == pid.to_string()),
            detail: format!("{}: memory.max, pids.max, cpu.max", self.dir().display()),
        }
    }
}

/// Makes corral's own cgroup v2 (named by `proc_self_cgroup`, the text of
/// `/proc/self/cgroup`, under the hierarchy mounted at `root`) the
/// subtree for its plugins, as a systemd unit with `Delegate=yes` hands it
/// over: corral moves itself into a `supervisor` leaf (a cgroup that gives
/// controllers to children may hold no processes itself) and enables the
/// memory, pids and cpu controllers for its children. Returns the
/// subtree.
pub(crate) fn delegated(root: &Path, proc_self_cgroup: &str) -> io::Result<PathBuf> {
    let own = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| {
            io::Error::other("not in a cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)")
        })?;
    let subtree = root.join(own.trim().trim_start_matches('/'));
    if !subtree.join("cgroup.subtree_control").is_file() {
        return Err(io::Error::other(format!(
            "{}: not a cgroup v2 folder (is the unit's Delegate=yes set?)",
            subtree.display()
        )));
    }
    let leaf = subtree.join("supervisor");
    std::fs::create_dir_all(&leaf)?;
    let pid = std::process::id().to_string();
    let write = |file: PathBuf, value: &str| {
        std::fs::write(&file, value)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))
    };
    write(leaf.join("cgroup.procs"), &pid)?;
    write(subtree.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
    Ok(subtree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_its_own_cgroup_and_moves_into_a_leaf() {
        let root = tempfile::tempdir().unwrap();
        let unit = root.path().join("system.slice/corral.service");
        std::fs::create_dir_all(&unit).unwrap();
        std::fs::write(unit.join("cgroup.subtree_control"), "").unwrap();
        let own = "1:name=systemd:/system.slice/corral.service\n0::/system.slice/corral.service\n";
        assert_eq!(delegated(root.path(), own).unwrap(), unit);
        let read = |file: &str| std::fs::read_to_string(unit.join(file)).unwrap();
        assert_eq!(
            read("supervisor/cgroup.procs"),
            std::process::id().to_string()
        );
        assert_eq!(read("cgroup.subtree_control"), "+memory +pids +cpu");

        let v1 = delegated(root.path(), "1:cpu:/x\n").unwrap_err();
        assert!(
            v1.to_string().contains("not in a cgroup v2 hierarchy"),
            "{v1}"
        );
        let undelegated = delegated(root.path(), "0::/user.slice\n").unwrap_err();
        assert!(
            undelegated.to_string().contains("Delegate=yes"),
            "{undelegated}"
        );
    }

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
            storage_keys: 1000,
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
