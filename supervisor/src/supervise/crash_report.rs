//! Crash reports: what is known of a worker that died, gathered when its
//! controller sees the end (the plugin's build, limits, sandbox layers,
//! the calls its flight recorder kept, the crashing thread's frames) and
//! written by [`crate::observe::crashes`].

use crate::process::worker::Ended;
use crate::supervise::handle::{PluginHandle, Supervision};
use corral_plugin_api::wire::{CrashReport, ExitCause};
use tracing::{info, warn};

/// Writes a crash report for `plugin`'s worker `pid`, which ended as
/// `ended` other than by the supervisor's stop or a clean exit; off the
/// async threads (the entry's hash and the symbols are read from disk).
pub(crate) fn write(plugin: &PluginHandle, supervision: &Supervision, pid: u32, ended: &Ended) {
    if matches!(ended.exit.cause, ExitCause::Stopped | ExitCause::Clean) {
        return;
    }
    let spec = plugin.spec();
    let (generation, layers) = {
        let status = plugin.status();
        (status.generation, status.layers.clone())
    };
    let manifest = &spec.plugin.manifest;
    let entry = spec.plugin.entry.clone();
    let report = CrashReport {
        id: format!("{}-{}", ended.exit.at_unix_ms, pid),
        plugin: manifest.name.clone(),
        version: manifest.version.to_string(),
        dir: spec.plugin.dir.display().to_string(),
        entry: entry.display().to_string(),
        entry_sha256: String::new(),
        pid,
        generation,
        exit: ended.exit.clone(),
        limits: spec.limits.clone(),
        layers,
        inputs_recorded: manifest.record && supervision.recording.calls > 0,
        calls: ended.recorded.clone(),
        repeats: 0,
        backtrace: Vec::new(),
    };
    let frames = ended.crash_frames.clone();
    let crashes = supervision.crashes.clone();
    let name = manifest.name.clone();
    tokio::task::spawn_blocking(move || {
        let mut report = report;
        report.entry_sha256 = std::fs::File::open(&entry)
            .and_then(|file| crate::process::integrity::file_sha256(&file))
            .unwrap_or_default();
        if let Some(frames) = frames {
            report.backtrace = crate::observe::symbols::backtrace(&frames, &entry);
        }
        match crashes.record(report) {
            Ok(Some(id)) => info!(plugin = %name, "crash report {id}"),
            Ok(None) => {}
            Err(error) => warn!(plugin = %name, "cannot write a crash report: {error}"),
        }
    });
}
