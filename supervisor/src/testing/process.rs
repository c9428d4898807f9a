//! The processes a test sees, by pid: signalling them, and telling a live
//! worker from a zombie or a reused pid.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;

/// Sends `signal` (a number, `libc::SIGKILL`) to `pid`.
pub fn send_signal(pid: u32, signal: i32) {
    let signal = Signal::try_from(signal).unwrap_or_else(|_| panic!("{signal} is not a signal"));
    let _ = kill(pid_of(pid), signal);
}

pub(super) fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).expect("a pid fits in i32"))
}

/// Field `field` of `/proc/PID/stat`, numbered from 1 as proc(5) does
/// (3 is the state, 4 the parent, 5 the process group, 22 the start
/// time); `None` when there is no such process or field. Fields are
/// counted after the parenthesised command name, which may hold spaces.
pub fn stat_field(pid: u32, field: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields
        .split_whitespace()
        .nth(field.checked_sub(3)?)
        .map(str::to_owned)
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_alive(pid: u32) -> bool {
    stat_field(pid, 3).is_some_and(|state| !state.starts_with(['Z', 'X']))
}

/// A process's command line, NUL separators turned into spaces.
pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim_end()
                .to_owned()
        })
        .unwrap_or_default()
}

/// When `pid` started, in clock ticks after boot (`/proc/PID/stat` field
/// 22): with the pid, it names one process even after the pid is reused.
/// `None` when there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Whether the process that had `start_time` `started` when it was seen
/// as `pid` is still running (not a zombie, and the pid not reused).
pub fn still_running(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started) && is_alive(pid)
}

/// Whether `pid` is a live corral worker.
pub fn is_worker(pid: u32) -> bool {
    is_alive(pid) && cmdline(pid).starts_with("corral-worker: ")
}
