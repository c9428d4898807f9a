//! The part of the worker sandbox the supervisor applies between `fork` and
//! `exec`. Everything here runs in the forked child of a multi-threaded
//! process, so it must be async-signal-safe: raw syscalls only, no
//! allocation, no locks, no logging.
//!
//! In order: a new session (own process group), the channel on fd 3, every
//! other fd above 2 closed at exec, no core dumps, and death with the
//! supervisor (`PR_SET_PDEATHSIG`, re-checked against a parent that is
//! already gone).
#![allow(unsafe_code, reason = "raw syscalls between fork and exec")]

use std::io;
use std::os::fd::RawFd;

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
pub(crate) fn before_exec(channel: RawFd, supervisor: libc::pid_t) -> io::Result<()> {
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

    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit struct for RLIMIT_CORE.
    check(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) }.into())?;

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
