//! The seccomp layer: one filter built from the policy in
//! [`corral_plugin_api::seccomp`] (laid out by [`crate::bpf`]), installed
//! on every thread before the plugin is loaded. Per syscall:
//!
//! - **allow**: it runs (conditional ones only in their allowed form);
//! - **kill**: it traps (`SIGSYS`): the reporter installed here writes a
//!   `Violation` frame naming the syscall on fd 3, then dies by `SIGSYS`
//!   (its own attempt to reset the `SIGSYS` handler is trapped while
//!   `SIGSYS` is blocked, which the kernel turns into death);
//! - **refuse**: it is referred to the supervisor
//!   (`SECCOMP_RET_USER_NOTIF`), which answers `EPERM` and names and
//!   counts it. The listener fd goes to the supervisor over the socket
//!   `Hello::listener_fd` names, and is closed here before any plugin code
//!   runs. Without that socket, or on a kernel without user notification
//!   with `TSYNC` (before 5.7), refused syscalls fail with `EPERM` in the
//!   kernel, uncounted;
//! - `clone3` fails with `ENOSYS`, so that libc makes its threads with
//!   `clone`, whose flags a filter can read.
//!
//! When profiling (`Hello::profile`) nothing traps: what the baseline does
//! not allow goes to the supervisor, which lets a refused syscall through
//! and refuses a killing one, recording both.
//!
//! Where a kernel argument is an `int` (pids, signals, requests), the
//! filter compares its low 32 bits, as the kernel reads it. A syscall of
//! another architecture (`int 0x80` on x86_64) fails the filter's
//! architecture check, which kills the process.
#![allow(
    unsafe_code,
    reason = "installs a SIGSYS handler, reads its siginfo, and installs a filter with a listener"
)]

use crate::bpf::{self, Action, Condition, Decision, Instruction, Policy};
use corral_plugin_api::seccomp::{
    self as policy, ALLOW, ALLOW_IN_FORM, KILL, NETWORK, PROBED, Tier, WASI,
};
use corral_plugin_api::wire::{self, Hello, Layer};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

/// The seccomp layer could not be installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    #[error("seccomp: {0}")]
    Compile(#[from] bpf::TooLong),
    #[error("cannot install the seccomp filter: {0}")]
    Install(io::Error),
    #[error("cannot install the SIGSYS reporter: {0}")]
    Reporter(io::Error),
    #[error("cannot install the seccomp filter with a listener: {0}")]
    Listener(io::Error),
    #[error("cannot hand the seccomp listener to the supervisor: {0}")]
    HandOver(io::Error),
    #[error("profiling needs the supervisor's listener socket")]
    NoListenerSocket,
    #[error("[permissions] syscalls: {0}")]
    Addition(#[from] policy::AdditionError),
}

/// Installs the filter for `hello`; returns the layer as `corral inspect`
/// shows it.
pub(crate) fn install(hello: &Hello) -> Result<Layer, SeccompError> {
    let pid = std::process::id();
    let extra = match (hello.network, hello.wasi) {
        (true, true) => " + network + wasi",
        (true, false) => " + network",
        (false, true) => " + wasi",
        (false, false) => "",
    };
    if hello.profile {
        let socket = hello.listener_fd.ok_or(SeccompError::NoListenerSocket)?;
        let policy = policy_for(hello, pid, Action::Notify, Action::Notify)?;
        let listener = install_program(&bpf::compile(&policy)?, true)?;
        hand_over(listener.expect("a listener was asked for"), socket)?;
        return Ok(layer(format!(
            "profiling: baseline of {} syscalls{extra}; every other syscall is let through \
             (a killing one refused) and recorded by the supervisor",
            allowed(&policy)
        )));
    }
    install_reporter()?;
    let mut policy = policy_for(hello, pid, Action::Notify, Action::Trap)?;
    let counted = match hello.listener_fd {
        Some(socket) => match install_program(&bpf::compile(&policy)?, true) {
            Ok(listener) => {
                hand_over(listener.expect("a listener was asked for"), socket)?;
                true
            }
            // A kernel before 5.7 (no TSYNC with a listener): refuse in
            // the kernel instead.
            Err(SeccompError::Listener(error)) if error.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(
                    "seccomp user notification unsupported ({error}): refusals are not counted"
                );
                close(socket);
                false
            }
            Err(error) => return Err(error),
        },
        None => false,
    };
    if !counted {
        policy = policy_for(hello, pid, Action::Errno(EPERM), Action::Trap)?;
        install_program(&bpf::compile(&policy)?, false)?;
    }
    let additions = if hello.syscalls.is_empty() {
        String::new()
    } else {
        format!(" + {}", hello.syscalls.join(", "))
    };
    Ok(layer(format!(
        "baseline of {} syscalls{extra}{additions}; any other refused with EPERM ({}); the \
         kill tier ({} syscalls and the killing forms of {}) ends the worker by SIGSYS",
        allowed(&policy),
        if counted {
            "named and counted by the supervisor"
        } else {
            "uncounted: no listener"
        },
        KILL.iter().map(|group| group.syscalls.len()).sum::<usize>(),
        ALLOW_IN_FORM
            .iter()
            .filter(|form| form.otherwise == Tier::Kill)
            .map(|form| form.name)
            .collect::<Vec<_>>()
            .join(", "),
    )))
}

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;

