//! How a worker ended, in words people and programs can use.

use corral_plugin_api::wire::ExitInfo;
use nix::sys::wait::WaitStatus;
use std::time::{SystemTime, UNIX_EPOCH};

/// Describes a reaped worker's status; `detail` (a worker's own last words,
/// or why the supervisor killed it) is appended when present.
pub(crate) fn exit_info(status: WaitStatus, detail: Option<&str>) -> ExitInfo {
    let (code, signal, mut description) = match status {
        WaitStatus::Exited(_, code) => (Some(code), None, format!("exited with code {code}")),
        WaitStatus::Signaled(_, signal, core) => (
            None,
            Some(signal as i32),
            format!(
                "killed by signal {} ({}){}",
                signal as i32,
                signal.as_str(),
                if core { ", core dumped" } else { "" }
            ),
        ),
        other => (None, None, format!("ended: {other:?}")),
    };
    if let Some(detail) = detail {
        description.push_str(": ");
        description.push_str(detail);
    }
    ExitInfo {
        at_unix_ms: unix_ms(SystemTime::now()),
        code,
        signal,
        description,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn describes_exits_and_signals() {
        let pid = Pid::from_raw(1);
        let exited = exit_info(WaitStatus::Exited(pid, 3), Some("cannot load x.so"));
        assert_eq!((exited.code, exited.signal), (Some(3), None));
        assert_eq!(exited.description, "exited with code 3: cannot load x.so");

        let killed = exit_info(WaitStatus::Signaled(pid, Signal::SIGKILL, false), None);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert_eq!(killed.description, "killed by signal 9 (SIGKILL)");

        let aborted = exit_info(WaitStatus::Signaled(pid, Signal::SIGABRT, true), None);
        assert_eq!(
            aborted.description,
            "killed by signal 6 (SIGABRT), core dumped"
        );
    }
}
