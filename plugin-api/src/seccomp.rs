//! The syscall policy every worker runs under, by name: which syscalls a
//! plugin may make (**allow**), which it asks for harmlessly but must not
//! get (**refuse**: the syscall fails with `EPERM`, the worker lives, the
//! supervisor counts and names it), and which only an escape or an attack
//! makes (**kill**: the worker dies by `SIGSYS`, the syscall named).
//!
//! This is data only, shared by three places: the worker builds its
//! seccomp filters from it (with the argument checks of the conditional
//! entries, [`ALLOW_IN_FORM`]), the manifest checks `[permissions]
//! syscalls` against it, and the supervisor names and classifies what it
//! sees. Anything this policy does not list is refused: a syscall added to
//! a later kernel is an `EPERM`, never a way around the filter.
//!
//! Names are the kernel's, on x86_64 and aarch64 alike; where an
//! architecture lacks a syscall (aarch64 has no `open` or `fork`) the name
//! means nothing there. Numbers come from the `syscalls` crate (Linux
//! only), for the architecture this is built for.
//!
//! The references are Docker's default profile (allow what cannot widen a
//! process's reach, block the ~50 that can) and Chromium's baseline policy
//! (answer most refusals with `EPERM`, crash only on what signals an
//! attack).
//!
//! Longer than most modules because it is a table: every syscall named
//! once, with its reason, and tests that keep the lists disjoint.

/// What the policy does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The syscall runs.
    Allow,
    /// The syscall fails with `EPERM` (`ENOSYS` for [`PROBED`]); the worker
    /// lives and the supervisor records it.
    /// `[permissions] syscalls` can move it to [`Tier::Allow`].
    Refuse,
    /// The worker is killed by `SIGSYS`. No manifest can allow it.
    Kill,
}

impl Tier {
    /// The tier's name, as in `corral inspect` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Refuse => "refuse",
            Self::Kill => "kill",
        }
    }
}

/// Syscalls that share one reason for their tier.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// Why these syscalls are in their tier.
    pub reason: &'static str,
    /// The syscalls, by name.
    pub syscalls: &'static [&'static str],
}

/// A syscall allowed in one form only; its other forms are refused or
/// kill.
#[derive(Debug, Clone, Copy)]
pub struct Form {
    /// The syscall.
    pub name: &'static str,
    /// The form that is allowed, for people.
    pub allowed: &'static str,
    /// What becomes of the other forms: [`Tier::Refuse`] or [`Tier::Kill`].
    pub otherwise: Tier,
}

