//! The part of the worker sandbox the supervisor applies between `fork` and
//! `exec`. Everything here runs in the forked child of a multi-threaded
//! process, so it must be async-signal-safe: raw syscalls only, no
//! allocation, no locks, no logging.
//!
//! In order: a new session (own process group), the channel on fd 3, every
//! other fd above 2 closed at exec, rlimits (data memory, open files, file
//! size, CPU time, no core dumps), no new privileges, and death with the
//! supervisor (`PR_SET_PDEATHSIG`, re-checked against a parent that is
//! already gone). [`ChildSetup`] is computed before the fork.
#![allow(unsafe_code, reason = "raw syscalls between fork and exec")]

use corral_plugin_api::wire::EffectiveLimits;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::io;
use std::os::fd::RawFd;

/// Resource limits a worker gets, in the order they are set.
const LIMITED: [Resource; 5] = [
    Resource::RLIMIT_DATA,
    Resource::RLIMIT_NOFILE,
    Resource::RLIMIT_FSIZE,
    Resource::RLIMIT_CPU,
    Resource::RLIMIT_CORE,
];

/// What the child applies, prepared before the fork: plain numbers only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildSetup {
    /// (soft, hard) for each of [`LIMITED`].
    rlimits: [(u64, u64); LIMITED.len()],
}

impl ChildSetup {
    /// The setup for `limits`. Hard limits above the supervisor's own are
    /// lowered to it (raising them needs privilege).
    pub(crate) fn new(limits: &EffectiveLimits) -> Self {
        let infinity = libc::RLIM_INFINITY;
        let cpu = limits.cpu_seconds.map_or((infinity, infinity), |secs| {
            // SIGXCPU at the soft limit, SIGKILL a second later.
            (secs, secs.saturating_add(1))
        });
        let wanted = [
            (limits.memory_bytes, limits.memory_bytes),
            (limits.open_files, limits.open_files),
            (limits.file_size_bytes, limits.file_size_bytes),
            cpu,
            (0, 0),
        ];
        let mut rlimits = wanted;
        for (limit, resource) in rlimits.iter_mut().zip(LIMITED) {
            let ceiling = getrlimit(resource).map_or(infinity, |(_, hard)| hard);
            limit.1 = limit.1.min(ceiling);
            limit.0 = limit.0.min(limit.1);
        }
        Self { rlimits }
    }
}

/// The fd a worker finds its channel on.
pub(crate) const CHANNEL_FD: RawFd = 3;

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in the child after `fork`, before `exec`. `channel` is the child's
/// end of the socketpair; `supervisor` is the pid of the forking process.
pub(crate) fn before_exec(
    channel: RawFd,
    supervisor: libc::pid_t,
    setup: &ChildSetup,
) -> io::Result<()> {
    // SAFETY: setsid takes no arguments; the child is not a group leader.
    check(unsafe { libc::setsid() }.into())?;

    if channel == CHANNEL_FD {
        // SAFETY: clears FD_CLOEXEC on an fd this process owns.
        check(unsafe { libc::fcntl(CHANNEL_FD, libc::F_SETFD, 0) }.into())?;
    } else {
        // SAFETY: dup2 onto fd 3; the copy does not carry FD_CLOEXEC. The
        // original keeps it and closes at exec.
        check(unsafe { libc::dup2(channel, CHANNEL_FD) }.into())?;
    }

    // Everything above fd 3 closes at exec. CLOEXEC rather than close, so
    // std's own exec-error pipe keeps working.
    // SAFETY: close_range only changes fd flags; the range is valid.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            CHANNEL_FD + 1,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })?;

    for (resource, (soft, hard)) in LIMITED.into_iter().zip(setup.rlimits) {
        setrlimit(resource, soft, hard)?;
    }

    // SAFETY: PR_SET_NO_NEW_PRIVS takes flag 1 and zeros.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;

    // SAFETY: PR_SET_PDEATHSIG takes a signal number.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) }.into())?;
    // The supervisor may have died before the prctl: then nobody would
    // send the signal.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != supervisor {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Checks from outside that a worker that said `Ready` is confined:
/// `/proc/PID/status` must show `NoNewPrivs: 1` and `Seccomp: 2` (filter
/// mode) for every one of its threads.
pub(crate) fn verify(pid: u32) -> Result<(), String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("cannot read /proc/{pid}/task: {e}"))?;
    for task in tasks {
        let task = task.map_err(|e| format!("cannot read /proc/{pid}/task: {e}"))?;
        let path = task.path().join("status");
        let status = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (field, wanted) in [("NoNewPrivs:", "1"), ("Seccomp:", "2")] {
            let value = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .map(str::trim);
            if value != Some(wanted) {
                return Err(format!(
                    "sandbox not in force: {} has {field} {}, expected {wanted}",
                    path.display(),
                    value.unwrap_or("missing")
                ));
            }
        }
    }
    Ok(())
}
