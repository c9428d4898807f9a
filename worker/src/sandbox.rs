//! The part of the sandbox the worker applies to itself, after the
//! handshake and before the plugin is loaded (a library's constructors run
//! at `dlopen`, so they must already be confined):
//!
//! 1. Landlock: the file system shrinks to the plugin's module, the system
//!    library folders (read-only, for the module's own dependencies) and the
//!    `[permissions]` read/write paths. Everything else is `EACCES`.
//! 2. seccomp: a `SIGSYS` reporter is installed, then three filters:
//!    `clone3` fails with `ENOSYS` (so libc falls back to `clone`, which is
//!    allowed for threads only); changing the `SIGSYS` handler kills the
//!    process; and an allow-list of what a plugin runtime needs. Any other
//!    syscall traps: the reporter writes a `Violation` frame naming it on
//!    fd 3 and the process dies by `SIGSYS`.
//!
//! `PR_SET_NO_NEW_PRIVS` is already set by the supervisor before exec.
#![allow(
    unsafe_code,
    reason = "installs a SIGSYS handler and reads its siginfo"
)]

use corral_plugin_api::wire::{self, Hello, Layer};
use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;

/// Read-only paths every native plugin gets: where its own shared-library
/// dependencies live.
const SYSTEM_LIBRARIES: [&str; 5] = [
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/etc/ld.so.cache",
];

/// Confining the worker failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("seccomp: {0}")]
    SeccompBackend(#[from] seccompiler::BackendError),
    #[error("cannot install the SIGSYS reporter: {0}")]
    Handler(std::io::Error),
}

/// Applies Landlock then seccomp; returns what is in force.
pub(crate) fn confine(hello: &Hello) -> Result<Vec<Layer>, SandboxError> {
    let landlock = restrict_files(hello)?;
    install_reporter()?;
    for filter in filters(hello)? {
        seccompiler::apply_filter_all_threads(&filter)?;
    }
    let seccomp = Layer {
        name: "seccomp".into(),
        active: true,
        detail: format!(
            "allow-list{}; anything else: SIGSYS",
            if hello.network { " with sockets" } else { "" }
        ),
    };
    Ok(vec![landlock, seccomp])
}

fn restrict_files(hello: &Hello) -> Result<Layer, SandboxError> {
    let abi = ABI::V5;
    let read_only = AccessFs::from_read(abi);
    let read = SYSTEM_LIBRARIES
        .iter()
        .map(|path| (*path).to_owned())
        .chain(std::iter::once(hello.entry.clone()))
        .chain(hello.read.iter().cloned());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(read, read_only))?
        .add_rules(path_beneath_rules(&hello.write, AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(
            &hello.cache_dir,
            AccessFs::from_all(abi),
        ))?;
    if let Some(fd) = hello.entry_fd {
        // SAFETY: the supervisor passes the module open on this fd, which
        // stays open for the worker's life.
        let module = unsafe { BorrowedFd::borrow_raw(fd) };
        ruleset = ruleset.add_rule(PathBeneath::new(
            module,
            read_only & AccessFs::from_file(abi),
        ))?;
    }
    let status = ruleset.restrict_self()?;
    let (active, detail) = match status.ruleset {
        RulesetStatus::FullyEnforced => (true, "fully enforced".to_owned()),
        RulesetStatus::PartiallyEnforced => {
            (true, "partially enforced (older kernel ABI)".to_owned())
        }
        RulesetStatus::NotEnforced => (false, "not supported by this kernel".to_owned()),
    };
    let detail = format!(
        "{detail}: read {} path(s), write {} path(s)",
        1 + hello.read.len(),
        hello.write.len()
    );
    Ok(Layer {
        name: "landlock".into(),
        active,
        detail,
    })
}