/// Allowed whatever the arguments: what acts only on the worker's own
/// memory, fds, threads and time, and on files Landlock governs.
#[rustfmt::skip]
pub const ALLOW: &[Group] = &[
    Group {
        reason: "its own memory, within RLIMIT_DATA and RLIMIT_MEMLOCK (JITs and wasm need \
                 executable mappings; large payloads travel in sealed memfds)",
        syscalls: &[
            "brk", "mmap", "munmap", "mprotect", "madvise", "mremap", "msync", "mincore",
            "membarrier", "mlock", "mlock2", "munlock", "mlockall", "munlockall", "mbind",
            "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "pkey_alloc",
            "pkey_free", "pkey_mprotect", "map_shadow_stack", "mseal", "memfd_create",
        ],
    },
    Group {
        reason: "files: Landlock decides every open, create, remove, rename, link and \
                 truncate; reading a path's metadata reveals no contents; the rest acts on \
                 fds it already holds",
        syscalls: &[
            "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
            "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
            "lseek", "fstat", "stat", "lstat", "newfstatat", "fstatat", "statx", "statfs",
            "fstatfs", "fcntl", "flock", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
            "readlink", "readlinkat", "access", "faccessat", "faccessat2", "mkdir", "mkdirat",
            "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
            "symlink", "symlinkat", "truncate", "ftruncate", "fsync", "fdatasync",
            "sync_file_range", "fallocate", "fadvise64", "readahead", "sendfile",
            "copy_file_range", "splice", "tee", "vmsplice", "umask", "dup", "dup2", "dup3",
            "fchmod", "fchown", "fgetxattr", "flistxattr", "fsetxattr", "fremovexattr",
        ],
    },
    Group {
        reason: "pipes, events, timers and waiting: on fds of its own",
        syscalls: &[
            "pipe", "pipe2", "eventfd", "eventfd2", "epoll_create", "epoll_create1", "epoll_ctl",
            "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
            "timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4",
        ],
    },
    Group {
        reason: "sockets it already holds: its channel on fd 3, and pairs it made \
                 (socketpair, below); making or reaching others is `network`'s",
        syscalls: &[
            "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg", "shutdown",
            "getsockname", "getpeername", "getsockopt", "setsockopt",
        ],
    },
    Group {
        reason: "threads of its own, and their scheduling (a thread is made with clone, \
                 below); it has no children to wait for",
        syscalls: &[
            "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
            "set_robust_list", "rseq", "set_tid_address", "gettid", "sched_yield",
            "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_getattr",
            "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "getcpu",
            "getpriority", "arch_prctl", "exit", "exit_group", "wait4", "waitid",
        ],
    },
    Group {
        reason: "signals and timers of its own (SIGSYS stays corral's, below)",
        syscalls: &[
            "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
            "sigaltstack", "pause", "alarm", "getitimer", "setitimer", "timer_create",
            "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
        ],
    },
    Group {
        reason: "time and randomness",
        syscalls: &[
            "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
            "time", "times", "getrandom", "restart_syscall",
        ],
    },
    Group {
        reason: "what it may know of itself: ids, limits (the hard limits the supervisor \
                 set cannot be raised), usage, the machine's size",
        syscalls: &[
            "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
            "getresgid", "getgroups", "getpgid", "getpgrp", "getsid", "uname", "sysinfo",
            "getrusage", "getrlimit", "setrlimit", "capget",
        ],
    },
    Group {
        reason: "Landlock: a plugin may only narrow what it can reach",
        syscalls: &[
            "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        ],
    },
];

/// Allowed in one form; the other forms are refused, or kill.
pub const ALLOW_IN_FORM: &[Form] = &[
    Form {
        name: "clone",
        allowed: "a thread: CLONE_THREAD, and no CLONE_NEW* namespace flag",
        otherwise: Tier::Kill,
    },
    Form {
        name: "kill",
        allowed: "to itself: its own pid, 0 or minus its pid (its own process group)",
        otherwise: Tier::Kill,
    },
    Form {
        name: "tgkill",
        allowed: "to its own threads",
        otherwise: Tier::Kill,
    },
    Form {
        name: "rt_sigqueueinfo",
        allowed: "to itself",
        otherwise: Tier::Kill,
    },
    Form {
        name: "rt_tgsigqueueinfo",
        allowed: "to its own threads",
        otherwise: Tier::Kill,
    },
    Form {
        name: "rt_sigaction",
        allowed: "any signal but SIGSYS, which reports a killed syscall",
        otherwise: Tier::Kill,
    },
    Form {
        name: "personality",
        allowed: "reading it (0xffffffff); setting one turns off ASLR and the like",
        otherwise: Tier::Kill,
    },
    Form {
        name: "prctl",
        allowed: "naming threads and reading its own state (PR_SET_NAME, PR_GET_NAME, \
                  PR_SET_VMA, PR_GET_DUMPABLE, PR_GET_SECCOMP, PR_SET_NO_NEW_PRIVS, \
                  PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ, PR_GET_KEEPCAPS, PR_GET_PDEATHSIG, \
                  PR_GET_TIMERSLACK, PR_SET_TIMERSLACK, PR_GET_THP_DISABLE, PR_SET_THP_DISABLE, \
                  PR_GET_CHILD_SUBREAPER, PR_GET_TID_ADDRESS)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "ioctl",
        allowed: "what asks about or sets up an fd of its own (TCGETS, TIOCGWINSZ, \
                  TIOCGPGRP, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "socketpair",
        allowed: "AF_UNIX: a pair connected to nothing else",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "prlimit64",
        allowed: "its own limits (pid 0 or its own)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "sched_setaffinity",
        allowed: "itself (pid 0 or its own)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "sched_setparam",
        allowed: "itself (pid 0 or its own)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "sched_setscheduler",
        allowed: "itself (pid 0 or its own)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "sched_setattr",
        allowed: "itself (pid 0 or its own)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "setpriority",
        allowed: "itself (PRIO_PROCESS, 0 or its own pid)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "get_robust_list",
        allowed: "its own thread's (pid 0)",
        otherwise: Tier::Refuse,
    },
    Form {
        name: "utimensat",
        allowed: "a file it holds open (no path: futimens)",
        otherwise: Tier::Refuse,
    },
];

/// Allowed with `[permissions] network = true`; refused without.
pub const NETWORK: Group = Group {
    reason: "making sockets and reaching others: the host network, and named Unix \
             sockets, which Landlock does not govern",
    syscalls: &["socket", "connect", "bind", "listen", "accept", "accept4"],
};

/// Allowed for a wasm plugin with `wasi = true`, besides the baseline.
pub const WASI: Group = Group {
    reason: "WASI's path_filestat_set_times, beneath a preopened folder",
    syscalls: &["utimensat"],
};

/// Kill the worker: only an escape or an attack makes these. Besides
/// these, the killing forms of [`ALLOW_IN_FORM`], and on x86_64 any
/// 32-bit syscall (`int 0x80`), which the filter's architecture check
/// kills.
#[rustfmt::skip]
pub const KILL: &[Group] = &[
    Group {
        reason: "new processes and programs: a worker is one process running one plugin",
        syscalls: &["fork", "vfork", "execve", "execveat"],
    },
    Group {
        reason: "other processes: reading, writing or signalling them",
        syscalls: &[
            "ptrace", "process_vm_readv", "process_vm_writev", "tkill", "pidfd_getfd",
            "pidfd_send_signal",
        ],
    },
    Group {
        reason: "namespaces and mounts: the ways out of a sandbox",
        syscalls: &[
            "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount",
            "open_tree", "open_tree_attr", "fsopen", "fsconfig", "fsmount", "fspick",
            "mount_setattr",
        ],
    },
    Group {
        reason: "the kernel's largest attack surfaces: BPF, perf events, keyrings, io_uring, \
                 userfaultfd",
        syscalls: &[
            "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
            "io_uring_setup", "io_uring_enter", "io_uring_register",
        ],
    },
    Group {
        reason: "the machine itself: kernels, modules, reboot, swap, port I/O, file handles \
                 outside any mount (the \"shocker\" escape)",
        syscalls: &[
            "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
            "reboot", "swapon", "swapoff", "acct", "iopl", "ioperm", "open_by_handle_at",
        ],
    },
];

/// Refused, and listed here because libraries ask for them: what they
/// get is `EPERM`. Anything in no list is refused the same way.
#[rustfmt::skip]
pub const REFUSE: &[Group] = &[
    Group {
        reason: "changing its identity (a worker's ids are set by the supervisor)",
        syscalls: &[
            "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
            "setfsuid", "setfsgid", "capset", "setsid", "setpgid",
        ],
    },
    Group {
        reason: "a path's owner, mode, times and attributes, watching paths, device nodes: \
                 Landlock does not govern these, so they could touch files outside the \
                 plugin's permissions",
        syscalls: &[
            "chmod", "fchmodat", "fchmodat2", "chown", "fchownat", "lchown", "utime", "utimes",
            "futimesat", "setxattr", "lsetxattr", "removexattr", "lremovexattr", "getxattr",
            "lgetxattr", "listxattr", "llistxattr", "setxattrat", "getxattrat", "listxattrat",
            "removexattrat", "mknod", "mknodat", "name_to_handle_at", "inotify_init",
            "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_init",
            "fanotify_mark",
        ],
    },
    Group {
        reason: "System V and POSIX IPC: shared with the host when the kernel gives the \
                 worker no IPC namespace of its own",
        syscalls: &[
            "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
            "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
            "mq_timedreceive", "mq_notify", "mq_getsetattr",
        ],
    },
    Group {
        reason: "the whole system's state, or other processes': clocks, names, logs, \
                 quotas, page migration, process handles",
        syscalls: &[
            "sync", "syncfs", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
            "sethostname", "setdomainname", "syslog", "quotactl", "vhangup", "ioprio_get",
            "ioprio_set", "modify_ldt", "seccomp", "pidfd_open", "kcmp", "process_madvise",
            "process_mrelease", "migrate_pages", "move_pages", "memfd_secret",
            "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "listmount",
            "statmount", "cachestat",
        ],
    },
];

/// Refused with `ENOSYS`, silently, by the kernel: libraries probe for
/// these and fall back on `ENOSYS` to what the filter can check. Never
/// allowed: the fallback is the point.
pub const PROBED: Group = Group {
    reason: "clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes \
             libc fall back to clone, whose flags it checks",
    syscalls: &["clone3"],
};

/// Whether `name` is allowed whatever its arguments.
pub fn always_allowed(name: &str) -> bool {
    ALLOW.iter().any(|group| group.syscalls.contains(&name))
}

/// The conditional entry for `name`, if it has one.
pub fn form(name: &str) -> Option<&'static Form> {
    ALLOW_IN_FORM.iter().find(|form| form.name == name)
}

