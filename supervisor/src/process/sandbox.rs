//! The part of the worker sandbox the supervisor applies between `fork` and
//! `exec`. Everything here runs in the forked child of a multi-threaded
//! process, so it must be async-signal-safe: raw syscalls only, no
//! allocation, no locks, no logging.
//!
//! In order: a new session (own process group); the channel on fd 3, the
//! plugin's module on fd 4 and the seccomp listener socket on fd 5, every
//! other fd closed at exec; rlimits
//! (data memory, open files, file size, CPU time, threads when the worker
//! has a uid of its own, no core dumps, 8 MiB of locked memory); as root, the plugin's own
//! unprivileged uid/gid; death with the supervisor (`PR_SET_PDEATHSIG`,
//! set after the uid change and re-checked against a parent that is
//! already gone); namespaces (user with an identity map of the worker's
//! uid, ipc, uts, mount, and net unless `network = true`; what the kernel
//! refuses is left out and shows in `corral inspect`); no new privileges.
//! [`ChildSetup`] is computed before the fork: plain numbers and bytes.
#![allow(unsafe_code, reason = "raw syscalls between fork and exec")]

use corral_plugin_api::wire::{EffectiveLimits, Layer, PluginKind};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// Resource limits a worker gets, in the order they are set.
const LIMITED: [Resource; 6] = [
    Resource::RLIMIT_DATA,
    Resource::RLIMIT_NOFILE,
    Resource::RLIMIT_FSIZE,
    Resource::RLIMIT_CPU,
    Resource::RLIMIT_CORE,
    Resource::RLIMIT_MEMLOCK,
];

/// Memory a worker may lock (`mlock`, which its seccomp baseline allows):
/// enough for the keys and buffers libraries pin, never the machine's.
pub(crate) const MEMLOCK_BYTES: u64 = 8 * 1024 * 1024;

/// Data memory a wasm worker gets beyond its guest's `memory_mb`: the
/// compiler and runtime.
pub(crate) const WASM_RUNTIME_BYTES: u64 = 256 * 1024 * 1024;

/// The fd a worker finds its plugin module on (opened by the supervisor,
/// so the worker's uid needs no path to it).
pub(crate) const ENTRY_FD: RawFd = 4;

/// The fd a worker hands its seccomp listener over on (see
/// [`crate::process::refusals`]), then closes.
pub(crate) const LISTENER_FD: RawFd = 5;

/// What the child applies, prepared before the fork: plain numbers only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildSetup {
    /// (soft, hard) for each of [`LIMITED`].
    rlimits: [(u64, u64); LIMITED.len()],
    /// `RLIMIT_NPROC`, only with a uid of the worker's own.
    nproc: Option<u64>,
    /// The worker's own uid (and gid), when the supervisor is root.
    uid: Option<u32>,
    /// Namespaces to enter (`CLONE_NEW*`).
    namespaces: libc::c_int,
    /// The user namespace's uid and gid maps: the worker's own ids only.
    uid_map: Text,
    gid_map: Text,
}

impl ChildSetup {
    /// The setup for `limits`. Hard limits above the supervisor's own are
    /// lowered to it (raising them needs privilege).
    pub(crate) fn new(
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
        };
        let wanted = [
            (data, data),
            (limits.open_files, limits.open_files),
            (limits.file_size_bytes, limits.file_size_bytes),
            cpu,
            (0, 0),
            (MEMLOCK_BYTES, MEMLOCK_BYTES),
        ];
        let mut rlimits = wanted;
        for (limit, resource) in rlimits.iter_mut().zip(LIMITED) {
            let ceiling = getrlimit(resource).map_or(infinity, |(_, hard)| hard);
            limit.1 = limit.1.min(ceiling);
            limit.0 = limit.0.min(limit.1);
        }
        let mut namespaces =
            libc::CLONE_NEWUSER | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNS;
        if !network {
            namespaces |= libc::CLONE_NEWNET;
        }
        let (map_uid, map_gid) = match uid {
            Some(uid) => (uid, uid),
            None => (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
        };
        Self {
            rlimits,
            nproc: uid.map(|_| limits.threads),
            uid,
            namespaces,
            uid_map: Text::id_map(map_uid),
            gid_map: Text::id_map(map_gid),
        }
    }
}

/// A small text written to a /proc file in the child, built before the
/// fork.
#[derive(Debug, Clone, Copy)]
struct Text {
    bytes: [u8; 48],
    len: usize,
}

