//! The hostile battery against the worker sandbox (Landlock + seccomp,
//! applied before the plugin is loaded). Each test has a well-behaved
//! neighbour that must answer every call throughout.

use corral::{ErrorKind, ExitCause, PluginState};
use corral_tests::{Corral, Workspace};

fn hostile(extra: &str) -> Corral {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", extra)
        .hello("neighbour")
        .start();
    corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    corral
}

/// The kill tier: each attempt ends the worker by SIGSYS with the syscall
/// named, and it comes back (restarted at once, for the next case).
#[test]
fn kill_tier_syscalls_kill_the_worker_and_are_named() {
    let cases = [
        ("exec", "", "execve"),
        ("fork-bomb", "", "clone"),
        ("ptrace", "", "ptrace"),
        ("peek", "", "process_vm_readv"),
        ("sigsys", "", "rt_sigaction"),
        // CLONE_NEWUSER
        ("syscall", "unshare 0x10000000", "unshare"),
        // a thread in a new network namespace: CLONE_VM|FS|FILES|SIGHAND|THREAD|NEWNET
        ("syscall", "clone 0x40010f00 0 0 0 0", "clone"),
        ("syscall", "mount 0 0 0 0 0", "mount"),
        ("syscall", "bpf 0 0 0", "bpf"),
        ("syscall", "perf_event_open 0 0 0 0 0", "perf_event_open"),
        ("syscall", "keyctl 0 0", "keyctl"),
        ("syscall", "io_uring_setup 1 0", "io_uring_setup"),
        ("syscall", "userfaultfd 0", "userfaultfd"),
        // a signal to another process (init)
        ("syscall", "kill 1 0", "kill"),
        ("syscall", "tgkill 1 1 0", "tgkill"),
        // ADDR_NO_RANDOMIZE
        ("syscall", "personality 0x0040000", "personality"),
    ];
    let corral = hostile("[restart]\nbackoff_ms = 1\nbackoff_max_ms = 1\n");
    let neighbour = corral.keep_calling("neighbour");
    for (method, input, syscall) in cases {
        let before = corral.plugin("hostile");
        let error = corral
            .client()
            .call("hostile", method, input.as_bytes())
            .unwrap_err();
        assert_eq!(
            error.kind(),
            Some(ErrorKind::Crashed),
            "{method} {input}: {error}"
        );
        let after = corral.wait_replaced("hostile", before.pid);
        let exit = after.last_exit.unwrap();
        assert_eq!(
            exit.cause,
            ExitCause::Seccomp,
            "{input}: {}",
            exit.description
        );
        assert_eq!(exit.signal, Some(31), "{input}: {}", exit.description);
        assert!(
            exit.description
                .contains(&format!("forbidden syscall {syscall} (")),
            "{method} {input}: {}",
            exit.description
        );
    }
    neighbour.finish();
}

/// A 32-bit syscall fails every filter's architecture check: the kernel
/// kills the worker before its reporter can name the syscall, and the
/// exit says why it is unnamed.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_32_bit_syscall_kills_the_worker() {
    let corral = hostile("");
    let neighbour = corral.keep_calling("neighbour");
    let before = corral.plugin("hostile");
    let error = corral.client().call("hostile", "int80", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    let exit = corral
        .wait_replaced("hostile", before.pid)
        .last_exit
        .unwrap();
    assert_eq!(exit.cause, ExitCause::Seccomp, "{}", exit.description);
    assert_eq!(exit.signal, Some(31), "{}", exit.description);
    assert!(
        exit.description.contains("a forbidden syscall, unnamed"),
        "{}",
        exit.description
    );
    neighbour.finish();
}