/// Why `name` kills the worker in every form not allowed, if it does.
pub fn kill_reason(name: &str) -> Option<&'static str> {
    KILL.iter()
        .find(|group| group.syscalls.contains(&name))
        .map(|group| group.reason)
        .or_else(|| {
            form(name)
                .filter(|form| form.otherwise == Tier::Kill)
                .map(|form| form.allowed)
        })
}

/// The tier of `name` when it is not in a form the baseline allows: what
/// the supervisor makes of a syscall the filter stopped, and what a
/// manifest may add.
pub fn tier_beyond_baseline(name: &str) -> Tier {
    if kill_reason(name).is_some() {
        Tier::Kill
    } else if always_allowed(name) {
        Tier::Allow
    } else {
        Tier::Refuse
    }
}

/// A `[permissions] syscalls` entry that cannot be allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdditionError {
    /// Not a syscall on x86_64 or aarch64.
    #[error("{name:?} is not a Linux syscall on x86_64 or aarch64{}", hint(*closest))]
    Unknown {
        /// The name given.
        name: String,
        /// A known name close to it.
        closest: Option<&'static str>,
    },
    /// A syscall no manifest can allow: the kill tier, or answered
    /// `ENOSYS` on purpose.
    #[error("{name:?} can never be allowed: {why}")]
    Never {
        /// The syscall.
        name: String,
        /// Why, for people.
        why: String,
    },
}