fn layer(detail: String) -> Layer {
    Layer {
        name: "seccomp".into(),
        active: true,
        detail,
    }
}

/// How many syscalls `policy` allows, in some form.
fn allowed(policy: &Policy) -> usize {
    policy
        .syscalls
        .values()
        .filter(|decision| {
            matches!(
                decision,
                Decision::Always(Action::Allow)
                    | Decision::Rules {
                        then: Action::Allow,
                        ..
                    }
            )
        })
        .count()
}

/// The policy for `hello`, in this process (`pid`): what refused syscalls
/// get (`refuse`), and what killing ones get (`kill`).
fn policy_for(
    hello: &Hello,
    pid: u32,
    refuse: Action,
    kill: Action,
) -> Result<Policy, SeccompError> {
    let mut syscalls = BTreeMap::new();
    let mut decide = |name: &str, decision: Decision| {
        // A name this architecture lacks means nothing here.
        if let Some(number) = policy::number(name).and_then(|n| u32::try_from(n).ok()) {
            syscalls.insert(number, decision);
        }
    };
    let allow = || Decision::Always(Action::Allow);
    for form in ALLOW_IN_FORM {
        let otherwise = match form.otherwise {
            Tier::Kill => kill,
            _ => refuse,
        };
        decide(
            form.name,
            Decision::Rules {
                rules: allowed_form(form.name, pid),
                then: Action::Allow,
                otherwise,
            },
        );
    }
    for name in ALLOW.iter().flat_map(|group| group.syscalls) {
        decide(name, allow());
    }
    if hello.network {
        for name in NETWORK.syscalls.iter().chain(&["socketpair"]) {
            decide(name, allow());
        }
    }
    if hello.wasi {
        WASI.syscalls.iter().for_each(|name| decide(name, allow()));
    }
    // Additions were checked with the manifest; checked again here, as
    // no addition may ever reach the kill tier.
    for name in &hello.syscalls {
        policy::check_addition(name)?;
        decide(name, allow());
    }
    // Last, so that nothing above can allow them.
    for name in KILL.iter().flat_map(|group| group.syscalls) {
        decide(name, Decision::Always(kill));
    }
    for name in PROBED.syscalls {
        decide(name, Decision::Always(Action::Errno(ENOSYS)));
    }
    Ok(Policy {
        arch: AUDIT_ARCH,
        syscalls,
        otherwise: refuse,
    })
}

