//! The part of a worker's sandbox applied to a new worker process before
//! any plugin code exists in it: between `fork` and `exec` when the
//! supervisor executes `corral-worker` afresh, or in the child the zygote
//! forks (`corral-worker --zygote`). One function, [`WorkerSetup::apply`],
//! for both, so that both starts give the same layers in the same order.
//!
//! It runs in the forked child of a multi-threaded process (the
//! supervisor), so it must be async-signal-safe: raw syscalls only, no
//! allocation, no locks, no logging. [`WorkerSetup`] is computed before
//! the fork: plain numbers.
//!
//! In order: a new session (own process group); the channel on fd 3, the
//! plugin's module on fd 4 and the seccomp listener socket on fd 5, every
//! other fd closed at exec; as root, the plugin's own unprivileged
//! uid/gid; death with the supervisor (`PR_SET_PDEATHSIG`, set after the
//! uid change and re-checked against a parent that is already gone);
//! namespaces (user with an identity map of the worker's uid, ipc, uts,
//! mount, and net unless `network = true`; what the kernel refuses is left
//! out and shows in `corral inspect`); rlimits (data memory, open files,
//! file size, CPU time, threads when the worker has a uid of its own, no
//! core dumps, 8 MiB of locked memory); no new privileges. Landlock and
//! seccomp follow in the worker itself, once it has read its `Hello`.
#![allow(unsafe_code, reason = "raw syscalls between fork and exec")]

use crate::wire::{EffectiveLimits, PluginKind};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::RawFd;

/// The fd a worker finds its channel on.
pub const CHANNEL_FD: RawFd = 3;

/// The fd a worker finds its plugin module on (opened by the supervisor,
/// so the worker's uid needs no path to it).
pub const ENTRY_FD: RawFd = 4;

/// The fd a worker hands its seccomp listener over on, then closes.
pub const LISTENER_FD: RawFd = 5;

/// Memory a worker may lock (`mlock`, which its seccomp baseline allows):
/// enough for the keys and buffers libraries pin, never the machine's.
pub const MEMLOCK_BYTES: u64 = 8 * 1024 * 1024;

/// Data memory a wasm worker gets beyond its guest's `memory_mb`: the
/// compiler and runtime.
pub const WASM_RUNTIME_BYTES: u64 = 256 * 1024 * 1024;

/// Data memory a JavaScript worker gets beyond its engine's `memory_mb`:
/// the worker binary's own (it carries wasmtime too) and the engine's
/// bookkeeping outside the limited heap.
pub const JS_RUNTIME_BYTES: u64 = 128 * 1024 * 1024;

/// Resource limits a worker gets, in the order they are set.
const LIMITED: [libc::__rlimit_resource_t; 6] = [
    libc::RLIMIT_DATA,
    libc::RLIMIT_NOFILE,
    libc::RLIMIT_FSIZE,
    libc::RLIMIT_CPU,
    libc::RLIMIT_CORE,
    libc::RLIMIT_MEMLOCK,
];

/// What a new worker process applies to itself before the plugin: plain
/// numbers, computed before the fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSetup {
    /// (soft, hard) for each of [`LIMITED`].
    rlimits: [(u64, u64); LIMITED.len()],
    /// `RLIMIT_NPROC`, only with a uid of the worker's own.
    nproc: Option<u64>,
    /// The worker's own uid (and gid), when the supervisor is root.
    uid: Option<u32>,
    /// Namespaces to enter (`CLONE_NEW*`).
    namespaces: i32,
    /// The uid and gid the user namespace maps to themselves.
    map_ids: (u32, u32),
}

