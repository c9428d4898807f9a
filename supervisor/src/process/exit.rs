//! How a worker ended, in words people and programs can use.

use crate::observe::clock::now_ms;
use corral_plugin_api::wire::{ExitCause, ExitInfo};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

/// Describes a reaped worker's status. `verdict` is what the supervisor
/// did to the worker and why (it outranks what the status alone says);
/// `detail` is the worker's own last words.
pub(crate) fn exit_info(
    status: WaitStatus,
    verdict: Option<(ExitCause, &str)>,
    detail: Option<&str>,
) -> ExitInfo {
    let (code, signal, cause, mut description) = match status {
        WaitStatus::Exited(_, code) => (
            Some(code),
            None,
            if code == 0 {
                ExitCause::Clean
            } else {
                ExitCause::ExitCode
            },
            format!("exited with code {code}"),
        ),
        WaitStatus::Signaled(_, signal, core) => (
            None,
            Some(signal as i32),
            match signal {
                Signal::SIGSYS => ExitCause::Seccomp,
                Signal::SIGXCPU => ExitCause::CpuLimit,
                Signal::SIGXFSZ => ExitCause::FileSizeLimit,
                _ => ExitCause::Signal,
            },
            format!(
                "killed by signal {} ({}){}",
                signal as i32,
                signal.as_str(),
                if core { ", core dumped" } else { "" }
            ),
        ),
        other => (None, None, ExitCause::Signal, format!("ended: {other:?}")),
    };
    let cause = match verdict {
        Some((cause, why)) => {
            description.push_str(": ");
            description.push_str(why);
            cause
        }
        // A killed syscall the worker could not report: it had SIGSYS
        // blocked (the kernel then kills without running the reporter), or
        // it made a 32-bit syscall, which fails the architecture check.
        None if cause == ExitCause::Seccomp => {
            description.push_str(
                ": a forbidden syscall, unnamed (SIGSYS was blocked, or it was a 32-bit syscall)",
            );
            cause
        }
        None => cause,
    };
    if let Some(detail) = detail {
        description.push_str(": ");
        description.push_str(detail);
    }
    ExitInfo {
        at_unix_ms: now_ms(),
        code,
        signal,
        cause,
        description,
        output: Vec::new(),
    }
}

/// Reclassifies a `SIGKILL` that came with a new OOM kill in the worker's
/// cgroup (`memory.events`).
pub(crate) fn oom_killed(mut exit: ExitInfo) -> ExitInfo {
    if exit.signal == Some(libc::SIGKILL) {
        exit.cause = ExitCause::OutOfMemory;
        exit.description
            .push_str(": out of memory (cgroup memory.max)");
    }
    exit
}

/// Adds the worker's last output lines, and tells an allocation that
/// failed under `RLIMIT_DATA` (Rust's handler prints it, then aborts) from
/// another abort.
pub(crate) fn with_output(mut exit: ExitInfo, output: Vec<String>) -> ExitInfo {
    let allocation_failed = output
        .iter()
        .any(|line| line.contains("memory allocation of") && line.contains("failed"));
    if exit.cause == ExitCause::Signal && exit.signal == Some(libc::SIGABRT) && allocation_failed {
        exit.cause = ExitCause::OutOfMemory;
        exit.description
            .push_str(": out of memory (an allocation failed under the memory limit)");
    }
    exit.output = output;
    exit
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    #[test]
    fn describes_and_classifies_exits() {
        let pid = Pid::from_raw(1);
        let exited = exit_info(WaitStatus::Exited(pid, 3), None, Some("cannot load x.so"));
        assert_eq!(
            (exited.code, exited.signal, exited.cause),
            (Some(3), None, ExitCause::ExitCode)
        );
        assert_eq!(exited.description, "exited with code 3: cannot load x.so");
        assert_eq!(
            exit_info(WaitStatus::Exited(pid, 0), None, None).cause,
            ExitCause::Clean
        );

        let killed = exit_info(
            WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            None,
            None,
        );
        assert_eq!(
            (killed.code, killed.signal, killed.cause),
            (None, Some(9), ExitCause::Signal)
        );
        assert_eq!(killed.description, "killed by signal 9 (SIGKILL)");

        let aborted = exit_info(WaitStatus::Signaled(pid, Signal::SIGABRT, true), None, None);
        assert_eq!(
            aborted.description,
            "killed by signal 6 (SIGABRT), core dumped"
        );

        let unreported = exit_info(WaitStatus::Signaled(pid, Signal::SIGSYS, false), None, None);
        assert!(
            unreported.description.ends_with(
                "a forbidden syscall, unnamed (SIGSYS was blocked, or it was a 32-bit syscall)"
            ),
            "{}",
            unreported.description
        );
        for (signal, cause) in [
            (Signal::SIGSYS, ExitCause::Seccomp),
            (Signal::SIGXCPU, ExitCause::CpuLimit),
            (Signal::SIGXFSZ, ExitCause::FileSizeLimit),
        ] {
            assert_eq!(
                exit_info(WaitStatus::Signaled(pid, signal, false), None, None).cause,
                cause
            );
        }

        let deadline = exit_info(
            WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            Some((ExitCause::CallDeadline, "a call missed the 300 ms deadline")),
            None,
        );
        assert_eq!(deadline.cause, ExitCause::CallDeadline);
        assert_eq!(
            deadline.description,
            "killed by signal 9 (SIGKILL): a call missed the 300 ms deadline"
        );

        let abort = || {
            exit_info(
                WaitStatus::Signaled(pid, Signal::SIGABRT, false),
                None,
                None,
            )
        };
        let oom = with_output(
            abort(),
            vec!["memory allocation of 1048576 bytes failed".into()],
        );
        assert_eq!(oom.cause, ExitCause::OutOfMemory);
        assert_eq!(oom.output.len(), 1);
        let other = with_output(abort(), vec!["assertion failed".into()]);
        assert_eq!(other.cause, ExitCause::Signal);

        let kill = || {
            exit_info(
                WaitStatus::Signaled(pid, Signal::SIGKILL, false),
                None,
                None,
            )
        };
        assert_eq!(oom_killed(kill()).cause, ExitCause::OutOfMemory);
        assert_eq!(oom_killed(abort()).cause, ExitCause::Signal);
    }
}