/// The refuse tier: the plugin gets EPERM and keeps serving; each refusal
/// is counted, named in `corral inspect`, logged and an event once per
/// syscall per worker.
#[test]
fn refused_syscalls_fail_with_eperm_and_the_worker_serves() {
    let corral = hostile("");
    let pid = corral.plugin("hostile").pid;
    let neighbour = corral.keep_calling("neighbour");
    let mut client = corral.client();
    let error = client.call("hostile", "connect", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(
        error.to_string().contains("Operation not permitted"),
        "{error}"
    );
    for (request, syscall) in [
        ("inotify_init1 0", "inotify_init1"),
        ("inotify_init1 0", "inotify_init1"),
        // TIOCSTI on stdin: not a harmless ioctl
        ("ioctl 0 0x5412 0", "ioctl"),
        ("setuid 0", "setuid"),
        // another process's limits
        ("prlimit64 1 7 0 0", "prlimit64"),
        // PR_SET_DUMPABLE
        ("prctl 4 0", "prctl"),
    ] {
        let reply = client
            .call("hostile", "syscall", request.as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("{syscall} failed: errno 1 (Operation not permitted (os error 1))"),
        );
    }
    // What the baseline allows, in the forms it allows.
    for request in [
        "eventfd2 0 0",
        "timerfd_create 1 0",
        "epoll_create1 0",
        "sched_getscheduler 0",
        "getpriority 0 0",
        // its own limits; PR_GET_DUMPABLE
        "prlimit64 0 7 0 0",
        "prctl 3",
    ] {
        let reply = client
            .call("hostile", "syscall", request.as_bytes())
            .unwrap();
        let reply = String::from_utf8_lossy(&reply).into_owned();
        assert!(reply.contains(" returned "), "{request}: {reply}");
    }
    assert_eq!(corral.plugin("hostile").pid, pid, "refusals do not kill");

    let details = client.inspect("hostile").unwrap();
    let counts: Vec<(&str, u64)> = details
        .refused
        .iter()
        .map(|refusal| (refusal.syscall.as_str(), refusal.count))
        .collect();
    for expected in [
        ("inotify_init1", 2),
        ("socket", 1),
        ("ioctl", 1),
        ("setuid", 1),
        ("prlimit64", 1),
        ("prctl", 1),
    ] {
        assert!(counts.contains(&expected), "{expected:?} in {counts:?}");
    }
    assert!(
        details
            .refused
            .iter()
            .all(|refusal| refusal.tier == corral_plugin_api::seccomp::Tier::Refuse)
    );
    let seccomp = details.layers.iter().find(|l| l.name == "seccomp").unwrap();
    assert!(seccomp.detail.contains("named and counted"), "{seccomp:?}");

    let events = client.events(0).unwrap();
    let refused: Vec<&str> = events
        .iter()
        .filter(|event| event.kind == corral::EventKind::Denied && event.plugin == "hostile")
        .map(|event| event.detail.as_str())
        .collect();
    let inotify: Vec<&&str> = refused
        .iter()
        .filter(|detail| detail.starts_with("syscall inotify_init1 ("))
        .collect();
    assert_eq!(inotify.len(), 1, "once per syscall per worker: {refused:?}");
    assert!(
        inotify[0].contains("refused with EPERM")
            && inotify[0].contains("[permissions] syscalls = [\"inotify_init1\"]"),
        "{inotify:?}"
    );
    assert!(
        refused
            .iter()
            .any(|detail| detail.contains("ioctl (16), request 0x5412")),
        "{refused:?}"
    );
    let text = String::from_utf8_lossy(&corral.cli(&["inspect", "hostile"]).stdout).into_owned();
    assert!(text.contains("  refused      inotify_init1 2, "), "{text}");
    neighbour.finish();
}

#[test]
fn a_manifest_can_allow_a_refused_syscall_but_never_a_killing_one() {
    let corral = Corral::builder()
        .native_with(
            "hostile",
            "hostile",
            "[permissions]\nsyscalls = [\"inotify_init1\"]\n",
        )
        .native_with(
            "greedy",
            "hostile",
            "[permissions]\nsyscalls = [\"inotify_init1\", \"ptrace\"]\n",
        )
        .start();
    corral.wait_ready("hostile");
    let mut client = corral.client();
    let reply = client
        .call("hostile", "syscall", b"inotify_init1 0")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("inotify_init1 returned "), "{reply}");
    let details = client.inspect("hostile").unwrap();
    assert_eq!(details.syscalls, ["inotify_init1"]);
    assert!(details.refused.is_empty(), "{:?}", details.refused);
    let seccomp = details.layers.iter().find(|l| l.name == "seccomp").unwrap();
    assert!(seccomp.detail.contains("+ inotify_init1;"), "{seccomp:?}");
    let checked = std::process::Command::new(corral_tests::corral_bin())
        .arg("check")
        .arg(corral.dir().join("plugins/hostile"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(
        checked.status.success()
            && text.contains("  syscalls      the seccomp baseline + inotify_init1\n"),
        "{text}"
    );

    corral.wait_until("greedy is failed", || {
        corral
            .find("greedy")
            .is_some_and(|plugin| plugin.state == PluginState::Failed)
    });
    let error = corral.plugin("greedy").error.unwrap();
    assert!(
        error.contains("plugin.toml:9:")
            && error.contains("\"ptrace\" can never be allowed: it kills the worker"),
        "{error}"
    );
}

#[test]
fn files_outside_the_permissions_are_denied_and_the_worker_lives() {
    let allowed = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("in.txt"), b"readable").unwrap();
    std::fs::write(secret.path().join("secret.txt"), b"secret").unwrap();
    std::fs::create_dir(allowed.path().join("out")).unwrap();
    // Open to every uid: what is denied below is denied by Landlock.
    for dir in [allowed.path(), secret.path(), &allowed.path().join("out")] {
        corral_tests::open_to_all(dir);
    }
    let corral = hostile(&format!(
        "[permissions]\nread = [\"{}\"]\nwrite = [\"{}/out\"]\n",
        allowed.path().display(),
        allowed.path().display()
    ));
    let pid = corral.plugin("hostile").pid;
    let neighbour = corral.keep_calling("neighbour");
    let mut client = corral.client();
    let path = |p: &std::path::Path| p.to_str().unwrap().as_bytes().to_vec();

    let read = client.call(
        "hostile",
        "read-file",
        &path(&allowed.path().join("in.txt")),
    );
    assert_eq!(read.unwrap(), b"readable");
    for denied in [
        std::path::PathBuf::from("/etc/shadow"),
        secret.path().join("secret.txt"),
    ] {
        let error = client
            .call("hostile", "read-file", &path(&denied))
            .unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
        assert!(
            error.to_string().contains("Permission denied"),
            "{}: {error}",
            denied.display()
        );
    }
    // Writing: inside `write` yes, beside it (read-only) and elsewhere no.
    let error = client
        .call(
            "hostile",
            "write-file",
            &path(&allowed.path().join("not-here.bin")),
        )
        .unwrap_err();
    assert!(error.to_string().contains("Permission denied"), "{error}");
    let error = client
        .call("hostile", "write-file", &path(&secret.path().join("x.bin")))
        .unwrap_err();
    assert!(error.to_string().contains("Permission denied"), "{error}");
    let wrote = client.call(
        "hostile",
        "write-file",
        &path(&allowed.path().join("out/ok.bin")),
    );
    assert_eq!(wrote.unwrap(), b"wrote 16 MiB");
    let ops = client.call("hostile", "fs-ops", &path(&allowed.path().join("out")));
    assert_eq!(ops.unwrap(), br#"["b.txt"] 1"#);
    assert_eq!(corral.plugin("hostile").pid, pid, "denials do not kill");
    neighbour.finish();
}

#[test]
fn threads_time_and_allocation_work_in_the_sandbox() {
    let corral = hostile("");
    let mut client = corral.client();
    assert_eq!(
        client.call("hostile", "threads", b"8").unwrap(),
        b"8 threads ran"
    );
    assert_eq!(
        client.call("neighbour", "sleep", b"10").unwrap(),
        b"slept 10 ms"
    );
    assert_eq!(
        client.call("neighbour", "upper", b"still fine").unwrap(),
        b"STILL FINE"
    );
    assert_eq!(corral.plugin("hostile").restarts, 0);
}

#[test]
fn network_permission_allows_sockets() {
    let corral = hostile("[permissions]\nnetwork = true\n");
    let pid = corral.plugin("hostile").pid;
    let neighbour = corral.keep_calling("neighbour");
    let error = corral.client().call("hostile", "connect", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(error.to_string().contains("Connection refused"), "{error}");
    assert_eq!(corral.plugin("hostile").pid, pid);
    neighbour.finish();
}

#[test]
fn constructor_escape_at_dlopen_is_already_confined() {
    let corral = Corral::builder()
        .native("hostile-init", "hostile-init")
        .hello("neighbour")
        .start();
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_last_exit(
        "hostile-init",
        "the constructor's escape is recorded",
        |exit| exit.cause == ExitCause::Seccomp,
    );
    let plugin = corral.plugin("hostile-init");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.unwrap();
    assert!(
        exit.description.contains("forbidden syscall execve"),
        "{}",
        exit.description
    );
    neighbour.finish();
}

#[test]
fn every_thread_of_a_ready_worker_is_confined() {
    let corral = hostile("");
    let pid = corral.plugin("hostile").pid.unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_owned)
        };
        assert_eq!(field("Seccomp:").as_deref(), Some("2"), "{status}");
        assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{status}");
    }
    assert!(
        corral.log().contains("ready, every sandbox layer in force"),
        "{}",
        corral.log()
    );
}