/// `AUDIT_ARCH_*` of this build's syscalls: the ELF machine, 64-bit,
/// little-endian.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// `CLONE_NEW*`: a new namespace, even for a thread, is a way out.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The `prctl` options a plugin may use: naming, and reading its own
/// state (see the policy's `prctl` entry).
const PRCTL_OPTIONS: [libc::c_int; 16] = [
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    0x53564d41, // PR_SET_VMA: naming anonymous mappings
    libc::PR_GET_DUMPABLE,
    libc::PR_GET_SECCOMP,
    libc::PR_SET_NO_NEW_PRIVS,
    libc::PR_GET_NO_NEW_PRIVS,
    libc::PR_CAPBSET_READ,
    libc::PR_GET_KEEPCAPS,
    libc::PR_GET_PDEATHSIG,
    libc::PR_GET_TIMERSLACK,
    libc::PR_SET_TIMERSLACK,
    libc::PR_GET_THP_DISABLE,
    libc::PR_SET_THP_DISABLE,
    libc::PR_GET_CHILD_SUBREAPER,
    libc::PR_GET_TID_ADDRESS,
];

/// The `ioctl` requests a plugin may make: about an fd of its own.
const IOCTL_REQUESTS: [libc::c_ulong; 7] = [
    libc::TCGETS,
    libc::TIOCGWINSZ,
    libc::TIOCGPGRP,
    libc::FIONREAD,
    libc::FIONBIO,
    libc::FIOCLEX,
    libc::FIONCLEX,
];

/// `personality(0xffffffff)` reads the persona without changing it.
const PERSONALITY_QUERY: u32 = 0xffff_ffff;

/// The rules that pass the allowed form of conditional syscall `name`.
fn allowed_form(name: &str, pid: u32) -> Vec<Vec<Condition>> {
    let own_group = pid.wrapping_neg();
    let thread = libc::CLONE_THREAD as u64;
    let namespaces = NAMESPACE_FLAGS
        .iter()
        .fold(0, |all, flag| all | *flag as u64);
    let itself = || any_of(0, &[0, pid]);
    match name {
        "clone" => vec![vec![
            Condition::Masked64 {
                arg: 0,
                mask: thread,
                value: thread,
            },
            Condition::Masked64 {
                arg: 0,
                mask: namespaces,
                value: 0,
            },
        ]],
        "kill" => any_of(0, &[pid, 0, own_group]),
        "tgkill" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo" => any_of(0, &[pid]),
        "rt_sigaction" => vec![vec![Condition::Ne32 {
            arg: 0,
            value: SIGSYS,
        }]],
        "personality" => any_of(0, &[PERSONALITY_QUERY]),
        "prctl" => any_of(0, &PRCTL_OPTIONS.map(|option| option as u32)),
        "ioctl" => any_of(
            1,
            &IOCTL_REQUESTS.map(|request| (request & 0xffff_ffff) as u32),
        ),
        "socketpair" => any_of(0, &[libc::AF_UNIX as u32]),
        "prlimit64" | "sched_setaffinity" | "sched_setparam" | "sched_setscheduler"
        | "sched_setattr" => itself(),
        "setpriority" => [0, pid]
            .into_iter()
            .map(|who| {
                vec![
                    Condition::Eq32 {
                        arg: 0,
                        value: libc::PRIO_PROCESS,
                    },
                    Condition::Eq32 { arg: 1, value: who },
                ]
            })
            .collect(),
        "get_robust_list" => any_of(0, &[0]),
        // No path: futimens on an fd it holds.
        "utimensat" => vec![vec![Condition::Masked64 {
            arg: 1,
            mask: u64::MAX,
            value: 0,
        }]],
        other => unreachable!("no allowed form is written for `{other}`"),
    }
}

/// One rule per value: the low 32 bits of argument `arg` equal one of
/// them.
fn any_of(arg: u8, values: &[u32]) -> Vec<Vec<Condition>> {
    values
        .iter()
        .map(|&value| vec![Condition::Eq32 { arg, value }])
        .collect()
}

const SIGSYS: u32 = libc::SIGSYS as u32;