impl WorkerSetup {
    /// The setup for `limits`. Hard limits above the caller's own are
    /// lowered to it (raising them needs privilege).
    pub fn new(
        limits: &EffectiveLimits,
        uid: Option<u32>,
        network: bool,
        kind: PluginKind,
    ) -> Self {
        let infinity = libc::RLIM_INFINITY;
        let cpu = limits.cpu_seconds.map_or((infinity, infinity), |secs| {
            // SIGXCPU at the soft limit, SIGKILL a second later.
            (secs, secs.saturating_add(1))
        });
        // A wasm guest's memory is held to `memory_mb` by wasmtime; the
        // process also needs room for the compiler and runtime.
        let data = match kind {
            PluginKind::Native => limits.memory_bytes,
            PluginKind::Wasm => limits.memory_bytes.saturating_add(WASM_RUNTIME_BYTES),
            PluginKind::Js => limits.memory_bytes.saturating_add(JS_RUNTIME_BYTES),
        };
        let mut rlimits = [
            (data, data),
            (limits.open_files, limits.open_files),
            (limits.file_size_bytes, limits.file_size_bytes),
            cpu,
            (0, 0),
            (MEMLOCK_BYTES, MEMLOCK_BYTES),
        ];
        for (limit, resource) in rlimits.iter_mut().zip(LIMITED) {
            let ceiling = hard_limit(resource);
            limit.1 = limit.1.min(ceiling);
            limit.0 = limit.0.min(limit.1);
        }
        let mut namespaces =
            libc::CLONE_NEWUSER | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNS;
        if !network {
            namespaces |= libc::CLONE_NEWNET;
        }
        // SAFETY: getuid and getgid cannot fail.
        let own = unsafe { (libc::getuid(), libc::getgid()) };
        Self {
            rlimits,
            nproc: uid.map(|_| limits.threads),
            uid,
            namespaces,
            map_ids: uid.map_or(own, |uid| (uid, uid)),
        }
    }

    /// Whether the worker gets a network namespace of its own (it does
    /// unless the plugin has `network = true`).
    pub fn own_network(&self) -> bool {
        self.namespaces & libc::CLONE_NEWNET != 0
    }

    /// The setup for a worker already in a fresh network namespace of its
    /// own (a zygote makes them ahead): the other namespaces it still
    /// enters.
    #[must_use]
    pub fn in_fresh_network(mut self) -> Self {
        self.namespaces &= !libc::CLONE_NEWNET;
        self
    }

