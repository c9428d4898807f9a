//! The zygote: `corral-worker --zygote`, started once by the supervisor
//! (one per worker binary), forks workers on request so that a worker
//! start costs a fork instead of an exec, dynamic linking and runtime
//! set-up.
//!
//! It prepares what every worker shares (for wasm, the engine), then
//! waits, single-threaded, for [`ForkRequest`]s on fd 3, a
//! `SOCK_SEQPACKET` socket to the supervisor. Each request brings the new
//! worker's fds; the zygote forks with `CLONE_PARENT`, so the worker is
//! the *supervisor's* child (it waits for it, gets its exit status, and
//! the worker's `PR_SET_PDEATHSIG` follows the supervisor, not the
//! zygote), answers with the pid and closes its copies of the fds. The
//! child applies its own [`WorkerSetup`] — the same function, in the same
//! order, as a freshly executed worker — closes every fd the zygote had,
//! takes its title and environment, and runs as any worker does.
//!
//! Making a network namespace is the dearest step of a worker's start
//! (about 0.3 ms, the rest of the sandbox takes a tenth of that). A zygote
//! running as root makes it ahead: it waits in a fresh, empty network
//! namespace, and the next worker it forks keeps that one (a worker with
//! `network = true` goes back to the host's); once idle for a moment
//! after answering (not while that worker starts), the zygote moves to a
//! new one. No two workers ever share one; a burst of starts finds none
//! made ahead, and each of its workers makes its own. Such a namespace
//! belongs to the initial user namespace, so the worker has no
//! capability over it (one it makes itself belongs to its own user
//! namespace).
//!
//! The zygote never loads plugin code and holds no plugin data. As root
//! it keeps only the capabilities its children need before they drop to
//! their own uid (`CAP_SETUID`, `CAP_SETGID`, `CAP_DAC_READ_SEARCH` to
//! enter the plugin's folder, `CAP_SYS_ADMIN` for the network
//! namespaces) and sets `no_new_privs`.
#![allow(unsafe_code, reason = "clone(2), capset(2) and the title's memory")]

use crate::runtime::Runtimes;
use corral_plugin_api::wire::zygote::{
    FORK_FDS, ForkReply, ForkRequest, MAX_PACKET, decode_packet, encode_packet,
};
use corral_plugin_api::wire::{recv_with_fds, send_with_fd};
use corral_plugin_api::worker_setup::{LISTENER_FD, WorkerSetup, close_from};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, warn};

/// The argument that makes `corral-worker` a zygote.
pub(crate) const FLAG: &str = "--zygote";

/// The fd the zygote's socket to the supervisor is on.
const SOCKET_FD: i32 = 3;

/// Serves fork requests until the supervisor closes the socket.
pub(crate) fn serve(runtimes: Runtimes) -> ExitCode {
    // SAFETY: fd 3 is the socket the supervisor passed for the zygote
    // alone; nothing else in this process uses it.
    let socket = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    // SAFETY: getppid cannot fail.
    let supervisor = unsafe { libc::getppid() };
    if let Err(error) = lower_privileges() {
        error!("zygote: cannot lower its privileges: {error}");
        return ExitCode::from(4);
    }
    (runtimes.prepare)();
    match threads() {
        Ok(1) => {}
        Ok(count) => {
            error!("zygote: {count} threads after preparing; forking needs one");
            return ExitCode::from(4);
        }
        Err(error) => {
            error!("zygote: cannot count its threads: {error}");
            return ExitCode::from(4);
        }
    }
    let title = TitleArea::find();
    let mut network = Network::new();
    let mut packet = vec![0; MAX_PACKET as usize];
    loop {
        wait_for_request(socket.as_fd(), network.as_mut());
        let (len, fds, truncated) = match recv_with_fds(socket.as_fd(), &mut packet) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                error!("zygote: cannot read a request: {error}");
                return ExitCode::from(2);
            }
        };
        if len == 0 && fds.is_empty() {
            return ExitCode::SUCCESS; // the supervisor is gone
        }
        let reply = match decode_packet::<ForkRequest>(&packet[..len]) {
            Ok(_) if truncated => ForkReply::Failed {
                message: "a fork request came with more fds than a packet takes".into(),
            },
            Ok(_) if fds.len() != FORK_FDS => ForkReply::Failed {
                message: format!("a fork request needs {FORK_FDS} fds, got {}", fds.len()),
            },
            Ok(request) => match fork(
                &request,
                fds,
                supervisor,
                runtimes,
                title.as_ref(),
                &mut network,
            ) {
                Ok(pid) => ForkReply::Forked { pid },
                Err(error) => ForkReply::Failed {
                    message: format!("fork failed: {error}"),
                },
            },
            Err(error) => ForkReply::Failed {
                message: format!("bad fork request: {error}"),
            },
        };
        let sent = encode_packet(&reply)
            .map_err(io::Error::other)
            .and_then(|bytes| send_with_fd(socket.as_fd(), &bytes, None));
        if let Err(error) = sent {
            warn!("zygote: cannot answer the supervisor: {error}");
            return ExitCode::from(2);
        }
    }
}