/// Installs `program` on every thread; with `listener`, returns the fd
/// its notifications go to.
fn install_program(
    program: &[Instruction],
    listener: bool,
) -> Result<Option<OwnedFd>, SeccompError> {
    let mut filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|instruction| libc::sock_filter {
            code: instruction.code,
            jt: instruction.jt,
            jf: instruction.jf,
            k: instruction.k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: u16::try_from(filters.len())
            .map_err(|_| SeccompError::Install(io::Error::from_raw_os_error(libc::E2BIG)))?,
        filter: filters.as_mut_ptr(),
    };
    let mut flags = libc::SECCOMP_FILTER_FLAG_TSYNC;
    if listener {
        flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    // SAFETY: `prog` points at `filters`, alive for the call; seccomp(2)
    // copies the program and returns 0, a new fd (with a listener), or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &raw const prog,
        )
    };
    let error = |error| {
        if listener {
            SeccompError::Listener(error)
        } else {
            SeccompError::Install(error)
        }
    };
    if ret < 0 {
        return Err(error(io::Error::last_os_error()));
    }
    if !listener {
        // TSYNC returns 0, or the id of a thread it could not sync.
        return match ret {
            0 => Ok(None),
            thread => Err(error(io::Error::other(format!(
                "thread {thread} could not take the filter"
            )))),
        };
    }
    let fd = i32::try_from(ret).map_err(|_| error(io::Error::from_raw_os_error(libc::EBADF)))?;
    // SAFETY: the kernel returned a new fd that this process owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Sends the listener to the supervisor over `socket` and closes both
/// here: no plugin code may ever hold the listener, or the socket.
fn hand_over(listener: OwnedFd, socket: i32) -> Result<(), SeccompError> {
    let socket = adopt(socket);
    let sent = wire::send_with_fd(socket.as_fd(), b"L", Some(listener.as_fd()))
        .map_err(SeccompError::HandOver)?;
    if sent != 1 {
        return Err(SeccompError::HandOver(io::ErrorKind::WriteZero.into()));
    }
    Ok(())
}

/// The listener socket the supervisor passed, to be closed when dropped.
fn adopt(socket: i32) -> OwnedFd {
    // SAFETY: the supervisor passes this socket for the hand-over only;
    // nothing else in the worker uses it.
    unsafe { OwnedFd::from_raw_fd(socket) }
}

/// Closes the listener socket unused: the plugin must not find it open.
fn close(socket: i32) {
    drop(adopt(socket));
}

/// Installs the `SIGSYS` handler that reports a trapped syscall.
fn install_reporter() -> Result<(), SeccompError> {
    // SAFETY: a zeroed sigaction is valid; the fields are set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = report_violation as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action` is a valid sigaction with an async-signal-safe
    // handler; the old action is not needed.
    if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
        return Err(SeccompError::Reporter(io::Error::last_os_error()));
    }
    Ok(())
}