    /// Applies the setup to this process, a new worker: `fds` are the
    /// channel, the plugin's module and the listener socket (moved to
    /// [`CHANNEL_FD`], [`ENTRY_FD`] and [`LISTENER_FD`]); `supervisor` is
    /// the pid that must be this process's parent. Every other fd is
    /// marked close-on-exec.
    ///
    /// Async-signal-safe: callable between `fork` and `exec` in a
    /// multi-threaded process.
    pub fn apply(&self, fds: [RawFd; 3], supervisor: libc::pid_t) -> io::Result<()> {
        // SAFETY: setsid takes no arguments; the child is not a group leader.
        check(unsafe { libc::setsid() }.into())?;

        // Through copies above 9 first, so that no move can clobber another.
        let mut high = [0; 3];
        for (fd, copy) in fds.into_iter().zip(&mut high) {
            // SAFETY: F_DUPFD_CLOEXEC makes a new fd >= 10 that closes at exec.
            *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
            check((*copy).into())?;
        }
        for (high, target) in high.into_iter().zip([CHANNEL_FD, ENTRY_FD, LISTENER_FD]) {
            // SAFETY: dup2 onto the target; the copy does not carry FD_CLOEXEC.
            check(unsafe { libc::dup2(high, target) }.into())?;
        }
        // Everything above fd 5 closes at exec. CLOEXEC rather than close,
        // so std's own exec-error pipe keeps working.
        close_from(LISTENER_FD + 1, libc::CLOSE_RANGE_CLOEXEC)?;

        if let Some(uid) = self.uid {
            // SAFETY: setgroups with an empty list, then setresgid/setresuid
            // to one unprivileged id; plain syscalls.
            unsafe {
                check(libc::setgroups(0, std::ptr::null()).into())?;
                check(libc::setresgid(uid, uid, uid).into())?;
                check(libc::setresuid(uid, uid, uid).into())?;
            }
            // A uid change makes the process non-dumpable, which would keep
            // it from writing its own uid map below.
            // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
            check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }.into())?;
        }

        // SAFETY: PR_SET_PDEATHSIG takes a signal number. Set after the uid
        // change, which clears it.
        let deathsig =
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        check(deathsig.into())?;
        // The supervisor may have died before the prctl: then nobody would
        // send the signal.
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != supervisor {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }

        self.enter_namespaces()?;

        // Last, as they may forbid what came before (a small RLIMIT_NOFILE
        // leaves no fd for writing the uid map).
        for (resource, (soft, hard)) in LIMITED.into_iter().zip(self.rlimits) {
            set_limit(resource, soft, hard)?;
        }
        if let Some(nproc) = self.nproc {
            set_limit(libc::RLIMIT_NPROC, nproc, nproc)?;
        }

        // SAFETY: PR_SET_NO_NEW_PRIVS takes flag 1 and zeros.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())
    }

    /// Enters the namespaces wanted, leaving out what the kernel refuses:
    /// first all of them, then all but the user namespace (root can make
    /// the others without one), then none. What was made is checked from
    /// outside (`corral inspect`), and `strict` refuses a worker that
    /// lacks one.
    fn enter_namespaces(&self) -> io::Result<()> {
        let wanted = self.namespaces;
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(wanted) } == 0 {
            if wanted & libc::CLONE_NEWUSER != 0 {
                let mut line = [0; 32];
                write_proc(c"/proc/self/setgroups", b"deny")?;
                write_proc(c"/proc/self/uid_map", id_map(self.map_ids.0, &mut line))?;
                write_proc(c"/proc/self/gid_map", id_map(self.map_ids.1, &mut line))?;
            }
            return Ok(());
        }
        // SAFETY: as above; failing is allowed.
        unsafe { libc::unshare(wanted & !libc::CLONE_NEWUSER) };
        Ok(())
    }
}

/// Closes (or, with `CLOSE_RANGE_CLOEXEC`, marks close-on-exec) every fd
/// from `first` up.
pub fn close_from(first: RawFd, flags: libc::c_uint) -> io::Result<()> {
    let first = libc::c_uint::try_from(first).unwrap_or(0);
    // SAFETY: close_range only closes or flags fds; the range is valid.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, flags) })
}

/// `"{id} {id} 1\n"` in `buf`, without allocating: an identity map of one id.
fn id_map(id: u32, buf: &mut [u8; 32]) -> &[u8] {
    let mut digits = [0u8; 10];
    let mut n = id;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut len = 0;
    for _ in 0..2 {
        for &digit in digits[..count].iter().rev() {
            buf[len] = digit;
            len += 1;
        }
        buf[len] = b' ';
        len += 1;
    }
    buf[len] = b'1';
    buf[len + 1] = b'\n';
    &buf[..len + 2]
}

/// Writes `text` to the NUL-terminated `path`.
fn write_proc(path: &std::ffi::CStr, text: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; open returns a new fd or -1.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd.into())?;
    // SAFETY: `text` is valid for its length; `fd` is open.
    let written = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(fd) };
    check(written.try_into().unwrap_or(-1))
}

fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit, which `limit` is.
    if unsafe { libc::getrlimit(resource, &raw mut limit) } == 0 {
        limit.rlim_max
    } else {
        libc::RLIM_INFINITY
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit, which `limit` is.
    check(unsafe { libc::setrlimit(resource, &raw const limit) }.into())
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_are_written_without_allocating() {
        let mut buf = [0; 32];
        assert_eq!(id_map(0, &mut buf), b"0 0 1\n");
        assert_eq!(id_map(200_017, &mut buf), b"200017 200017 1\n");
        assert_eq!(id_map(u32::MAX, &mut buf), b"4294967295 4294967295 1\n");
    }
}