/// How long the zygote waits without a request before it makes the next
/// network namespace: not while the worker it just forked is starting.
const IDLE_BEFORE_NETWORK: Duration = Duration::from_millis(1);

/// Waits until `socket` is readable, making a fresh network namespace
/// (when one is wanted) once it has been idle for a moment.
fn wait_for_request(socket: BorrowedFd<'_>, network: Option<&mut Network>) {
    let Some(network) = network.filter(|network| network.here != Here::Fresh) else {
        return;
    };
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let idle = i32::try_from(IDLE_BEFORE_NETWORK.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: poll reads and writes one pollfd, `poll`.
    if unsafe { libc::poll(&raw mut poll, 1, idle) } == 0 {
        network.make_fresh();
    }
}

/// The network namespaces of a zygote running as root: the host's, and
/// which one the zygote is in.
struct Network {
    host: OwnedFd,
    here: Here,
}

/// Which network namespace a zygote is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Here {
    /// The host's: it could not make one.
    Host,
    /// A fresh one no worker has had.
    Fresh,
    /// The one the last worker took: no other worker may have it.
    Taken,
}

impl Network {
    /// `None` unless this process may make network namespaces without a
    /// user namespace (root).
    fn new() -> Option<Self> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let host = std::fs::File::open("/proc/self/ns/net").ok()?.into();
        let mut network = Self {
            host,
            here: Here::Host,
        };
        network.make_fresh();
        Some(network)
    }

    /// Moves the zygote to a new network namespace unless it is in an
    /// unused one already.
    fn make_fresh(&mut self) {
        // SAFETY: unshare takes flags only; this process has one thread.
        if self.here != Here::Fresh && unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            self.here = Here::Fresh;
        }
    }

    /// Whether a worker with `setup` keeps the zygote's namespace.
    fn kept_by(&self, setup: &WorkerSetup) -> bool {
        self.here == Here::Fresh && setup.own_network()
    }

    /// In a forked child: its setup, once in the network namespace it
    /// gets: the zygote's fresh one, the host's (`network = true`), or
    /// none yet (the setup makes one).
    fn settle(&self, setup: WorkerSetup) -> io::Result<WorkerSetup> {
        if self.kept_by(&setup) {
            return Ok(setup.in_fresh_network());
        }
        if !setup.own_network() && self.here != Here::Host {
            // SAFETY: setns takes an fd and a namespace type; `host` is open.
            if unsafe { libc::setns(self.host.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // Unless it went back to the host's, the worker leaves this one
        // (another worker's, or the host's) for its own.
        Ok(setup)
    }
}

/// Forks the worker `request` describes; in the parent, its pid (the
/// fds are closed here when they drop).
fn fork(
    request: &ForkRequest,
    fds: Vec<OwnedFd>,
    supervisor: libc::pid_t,
    runtimes: Runtimes,
    title: Option<&TitleArea>,
    network: &mut Option<Network>,
) -> io::Result<u32> {
    let takes_network = network
        .as_ref()
        .is_some_and(|network| network.kept_by(&request.setup));
    // SAFETY: clone with CLONE_PARENT and no new stack forks this process
    // (the child's parent is the supervisor). The zygote is
    // single-threaded (checked at start), so no lock is held by a thread
    // that would not exist in the child. glibc does not see this fork, so
    // the child's cached thread id (used as a lock owner by recursive
    // mutexes) stays the zygote's: unique while the zygote lives, and
    // glibc looks up the real id where it matters (raise, pthread_kill of
    // itself).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        ..0 => Err(io::Error::last_os_error()),
        0 => {
            let code = match become_worker(request, fds, supervisor, title, network.as_ref()) {
                Ok(()) => crate::run_worker(runtimes),
                Err(error) => {
                    error!("cannot set up the worker: {error}");
                    4
                }
            };
            std::process::exit(code.into())
        }
        pid => {
            if takes_network && let Some(network) = network {
                network.here = Here::Taken;
            }
            u32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
        }
    }
}

/// In the forked child: the worker's folder, environment, output and the
/// supervisor's half of its sandbox; every fd of the zygote closed.
fn become_worker(
    request: &ForkRequest,
    fds: Vec<OwnedFd>,
    supervisor: libc::pid_t,
    title: Option<&TitleArea>,
    network: Option<&Network>,
) -> io::Result<()> {
    let setup = match network {
        Some(network) => network.settle(request.setup)?,
        None => request.setup,
    };
    let [channel, entry, listener, output] = <[OwnedFd; FORK_FDS]>::try_from(fds)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    std::env::set_current_dir(OsStr::from_bytes(&request.dir))?;
    // SAFETY: clearenv and setenv are not thread-safe; this process has one
    // thread. The environment's strings are glibc's copies from here on.
    unsafe {
        libc::clearenv();
        for variable in &request.env {
            if let Some(at) = variable.iter().position(|&b| b == b'=') {
                std::env::set_var(
                    OsStr::from_bytes(&variable[..at]),
                    OsStr::from_bytes(&variable[at + 1..]),
                );
            }
        }
    }
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 onto stdout or stderr; `output` is open.
        if unsafe { libc::dup2(output.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    setup.apply(
        [channel, entry, listener].map(IntoRawFd::into_raw_fd),
        supervisor,
    )?;
    // No exec follows: close what the zygote had (its socket was fd 3, now
    // the channel) rather than mark it.
    drop(output);
    close_from(LISTENER_FD + 1, 0)?;
    if let Some(title) = title {
        title.write(&request.title);
    }
    crate::name_process(c"corral-worker");
    Ok(())
}

/// Keeps, as root, only the capabilities a child needs before it drops to
/// its own uid; sets `no_new_privs`. Nothing to lower for another uid.
fn lower_privileges() -> io::Result<()> {
    const KEEP: [u32; 4] = [
        2,  // CAP_DAC_READ_SEARCH: enter the plugin's folder
        6,  // CAP_SETGID
        7,  // CAP_SETUID
        21, // CAP_SYS_ADMIN: network namespaces made ahead
    ];
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(40);
        for cap in (0..=last).filter(|cap| !KEEP.contains(cap)) {
            // SAFETY: PR_CAPBSET_DROP takes a capability number.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        let kept = KEEP.iter().fold(0, |mask, cap| mask | 1 << cap);
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [
            Data {
                effective: kept,
                permitted: kept,
                inheritable: 0,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        // SAFETY: capset reads a version 3 header and two data structs.
        if unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes flag 1 and zeros.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This process's thread count.
fn threads() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// The memory holding this process's arguments and environment strings,
/// which `/proc/PID/cmdline` (and so `ps`) shows: a forked worker writes
/// its title there, as `setproctitle` does. The supervisor gives the
/// zygote room for a title in its environment.
struct TitleArea {
    start: usize,
    len: usize,
}

impl TitleArea {
    /// The area, from `/proc/self/stat` (`arg_start` .. `env_end`, when
    /// the environment follows the arguments).
    fn find() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // proc(5) numbers the fields from 1; `fields` starts at field 3.
        let field = |n: usize| fields.get(n - 3)?.trim().parse::<usize>().ok();
        let (arg_start, arg_end) = (field(48)?, field(49)?);
        let (env_start, env_end) = (field(50)?, field(51)?);
        let end = if env_start == arg_end {
            env_end
        } else {
            arg_end
        };
        (end > arg_start).then(|| Self {
            start: arg_start,
            len: end - arg_start,
        })
    }

    /// Writes `title` (cut to fit) and zeroes the rest of the area. Only
    /// in a forked child whose environment is glibc's own copy.
    fn write(&self, title: &str) {
        // SAFETY: the area is this process's argument and environment
        // strings, on its stack, writable and `len` bytes long. Nothing
        // reads the environment strings any more (clearenv dropped them);
        // argv[0] still points at the start and keeps a NUL-terminated
        // string.
        let area = unsafe { std::slice::from_raw_parts_mut(self.start as *mut u8, self.len) };
        let len = title.len().min(self.len - 1);
        area[..len].copy_from_slice(&title.as_bytes()[..len]);
        area[len..].fill(0);
    }
}
