//! Crash reports: what a worker's flight recorder keeps of its last calls
//! ([`Recording`], [`RecordedCall`], in its stats page), and what corral
//! keeps when a worker dies other than by the supervisor's own stop, for
//! `corral crashes`, `corral crash ID` and `corral replay ID`.

use super::host::{EffectiveLimits, ExitInfo};
use super::worker::Layer;
use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};

/// How many of a worker's last calls its flight recorder keeps, and
/// their bytes (method and input) in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Recording {
    /// Calls kept (0: none recorded).
    pub calls: u32,
    /// Bytes of the calls kept, shared evenly among them.
    pub bytes: u32,
    /// Keep the inputs (`[debug] record`); else only methods, times and
    /// lengths.
    pub inputs: bool,
}

/// How a recorded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// It was in flight when the worker died.
    InFlight,
    /// It was answered.
    Answered,
    /// It failed with an error of this kind.
    Failed(ErrorKind),
}

/// A call the flight recorder kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCall {
    /// Its number among the calls the worker began.
    pub seq: u64,
    /// When it began, in Unix milliseconds.
    pub started_unix_ms: u64,
    /// How it ended, or that it was in flight when the worker died.
    pub ended: CallEnd,
    /// `None`: from the supervisor (a relayed call); `Some(k)`: from
    /// direct channel `k` (in the order the channels were attached).
    pub direct_channel: Option<u32>,
    /// The method.
    pub method: String,
    /// The input's whole length.
    pub input_len: u32,
    /// The input, or as much of it as the budget kept.
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
}

/// One crash, as stored under the state folder (`crashes/ID.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    /// `UNIX_MS-PID`: when and which worker.
    pub id: String,
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// Its folder.
    pub dir: String,
    /// Its entry (library, module or bundle), absolute.
    pub entry: String,
    /// The entry's SHA-256 when the worker started.
    pub entry_sha256: String,
    /// The worker's pid.
    pub pid: u32,
    /// The worker's generation (hot reloads).
    pub generation: u64,
    /// How the worker ended, classified, with its last output lines.
    pub exit: ExitInfo,
    /// The limits it ran under.
    pub limits: EffectiveLimits,
    /// Its sandbox layers, as checked at start.
    pub layers: Vec<Layer>,
    /// Whether call inputs were recorded (`[debug] record`).
    pub inputs_recorded: bool,
    /// The calls its flight recorder kept, oldest first: the last ones
    /// before the crash and those in flight (`ended: None`).
    pub calls: Vec<RecordedCall>,
    /// Later crashes with the same cause within a minute, counted here
    /// instead of reported each.
    pub repeats: u32,
    /// A native plugin's crashing thread, innermost frame first: the
    /// plugin's frames symbolized when it has debug info (`FUNCTION at
    /// FILE:LINE (LIB+0xOFFSET)`), others as addresses.
    #[serde(default)]
    pub backtrace: Vec<String>,
}

/// A crash report in a list: `corral crashes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashSummary {
    /// See [`CrashReport::id`].
    pub id: String,
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// When, in Unix milliseconds.
    pub at_unix_ms: u64,
    /// The cause, one line.
    pub cause: String,
    /// Calls recorded.
    pub calls: usize,
    /// Of them, in flight when the worker died.
    pub in_flight: usize,
    /// See [`CrashReport::repeats`].
    pub repeats: u32,
}

impl CrashReport {
    /// This report in a list.
    pub fn summary(&self) -> CrashSummary {
        CrashSummary {
            id: self.id.clone(),
            plugin: self.plugin.clone(),
            version: self.version.clone(),
            at_unix_ms: self.exit.at_unix_ms,
            cause: self.exit.description.clone(),
            calls: self.calls.len(),
            in_flight: self
                .calls
                .iter()
                .filter(|call| call.ended == CallEnd::InFlight)
                .count(),
            repeats: self.repeats,
        }
    }
}
