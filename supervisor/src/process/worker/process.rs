//! A worker's process, watched through its pidfd: waited for, reaped,
//! and signalled as a process group.

use crate::process::refusals;
use corral_plugin_api::wire::SpawnMode;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::warn;

/// A worker's process, watched through its pidfd, and the task that
/// answers its seccomp referrals.
pub(crate) struct Process {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    mode: SpawnMode,
    _refusals: refusals::Watch,
}

impl Process {
    #[allow(unsafe_code, reason = "registers the pidfd with tokio")]
    pub(super) fn new(
        pid: u32,
        pidfd: OwnedFd,
        mode: SpawnMode,
        refusals: refusals::Watch,
    ) -> io::Result<Self> {
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the
        // same for the AsyncFd's whole life.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self {
            pid,
            pidfd,
            mode,
            _refusals: refusals,
        })
    }

    /// Waits for the process to exit and reaps it. Cancel-safe.
    pub(super) async fn wait(&self) -> WaitStatus {
        let pidfd = || Id::PIDFd(self.pidfd.get_ref().as_fd());
        loop {
            let mut ready = match self.pidfd.readable().await {
                Ok(ready) => ready,
                Err(error) => {
                    warn!(pid = self.pid, "pidfd poll failed: {error}");
                    return WaitStatus::StillAlive;
                }
            };
            let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(pidfd(), peek) {
                Ok(WaitStatus::StillAlive) => {
                    ready.clear_ready();
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                _ => {}
            }
            // Exited but not reaped: kill what it left in its process group
            // while the group id cannot be reused, then reap.
            self.signal_group(Signal::SIGKILL);
            match waitid(pidfd(), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
                Ok(status) => return status,
                Err(error) => {
                    warn!(pid = self.pid, "waitid failed: {error}");
                    return WaitStatus::StillAlive;
                }
            }
        }
    }

    /// The wait status of a worker that has begun to exit and is not yet
    /// reaped, from `/proc/PID/stat`: the kernel records it as the exit
    /// begins, before the worker's fds close, while the pidfd becomes
    /// readable only once the exit is over (its address space and
    /// namespaces torn down, a few hundred microseconds later). `None`
    /// when the worker is not exiting, or the status is not readable (it
    /// then shows as 0).
    pub(super) fn exiting(&self) -> Option<WaitStatus> {
        /// `PF_EXITING` in the `flags` field.
        const EXITING: u64 = 0x4;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields from 3 (state) on, after the parenthesized name.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 2..)?
            .split_whitespace()
            .collect();
        let flags: u64 = fields.get(9 - 3)?.parse().ok()?;
        let code: i32 = fields.get(52 - 3)?.parse().ok()?;
        if flags & EXITING == 0 || code == 0 {
            return None;
        }
        WaitStatus::from_raw(nix::unistd::Pid::from_raw(self.pid as i32), code).ok()
    }

    /// Sends `signal` to the worker's process group (the worker leads its
    /// own session). Only valid before the worker is reaped.
    pub(super) fn signal_group(&self, signal: Signal) {
        let pgid = nix::unistd::Pid::from_raw(self.pid as i32);
        match nix::sys::signal::killpg(pgid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => warn!(pid = self.pid, "killpg({signal}) failed: {error}"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Forked from a zygote or executed afresh.
    pub(crate) fn mode(&self) -> SpawnMode {
        self.mode
    }
}

/// The worker's last output lines, once its pipe is drained (a grandchild
/// holding the pipe open is not waited for).
pub(super) async fn last_output(output: JoinHandle<Vec<String>>) -> Vec<String> {
    match timeout(Duration::from_millis(200), output).await {
        Ok(Ok(lines)) => lines,
        _ => Vec::new(),
    }
}