impl Text {
    /// `"{id} {id} 1\n"`: an identity map of one id.
    fn id_map(id: u32) -> Self {
        let mut text = Self {
            bytes: [0; 48],
            len: 0,
        };
        let line = format!("{id} {id} 1\n");
        text.bytes[..line.len()].copy_from_slice(line.as_bytes());
        text.len = line.len();
        text
    }
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

/// Enters the namespaces in `wanted`, leaving out what the kernel refuses:
/// first all of them, then all but the user namespace (root can make the
/// others without one), then none. What was made is checked from outside
/// (`corral inspect`), and `strict` refuses a worker that lacks one.
fn enter_namespaces(wanted: libc::c_int, uid_map: &Text, gid_map: &Text) -> io::Result<()> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(wanted) } == 0 {
        if wanted & libc::CLONE_NEWUSER != 0 {
            write_proc(c"/proc/self/setgroups", b"deny")?;
            write_proc(c"/proc/self/uid_map", &uid_map.bytes[..uid_map.len])?;
            write_proc(c"/proc/self/gid_map", &gid_map.bytes[..gid_map.len])?;
        }
        return Ok(());
    }
    // SAFETY: as above; failing is allowed.
    unsafe { libc::unshare(wanted & !libc::CLONE_NEWUSER) };
    Ok(())
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
/// end of the socketpair, `entry` the plugin module opened by the
/// supervisor, `listener` the child's end of the listener socket;
/// `supervisor` is the pid of the forking process.
pub(crate) fn before_exec(
    channel: RawFd,
    entry: RawFd,
    listener: RawFd,
    supervisor: libc::pid_t,
    setup: &ChildSetup,
) -> io::Result<()> {
    // SAFETY: setsid takes no arguments; the child is not a group leader.
    check(unsafe { libc::setsid() }.into())?;

    // Channel on 3, module on 4, listener socket on 5: through copies
    // above 9 first, so that no move can clobber another.
    let mut high = [0; 3];
    for (fd, copy) in [channel, entry, listener].into_iter().zip(&mut high) {
        // SAFETY: F_DUPFD_CLOEXEC makes a new fd >= 10 that closes at exec.
        *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        check((*copy).into())?;
    }
    for (high, target) in high.into_iter().zip([CHANNEL_FD, ENTRY_FD, LISTENER_FD]) {
        // SAFETY: dup2 onto the target; the copy does not carry FD_CLOEXEC.
        check(unsafe { libc::dup2(high, target) }.into())?;
    }

    // Everything above fd 5 closes at exec. CLOEXEC rather than close, so
    // std's own exec-error pipe keeps working.
    // SAFETY: close_range only changes fd flags; the range is valid.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            LISTENER_FD + 1,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })?;

    if let Some(uid) = setup.uid {
        // SAFETY: setgroups with an empty list, then setresgid/setresuid to
        // one unprivileged id; plain syscalls.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()).into())?;
            check(libc::setresgid(uid, uid, uid).into())?;
            check(libc::setresuid(uid, uid, uid).into())?;
        }
        // A uid change makes the process non-dumpable, which would keep it
        // from writing its own uid map below.
        // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
        check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }.into())?;
    }

    // SAFETY: PR_SET_PDEATHSIG takes a signal number. Set after the uid
    // change, which clears it.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) }.into())?;
    // The supervisor may have died before the prctl: then nobody would
    // send the signal.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != supervisor {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }

    enter_namespaces(setup.namespaces, &setup.uid_map, &setup.gid_map)?;

    // Last, as they may forbid what came before (a small RLIMIT_NOFILE
    // leaves no fd for writing the uid map).
    for (resource, (soft, hard)) in LIMITED.into_iter().zip(setup.rlimits) {
        setrlimit(resource, soft, hard)?;
    }
    if let Some(nproc) = setup.nproc {
        setrlimit(Resource::RLIMIT_NPROC, nproc, nproc)?;
    }

    // SAFETY: PR_SET_NO_NEW_PRIVS takes flag 1 and zeros.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    Ok(())
}