/// `SIGSYS` handler: writes a `Violation` frame on fd 3, then asks to reset
/// the `SIGSYS` handler; the kill filter traps that too, and a trap while
/// `SIGSYS` is blocked (as it is in its handler) kills the process with
/// `SIGSYS`. Async-signal-safe: no allocation, only `write` and
/// `rt_sigaction`.
extern "C" fn report_violation(
    _signal: i32,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // siginfo for SIGSYS: signo, errno, code (and padding to 8), then
    // `void *call_addr; int syscall; unsigned arch;`.
    const SYSCALL_OFFSET: usize = 16 + std::mem::size_of::<*mut libc::c_void>();
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for
    // SIGSYS from seccomp the syscall number is at SYSCALL_OFFSET.
    let syscall = unsafe {
        info.cast::<u8>()
            .add(SYSCALL_OFFSET)
            .cast::<i32>()
            .read_unaligned()
    };
    let (frame, len) = wire::violation_frame(u32::try_from(syscall).unwrap_or(u32::MAX));
    // SAFETY: write(2) from a stack buffer to fd 3; the result does not
    // matter, the process dies next.
    unsafe { libc::write(3, frame.as_ptr().cast(), len) };
    // SAFETY: a zeroed sigaction (SIG_DFL) is valid. The kill filter traps
    // this call, which ends the process with SIGSYS.
    unsafe {
        let default: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGSYS, &default, std::ptr::null_mut());
        libc::_exit(111); // unreachable unless the filter is missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    fn hello() -> Hello {
        Hello {
            protocol: wire::PROTOCOL_VERSION,
            plugin: "p".into(),
            version: "1.0.0".into(),
            kind: wire::PluginKind::Native,
            wasi: false,
            dir: "/".into(),
            entry: "/x.so".into(),
            entry_fd: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
            read: Vec::new(),
            write: Vec::new(),
            network: false,
            memory_bytes: 1 << 26,
            cache_dir: None,
            wasm_fuel: 0,
            standby: false,
            config: String::new(),
            debug: false,
            syscalls: Vec::new(),
            profile: false,
            listener_fd: None,
            recording: corral_plugin_api::wire::Recording::default(),
            methods: Vec::new(),
        }
    }

    /// What the compiled filter answers for syscall `name` with `args`.
    fn answer(hello: &Hello, name: &str, args: [u64; 6]) -> u32 {
        let policy = policy_for(hello, PID, Action::Notify, Action::Trap).unwrap();
        let program = bpf::compile(&policy).unwrap();
        let nr = u32::try_from(policy::number(name).unwrap()).unwrap();
        let answer = bpf::run(&program, AUDIT_ARCH, nr, &args);
        assert_eq!(answer, policy.decide(AUDIT_ARCH, nr, &args), "{name}");
        answer
    }

    #[test]
    fn the_compiled_filter_answers_each_tier() {
        let (allow, trap, notify) = (
            Action::Allow.value(),
            Action::Trap.value(),
            Action::Notify.value(),
        );
        let plain = hello();
        let pid = u64::from(PID);
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        let cases: &[(&str, [u64; 6], u32)] = &[
            ("read", [0; 6], allow),
            ("sysinfo", [0; 6], allow),
            ("epoll_wait", [0; 6], allow),
            ("clone", [thread, 0, 0, 0, 0, 0], allow),
            ("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0], trap),
            (
                "clone",
                [thread | libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0],
                trap,
            ),
            ("clone", [thread | (1 << 32), 0, 0, 0, 0, 0], allow),
            ("kill", [pid, 9, 0, 0, 0, 0], allow),
            ("kill", [0, 9, 0, 0, 0, 0], allow),
            (
                "kill",
                [u64::from(PID.wrapping_neg()), 9, 0, 0, 0, 0],
                allow,
            ),
            ("kill", [1, 9, 0, 0, 0, 0], trap),
            ("kill", [u64::MAX, 9, 0, 0, 0, 0], trap),
            ("tgkill", [pid, 7, 6, 0, 0, 0], allow),
            ("tgkill", [pid + 1, 7, 6, 0, 0, 0], trap),
            ("rt_sigaction", [2, 0, 0, 8, 0, 0], allow),
            ("rt_sigaction", [31, 0, 0, 8, 0, 0], trap),
            ("personality", [0xffff_ffff, 0, 0, 0, 0, 0], allow),
            ("personality", [0x40000, 0, 0, 0, 0, 0], trap),
            ("prctl", [libc::PR_SET_NAME as u64, 0, 0, 0, 0, 0], allow),
            (
                "prctl",
                [libc::PR_SET_DUMPABLE as u64, 0, 0, 0, 0, 0],
                notify,
            ),
            ("ioctl", [0, libc::TCGETS, 0, 0, 0, 0], allow),
            ("ioctl", [0, 0x5412, 0, 0, 0, 0], notify),
            ("socketpair", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0], allow),
            ("socketpair", [libc::AF_INET as u64, 1, 0, 0, 0, 0], notify),
            ("prlimit64", [0, 7, 0, 0, 0, 0], allow),
            ("prlimit64", [1, 7, 0, 0, 0, 0], notify),
            ("setpriority", [0, 0, 5, 0, 0, 0], allow),
            ("setpriority", [0, 1, 5, 0, 0, 0], notify),
            ("utimensat", [3, 0, 0, 0, 0, 0], allow),
            ("utimensat", [3, 0x1000, 0, 0, 0, 0], notify),
            ("socket", [2, 1, 0, 0, 0, 0], notify),
            ("inotify_init1", [0; 6], notify),
            ("ptrace", [0; 6], trap),
            ("mount", [0; 6], trap),
            ("io_uring_setup", [0; 6], trap),
            ("clone3", [0; 6], Action::Errno(ENOSYS).value()),
        ];
        for (name, args, expected) in cases {
            assert_eq!(answer(&plain, name, *args), *expected, "{name} {args:x?}");
        }
        // An unknown number is refused, another architecture killed.
        let policy = policy_for(&plain, PID, Action::Notify, Action::Trap).unwrap();
        let program = bpf::compile(&policy).unwrap();
        assert_eq!(bpf::run(&program, AUDIT_ARCH, 9999, &[0; 6]), notify);
        assert_eq!(
            bpf::run(&program, 0x4000_0003, 20, &[0; 6]),
            Action::KillProcess.value()
        );
    }

    #[test]
    fn network_wasi_and_additions_allow_more_and_never_the_kill_tier() {
        let allow = Action::Allow.value();
        let mut more = hello();
        more.network = true;
        more.wasi = true;
        more.syscalls = vec!["inotify_init1".into(), "prctl".into()];
        assert_eq!(answer(&more, "socket", [2, 1, 0, 0, 0, 0]), allow);
        assert_eq!(answer(&more, "socketpair", [2, 1, 0, 0, 0, 0]), allow);
        assert_eq!(answer(&more, "utimensat", [3, 0x1000, 0, 0, 0, 0]), allow);
        assert_eq!(answer(&more, "inotify_init1", [0; 6]), allow);
        assert_eq!(answer(&more, "prctl", [4, 0, 0, 0, 0, 0]), allow);
        assert_eq!(answer(&more, "ptrace", [0; 6]), Action::Trap.value());
        more.syscalls = vec!["ptrace".into()];
        assert!(matches!(
            policy_for(&more, PID, Action::Notify, Action::Trap),
            Err(SeccompError::Addition(_))
        ));
    }

    #[test]
    fn profiling_refers_instead_of_trapping() {
        let policy = policy_for(&hello(), PID, Action::Notify, Action::Notify).unwrap();
        let program = bpf::compile(&policy).unwrap();
        for name in ["ptrace", "execve", "inotify_init1"] {
            let nr = u32::try_from(policy::number(name).unwrap()).unwrap();
            assert_eq!(
                bpf::run(&program, AUDIT_ARCH, nr, &[0; 6]),
                Action::Notify.value(),
                "{name}"
            );
        }
        assert!(!program.iter().any(|i| i.k == Action::Trap.value()));
    }

    #[test]
    fn the_whole_policy_compiles_to_its_meaning() {
        let interesting = [
            0,
            1,
            2,
            u64::from(PID),
            u64::from(PID.wrapping_neg()),
            u64::from(SIGSYS),
            libc::TCGETS,
            0x5412,
            0xffff_ffff,
            u64::MAX,
            (libc::CLONE_THREAD | libc::CLONE_VM) as u64,
            (libc::CLONE_THREAD | libc::CLONE_NEWUSER) as u64,
            libc::PR_SET_NAME as u64,
        ];
        let mut more = hello();
        more.network = true;
        more.syscalls = vec!["inotify_init1".into()];
        for hello in [hello(), more] {
            for (refuse, kill) in [
                (Action::Notify, Action::Trap),
                (Action::Errno(EPERM), Action::Trap),
                (Action::Notify, Action::Notify),
            ] {
                let policy = policy_for(&hello, PID, refuse, kill).unwrap();
                let program = bpf::compile(&policy).unwrap();
                assert!(program.len() < 4096, "BPF_MAXINSNS: {}", program.len());
                for nr in 0..1024 {
                    for first in interesting {
                        for second in [0, libc::TCGETS, 1] {
                            let args = [first, second, 0, 0, 0, 0];
                            assert_eq!(
                                bpf::run(&program, AUDIT_ARCH, nr, &args),
                                policy.decide(AUDIT_ARCH, nr, &args),
                                "{nr} {args:x?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_conditional_syscall_has_its_rules() {
        for form in ALLOW_IN_FORM {
            assert!(!allowed_form(form.name, PID).is_empty(), "{}", form.name);
        }
    }
}