#[test]
fn strict_refuses_a_worker_with_a_missing_layer() {
    let Some(nobody) = corral_tests::nobody_or_skip("strict_refuses_a_worker_with_a_missing_layer")
    else {
        return;
    };
    // An ordinary user's supervisor cannot give workers their own uid: with
    // --strict that missing layer is fatal.
    let corral = Corral::builder()
        .hello("hello")
        .as_user(nobody)
        .arg("--strict")
        .start();
    corral.wait_last_exit("hello", "the refusal is recorded", |exit| {
        exit.cause == ExitCause::Sandbox
    });
    let plugin = corral.plugin("hello");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.unwrap();
    assert!(
        exit.description
            .contains("strict: missing sandbox layers: uid"),
        "{}",
        exit.description
    );
    assert!(corral.client().call("hello", "echo", b"x").is_err());
}

#[test]
fn without_strict_a_missing_layer_is_a_warning_in_status() {
    let Some(nobody) =
        corral_tests::nobody_or_skip("without_strict_a_missing_layer_is_a_warning_in_status")
    else {
        return;
    };
    let corral = Corral::builder().hello("hello").as_user(nobody).start();
    corral.wait_ready("hello");
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
    let details = corral.client().inspect("hello").unwrap();
    let uid = details.layers.iter().find(|l| l.name == "uid").unwrap();
    assert!(!uid.active && uid.detail.contains("only root"), "{uid:?}");
    assert!(
        corral.log().contains("sandbox layers missing: uid"),
        "{}",
        corral.log()
    );
}

#[test]
fn an_ordinary_users_corral_refuses_and_kills_by_the_same_policy() {
    let Some(nobody) = corral_tests::nobody_or_skip(
        "an_ordinary_users_corral_refuses_and_kills_by_the_same_policy",
    ) else {
        return;
    };
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .as_user(nobody)
        .start();
    corral.wait_ready("hostile");
    let pid = corral.plugin("hostile").pid;
    let mut client = corral.client();
    let error = client.call("hostile", "connect", b"").unwrap_err();
    assert!(
        error.to_string().contains("Operation not permitted"),
        "{error}"
    );
    assert_eq!(corral.plugin("hostile").pid, pid);
    let refused = client.inspect("hostile").unwrap().refused;
    assert!(
        refused
            .iter()
            .any(|r| r.syscall == "socket" && r.count == 1),
        "{refused:?}"
    );
    let error = client.call("hostile", "exec", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    let exit = corral.wait_replaced("hostile", pid).last_exit.unwrap();
    assert!(
        exit.description.contains("forbidden syscall execve ("),
        "{}",
        exit.description
    );
}
