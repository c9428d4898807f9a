//! Crash reports under the state folder (`crashes/ID.json`, the folder
//! 0700 and each report 0600: readable by the supervisor's uid, and so by
//! admins through the host socket only). Written off the call path
//! (`spawn_blocking`), pruned by count and age, and a crash loop does not
//! fill the disk: a crash with the same plugin and cause as one reported
//! less than a minute before is counted in that report (`repeats`)
//! instead of written.

use corral_plugin_api::wire::{CrashReport, CrashSummary};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Crashes with one plugin and cause within this long share a report.
const SAME_CRASH: Duration = Duration::from_secs(60);

/// The crash reports of one supervisor.
pub(crate) struct CrashReports {
    /// `STATE/crashes`; `None` without a state folder (nothing is kept).
    dir: Option<PathBuf>,
    keep: usize,
    max_age: Duration,
    /// The last report written per plugin and cause: when, and its id.
    recent: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl CrashReports {
    pub(crate) fn new(state_dir: Option<&Path>, keep: u32, max_age: Duration) -> Self {
        Self {
            dir: state_dir.map(|dir| dir.join("crashes")),
            keep: keep as usize,
            max_age,
            recent: Mutex::default(),
        }
    }

    /// Writes `report`, or counts it in the report of the same crash
    /// written less than a minute ago; then prunes. Returns the id of the
    /// report that holds it. Blocking: call it off the async threads.
    pub(crate) fn record(&self, report: CrashReport) -> io::Result<Option<String>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let key = (report.plugin.clone(), cause_key(&report));
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, id)) = recent.get(&key)
            && at.elapsed() < SAME_CRASH
            && let Some(mut earlier) = self.get(id)
        {
            earlier.repeats = earlier.repeats.saturating_add(1);
            write(dir, &earlier)?;
            return Ok(Some(earlier.id));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        write(dir, &report)?;
        recent.insert(key, (Instant::now(), report.id.clone()));
        drop(recent);
        self.prune(dir);
        Ok(Some(report.id))
    }

    /// The reports, newest first; only `plugin`'s when given.
    pub(crate) fn list(&self, plugin: Option<&str>) -> Vec<CrashSummary> {
        let mut reports: Vec<CrashSummary> = self
            .reports()
            .filter(|report| plugin.is_none_or(|name| report.plugin == name))
            .map(|report| report.summary())
            .collect();
        reports.sort_by(|a, b| b.at_unix_ms.cmp(&a.at_unix_ms).then(b.id.cmp(&a.id)));
        reports
    }

    /// The report `id`.
    pub(crate) fn get(&self, id: &str) -> Option<CrashReport> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        read(&self.dir.as_ref()?.join(format!("{id}.json")))
    }

    fn reports(&self) -> impl Iterator<Item = CrashReport> {
        self.dir
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                (path.extension()? == "json").then(|| read(&path))?
            })
    }

    /// Removes reports older than the age limit, then the oldest past the
    /// count.
    fn prune(&self, dir: &Path) {
        let now = SystemTime::now();
        let mut kept: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .filter(|(modified, path)| {
                let old = now
                    .duration_since(*modified)
                    .is_ok_and(|age| age > self.max_age);
                if old {
                    let _ = fs::remove_file(path);
                }
                !old
            })
            .collect();
        kept.sort();
        let excess = kept.len().saturating_sub(self.keep);
        for (_, path) in kept.into_iter().take(excess) {
            let _ = fs::remove_file(path);
        }
    }
}

/// What makes two crashes the same: the classified cause and the signal
/// or exit code.
fn cause_key(report: &CrashReport) -> String {
    let exit = &report.exit;
    format!("{:?} {:?} {:?}", exit.cause, exit.signal, exit.code)
}

fn read(path: &Path) -> Option<CrashReport> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Writes `report` as `dir/ID.json`, 0600, whole or not at all.
fn write(dir: &Path, report: &CrashReport) -> io::Result<()> {
    let staged = dir.join(format!(".{}.tmp", report.id));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)?;
    serde_json::to_writer_pretty(&mut file, report).map_err(io::Error::other)?;
    drop(file);
    fs::rename(&staged, dir.join(format!("{}.json", report.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_plugin_api::wire::{EffectiveLimits, ExitCause, ExitInfo};

    fn report(id: &str, plugin: &str, signal: i32) -> CrashReport {
        CrashReport {
            id: id.to_owned(),
            plugin: plugin.to_owned(),
            version: "1.0.0".into(),
            dir: String::new(),
            entry: String::new(),
            entry_sha256: String::new(),
            pid: 1,
            generation: 1,
            exit: ExitInfo {
                at_unix_ms: id.split('-').next().unwrap().parse().unwrap(),
                code: None,
                signal: Some(signal),
                cause: ExitCause::Signal,
                description: format!("killed by signal {signal}"),
                output: Vec::new(),
            },
            limits: EffectiveLimits {
                memory_bytes: 0,
                cpu_seconds: None,
                cpu_percent: None,
                call_timeout_ms: 1,
                open_files: 1,
                threads: 1,
                file_size_bytes: 0,
                wasm_fuel: 0,
                storage_bytes: 0,
                storage_keys: 1000,
            },
            layers: Vec::new(),
            inputs_recorded: true,
            calls: Vec::new(),
            repeats: 0,
            backtrace: Vec::new(),
        }
    }

    #[test]
    fn the_same_crash_within_a_minute_is_counted_and_the_oldest_go() {
        let state = tempfile::tempdir().unwrap();
        let crashes = CrashReports::new(Some(state.path()), 2, Duration::from_secs(3600));
        assert_eq!(
            crashes.record(report("1-1", "a", 11)).unwrap().as_deref(),
            Some("1-1")
        );
        // Same plugin and cause: counted in the first.
        assert_eq!(
            crashes.record(report("2-2", "a", 11)).unwrap().as_deref(),
            Some("1-1")
        );
        assert_eq!(crashes.get("1-1").unwrap().repeats, 1);
        assert!(crashes.get("2-2").is_none());
        // Another cause, another plugin: reports of their own; the count
        // keeps the newest two.
        crashes.record(report("3-3", "a", 6)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        crashes.record(report("4-4", "b", 11)).unwrap();
        let ids: Vec<String> = crashes.list(None).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["4-4", "3-3"]);
        assert_eq!(crashes.list(Some("b")).len(), 1);
        // Ids are never paths.
        assert!(crashes.get("../etc/passwd").is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(state.path().join("crashes"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
}