fn hint(closest: Option<&str>) -> String {
    closest
        .map(|close| format!(" (did you mean {close:?}?)"))
        .unwrap_or_default()
}

/// Checks one `[permissions] syscalls` entry: a syscall on x86_64 or
/// aarch64, and not one that kills. The error says what is wrong and what
/// to do.
pub fn check_addition(name: &str) -> Result<(), AdditionError> {
    if !is_known(name) {
        return Err(AdditionError::Unknown {
            name: name.to_owned(),
            closest: closest(name),
        });
    }
    let never = |why: String| AdditionError::Never {
        name: name.to_owned(),
        why,
    };
    if PROBED.syscalls.contains(&name) {
        return Err(never(PROBED.reason.to_owned()));
    }
    if let Some(reason) = kill_reason(name) {
        let what = match form(name) {
            Some(form) => format!(
                "only {} is allowed, anything else kills the worker",
                form.allowed
            ),
            None => format!("it kills the worker: {reason}"),
        };
        return Err(never(format!("{what}; no manifest can change that")));
    }
    Ok(())
}

/// Every syscall name this policy knows: the x86_64 and aarch64 tables.
#[cfg(target_os = "linux")]
fn known_names() -> impl Iterator<Item = &'static str> {
    syscalls::x86_64::Sysno::iter()
        .map(|sysno| sysno.name())
        .chain(syscalls::aarch64::Sysno::iter().map(|sysno| sysno.name()))
}

/// Whether `name` is a syscall on x86_64 or aarch64.
#[cfg(target_os = "linux")]
pub fn is_known(name: &str) -> bool {
    name.parse::<syscalls::x86_64::Sysno>().is_ok()
        || name.parse::<syscalls::aarch64::Sysno>().is_ok()
}

/// Whether `name` looks like a syscall (the tables are Linux-only).
#[cfg(not(target_os = "linux"))]
pub fn is_known(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The known name closest to a mistyped one, if one is close.
fn closest(name: &str) -> Option<&'static str> {
    #[cfg(target_os = "linux")]
    let names = known_names();
    #[cfg(not(target_os = "linux"))]
    let names = ALLOW
        .iter()
        .chain(REFUSE)
        .chain(KILL)
        .flat_map(|group| group.syscalls.iter().copied());
    names
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The number of syscall `name` on this architecture, if it has one.
#[cfg(target_os = "linux")]
pub fn number(name: &str) -> Option<i64> {
    name.parse::<syscalls::Sysno>()
        .ok()
        .map(|sysno| i64::from(sysno.id()))
}

/// The name of syscall `number` on this architecture.
#[cfg(target_os = "linux")]
pub fn name(number: i64) -> Option<&'static str> {
    usize::try_from(number)
        .ok()
        .and_then(syscalls::Sysno::new)
        .map(|sysno| sysno.name())
}