/// The layers the supervisor applies before exec, as `corral inspect` shows
/// them (the worker reports its own: Landlock, seccomp).
pub(crate) fn applied_layers(limits: &EffectiveLimits, kind: PluginKind) -> Vec<Layer> {
    const MIB: u64 = 1024 * 1024;
    let layer = |name: &str, active: bool, detail: String| Layer {
        name: name.to_owned(),
        active,
        detail,
    };
    let cpu = limits
        .cpu_seconds
        .map_or_else(|| "unlimited".to_owned(), |secs| format!("{secs} s"));
    vec![
        layer(
            "session",
            true,
            "own session and process group; stdin /dev/null; only fds 0-5 (channel, module, seccomp listener socket); empty environment"
                .into(),
        ),
        layer(
            "rlimits",
            true,
            format!(
                "data {} MiB{}, open files {}, file size {} MiB, cpu {cpu}, core 0, memlock {} MiB",
                limits.memory_bytes / MIB,
                match kind {
                    PluginKind::Native => String::new(),
                    PluginKind::Wasm => format!(
                        " (guest; +{} MiB for the wasm runtime)",
                        WASM_RUNTIME_BYTES / MIB
                    ),
                },
                limits.open_files,
                limits.file_size_bytes / MIB,
                MEMLOCK_BYTES / MIB
            ),
        ),
        layer(
            "no_new_privs",
            true,
            "PR_SET_NO_NEW_PRIVS, verified in /proc before the first call".into(),
        ),
        layer(
            "pdeathsig",
            true,
            "SIGKILL when the supervisor dies; end of channel too".into(),
        ),
        layer(
            "watchdog",
            true,
            format!(
                "at most {} threads; {}",
                limits.threads,
                limits.cpu_percent.map_or_else(
                    || "CPU use unwatched".to_owned(),
                    |percent| format!(
                        "at most {percent}% CPU sustained over {} s",
                        crate::process::watchdog::WINDOW.as_secs()
                    )
                )
            ),
        ),
    ]
}

/// A worker that said `Ready` but is not confined, or cannot be checked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnconfinedError {
    /// Its `/proc` entries cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A thread lacks a layer.
    #[error("sandbox not in force: {} has {field} {found}, expected {wanted}", path.display())]
    NotInForce {
        /// The thread's status file.
        path: PathBuf,
        /// `NoNewPrivs:` or `Seccomp:`.
        field: &'static str,
        /// Its value, or `missing`.
        found: String,
        wanted: &'static str,
    },
}

/// Checks from outside that a worker that said `Ready` is confined:
/// `/proc/PID/status` must show `NoNewPrivs: 1` and `Seccomp: 2` (filter
/// mode) for every one of its threads.
pub(crate) fn verify(pid: u32) -> Result<(), UnconfinedError> {
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let read = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| UnconfinedError::Read { path, source }
    };
    for task in std::fs::read_dir(&tasks).map_err(read(&tasks))? {
        let path = task.map_err(read(&tasks))?.path().join("status");
        let status = std::fs::read_to_string(&path).map_err(read(&path))?;
        for (field, wanted) in [("NoNewPrivs:", "1"), ("Seccomp:", "2")] {
            let value = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .map(str::trim);
            if value != Some(wanted) {
                return Err(UnconfinedError::NotInForce {
                    path,
                    field,
                    found: value.unwrap_or("missing").to_owned(),
                    wanted,
                });
            }
        }
    }
    Ok(())
}

/// The layers only the outside can see, read from `/proc`: which
/// namespaces the worker is in (compared with the supervisor's) and which
/// uid it runs as.
pub(crate) fn observe(pid: u32, uid: Option<u32>, network: bool) -> Vec<Layer> {
    let namespace = |name: &str| {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        matches!((theirs, ours), (Ok(theirs), Ok(ours)) if theirs != ours)
    };
    let wanted: &[&str] = if network {
        &["user", "ipc", "uts", "mnt"]
    } else {
        &["user", "net", "ipc", "uts", "mnt"]
    };
    let (entered, missing): (Vec<&str>, Vec<&str>) =
        wanted.iter().partition(|name| namespace(name));
    let mut detail = if entered.is_empty() {
        "none".to_owned()
    } else {
        format!("own {}", entered.join(", "))
    };
    if !missing.is_empty() {
        detail += &format!("; missing {} (refused by this kernel)", missing.join(", "));
    }
    if network {
        detail += "; shares the host network (network = true)";
    }
    let running_as = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned());
    let uid_layer = match uid {
        Some(uid) => Layer {
            name: "uid".into(),
            active: running_as == uid.to_string(),
            detail: format!("own uid/gid {uid} (runs as {running_as}); RLIMIT_NPROC per plugin"),
        },
        None => Layer {
            name: "uid".into(),
            active: false,
            detail: format!(
                "runs as the supervisor's uid {running_as}: only root can give each worker its own"
            ),
        },
    };
    vec![
        Layer {
            name: "namespaces".into(),
            active: missing.is_empty(),
            detail,
        },
        uid_layer,
    ]
}