/// The three seccomp filters, in the order they must be installed.
fn filters(hello: &Hello) -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = target_arch();
    let rules =
        |syscalls: &[(i64, Vec<SeccompRule>)]| syscalls.iter().cloned().collect::<BTreeMap<_, _>>();
    // clone3 -> ENOSYS; everything else passes to the next filter.
    let clone3 = SeccompFilter::new(
        rules(&[(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    // Taking over SIGSYS would let a plugin survive a violation.
    let sigsys = SeccompFilter::new(
        rules(&[(
            libc::SYS_rt_sigaction,
            vec![SeccompRule::new(vec![arg_eq(0, libc::SIGSYS as u64)?])?],
        )]),
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        arch,
    )?;
    let allowed = SeccompFilter::new(
        allow_list(hello)?,
        SeccompAction::Trap,
        SeccompAction::Allow,
        arch,
    )?;
    Ok(vec![
        clone3.try_into()?,
        sigsys.try_into()?,
        allowed.try_into()?,
    ])
}

fn arg_eq(index: u8, value: u64) -> Result<SeccompCondition, SandboxError> {
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Eq,
        value,
    )?)
}

fn allow_list(hello: &Hello) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    let any = |syscall: i64| (syscall, Vec::new());
    let mut syscalls: BTreeMap<i64, Vec<SeccompRule>> = [
        // memory
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_mremap,
        libc::SYS_membarrier,
        libc::SYS_memfd_create, // large payloads travel in sealed memfds
        // files (Landlock decides which)
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_openat,
        libc::SYS_close,
        libc::SYS_lseek,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_fcntl,
        libc::SYS_getdents64,
        libc::SYS_getcwd,
        libc::SYS_readlinkat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_mkdirat,
        libc::SYS_unlinkat,
        libc::SYS_renameat2,
        libc::SYS_ftruncate,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_flock,
        // the channel
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_shutdown,
        // threads, signals, time
        libc::SYS_clone3, // made ENOSYS by the first filter
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_get_robust_list,
        libc::SYS_rseq,
        libc::SYS_set_tid_address,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_rt_sigaction, // not for SIGSYS: second filter
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_getrandom,
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // identity
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getppid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_uname,
    ]
    .into_iter()
    .map(any)
    .collect();
    // x86_64 libc still calls the old path syscalls for these.
    #[cfg(target_arch = "x86_64")]
    for syscall in [
        libc::SYS_access,
        libc::SYS_readlink,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_mkdir,
        libc::SYS_rmdir,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_dup2,
    ] {
        syscalls.insert(syscall, Vec::new());
    }
    for syscall in [
        libc::SYS_dup,
        libc::SYS_dup3,
        libc::SYS_getrusage,
        libc::SYS_umask,
    ] {
        syscalls.insert(syscall, Vec::new());
    }
    // Threads, never new processes.
    let thread = libc::CLONE_THREAD as u64;
    syscalls.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(thread),
            thread,
        )?])?],
    );
    // Signals to itself only (abort, raise).
    let pid = u64::from(std::process::id());
    syscalls.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![arg_eq(0, pid)?])?],
    );
    // Naming threads.
    syscalls.insert(
        libc::SYS_prctl,
        vec![
            SeccompRule::new(vec![arg_eq(0, libc::PR_SET_NAME as u64)?])?,
            SeccompRule::new(vec![arg_eq(0, libc::PR_GET_NAME as u64)?])?,
        ],
    );
    if hello.wasi {
        // wasmtime-wasi's async runtime, and the file calls WASI adds.
        for syscall in [
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_eventfd2,
            libc::SYS_utimensat,
            libc::SYS_linkat,
            libc::SYS_symlinkat,
            libc::SYS_fadvise64,
            libc::SYS_openat2, // cap-std opens beneath a preopen with it
        ] {
            syscalls.insert(syscall, Vec::new());
        }
        // The async runtime wakes itself through a Unix socket pair.
        syscalls.insert(
            libc::SYS_socketpair,
            vec![SeccompRule::new(vec![arg_eq(0, libc::AF_UNIX as u64)?])?],
        );
        // Asking whether stdout is a terminal, setting non-blocking mode.
        syscalls.insert(
            libc::SYS_ioctl,
            [libc::TCGETS, libc::FIONBIO, libc::FIOCLEX]
                .into_iter()
                .map(|request| Ok(SeccompRule::new(vec![arg_eq(1, request)?])?))
                .collect::<Result<_, SandboxError>>()?,
        );
    }
    if hello.network {
        for syscall in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_listen,
            libc::SYS_accept4,
            libc::SYS_getsockname,
            libc::SYS_getpeername,
            libc::SYS_setsockopt,
            libc::SYS_getsockopt,
        ] {
            syscalls.insert(syscall, Vec::new());
        }
    }
    Ok(syscalls)
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
    #[cfg(target_arch = "riscv64")]
    return TargetArch::riscv64;
}

/// Installs the `SIGSYS` handler that reports a trapped syscall.
fn install_reporter() -> Result<(), SandboxError> {
    // SAFETY: a zeroed sigaction is valid; the fields are set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = report_violation as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action` is a valid sigaction with an async-signal-safe
    // handler; the old action is not needed.
    if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
        return Err(SandboxError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `SIGSYS` handler: writes a `Violation` frame on fd 3, then asks to reset
/// the `SIGSYS` handler, which the second filter answers by killing the
/// process with `SIGSYS`. Async-signal-safe: no allocation, only `write`
/// and `rt_sigaction`.
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
    // SAFETY: a zeroed sigaction (SIG_DFL) is valid. The second filter kills
    // the process for this call, with SIGSYS.
    unsafe {
        let default: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGSYS, &default, std::ptr::null_mut());
        libc::_exit(111); // unreachable unless the filter is missing
    }
}