/// `name (number)`, for messages: `sysinfo (99)`; a number this
/// architecture does not know is `number N`.
#[cfg(target_os = "linux")]
pub fn describe(number: i64) -> String {
    match name(number) {
        Some(name) => format!("{name} ({number})"),
        None => format!(
            "number {number} (no such syscall on {})",
            std::env::consts::ARCH
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn listed() -> impl Iterator<Item = (&'static str, &'static str)> {
        let groups = |list: &'static [Group], tier: &'static str| {
            list.iter()
                .flat_map(move |group| group.syscalls.iter().map(move |name| (*name, tier)))
        };
        groups(ALLOW, "allow")
            .chain(groups(REFUSE, "refuse"))
            .chain(groups(KILL, "kill"))
            .chain(NETWORK.syscalls.iter().map(|name| (*name, "network")))
            .chain(PROBED.syscalls.iter().map(|name| (*name, "probed")))
            .chain(ALLOW_IN_FORM.iter().map(|form| (form.name, "form")))
    }

    #[test]
    fn every_name_is_a_real_syscall_listed_once() {
        let mut seen = HashMap::new();
        for (name, tier) in listed() {
            assert!(is_known(name), "{name} ({tier}) is not a syscall");
            if let Some(first) = seen.insert(name, tier) {
                panic!("{name} is listed twice: {first} and {tier}");
            }
        }
        for name in WASI.syscalls {
            assert!(seen.contains_key(name), "{name}: its tier is not listed");
        }
    }

    #[test]
    fn what_the_issue_names_is_in_its_tier() {
        for name in [
            "fork",
            "vfork",
            "execve",
            "execveat",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "unshare",
            "setns",
            "mount",
            "bpf",
            "perf_event_open",
            "keyctl",
            "kexec_load",
            "init_module",
            "userfaultfd",
            "io_uring_setup",
            "personality",
            "clone",
            "kill",
            "tgkill",
            "rt_sigaction",
        ] {
            assert_eq!(tier_beyond_baseline(name), Tier::Kill, "{name}");
            assert!(check_addition(name).is_err(), "{name}");
        }
        for name in [
            "pipe2",
            "eventfd2",
            "epoll_wait",
            "epoll_pwait",
            "timerfd_create",
            "signalfd4",
            "poll",
            "ppoll",
            "select",
            "sysinfo",
            "mincore",
            "msync",
            "mlock",
            "fchmod",
            "fchown",
            "getrlimit",
            "ftruncate",
        ] {
            assert_eq!(tier_beyond_baseline(name), Tier::Allow, "{name}");
        }
        for name in [
            "socket",
            "connect",
            "ioctl",
            "prctl",
            "setpriority",
            "sched_setscheduler",
            "prlimit64",
            "inotify_init1",
            "chmod",
            "some_syscall_of_2030",
        ] {
            assert_eq!(tier_beyond_baseline(name), Tier::Refuse, "{name}");
        }
    }

    #[test]
    fn additions_are_checked_by_name_and_tier() {
        assert_eq!(check_addition("inotify_init1"), Ok(()));
        assert_eq!(check_addition("socket"), Ok(()));
        let unknown = check_addition("sysinf").unwrap_err();
        assert!(
            matches!(
                &unknown,
                AdditionError::Unknown {
                    closest: Some("sysinfo"),
                    ..
                }
            ),
            "{unknown:?}"
        );
        let unknown = unknown.to_string();
        assert!(unknown.contains("not a Linux syscall"), "{unknown}");
        assert!(unknown.contains("did you mean \"sysinfo\""), "{unknown}");
        let kill = check_addition("ptrace").unwrap_err().to_string();
        assert!(kill.contains("can never be allowed"), "{kill}");
        assert!(kill.contains("other processes"), "{kill}");
        let form = check_addition("clone").unwrap_err().to_string();
        assert!(form.contains("only a thread"), "{form}");
    }

    #[test]
    fn probed_syscalls_are_never_added() {
        assert_eq!(tier_beyond_baseline("clone3"), Tier::Refuse);
        let error = check_addition("clone3").unwrap_err().to_string();
        assert!(
            error.contains("falls back") || error.contains("fall back"),
            "{error}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn numbers_and_names_of_this_architecture() {
        let number = number("sysinfo").unwrap();
        assert_eq!(name(number), Some("sysinfo"));
        assert_eq!(describe(number), format!("sysinfo ({number})"));
        assert!(describe(99_999).starts_with("number 99999 (no such syscall"));
        // The baseline a worker needs exists under some name on every
        // architecture.
        for essential in ["read", "write", "openat", "mmap", "futex", "exit_group"] {
            assert!(self::number(essential).is_some(), "{essential}");
        }
    }
}
