//! Limits enforced from outside: rlimits set before exec, call deadlines
//! enforced by the supervisor. Each test has a well-behaved neighbour that
//! must answer every call throughout.

use corral::{ErrorKind, ExitCause};
use corral_tests::{Corral, Workspace};
use std::time::{Duration, Instant};

fn hostile(limits: &str) -> Corral {
    Corral::builder()
        .native_with("hostile", "hostile", limits)
        .hello("neighbour")
        .start()
}

#[test]
fn runaway_call_is_killed_at_the_plugin_deadline() {
    let corral = hostile("[limits]\ncall_timeout_ms = 300\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let started = Instant::now();
    let error = corral.client().call("hostile", "spin", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    assert!(
        error.to_string().contains("did not answer within 300 ms"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let after = corral.wait_replaced("hostile", before.pid);
    let exit = after.last_exit.unwrap();
    assert_eq!(exit.cause, ExitCause::CallDeadline, "{}", exit.description);
    assert!(
        exit.description
            .contains("missed the plugin's 300 ms deadline"),
        "{}",
        exit.description
    );
    assert_eq!(
        corral.client().call("hostile", "echo", b"back").unwrap(),
        b"back"
    );
    neighbour.finish();
}

#[test]
fn memory_limit_refuses_allocations_and_the_worker_lives() {
    let corral = hostile("[limits]\nmemory_mb = 64\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let error = corral.client().call("hostile", "balloon", b"").unwrap_err();
    let message = error.to_string();
    let mib: u64 = message
        .strip_prefix("out of memory after ")
        .and_then(|rest| rest.strip_suffix(" MiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected error: {message}"));
    assert!(
        (1..64).contains(&mib),
        "allocated {mib} MiB under a 64 MiB limit"
    );
    assert_eq!(corral.plugin("hostile").pid, before.pid);
    assert_eq!(
        corral.client().call("hostile", "echo", b"ok").unwrap(),
        b"ok"
    );
    neighbour.finish();
}

#[test]
fn open_files_limit_refuses_fds_and_the_worker_lives() {
    let corral = hostile("[limits]\nopen_files = 16\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let error = corral
        .client()
        .call("hostile", "fds", b"")
        .unwrap_err()
        .to_string();
    let opened: u64 = error
        .rsplit_once(" after ")
        .and_then(|(_, rest)| rest.strip_suffix(" more fds"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected error: {error}"));
    assert!(
        opened < 16,
        "opened {opened} more fds under a limit of 16: {error}"
    );
    assert!(error.contains("Too many open files"), "{error}");
    assert_eq!(corral.plugin("hostile").pid, before.pid);
    neighbour.finish();
}

#[test]
fn cpu_time_limit_kills_with_sigxcpu() {
    let corral = hostile("[limits]\ncpu_seconds = 1\ncall_timeout_ms = 20000\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let error = corral.client().call("hostile", "spin", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("SIGXCPU"), "{error}");
    let exit = corral
        .wait_replaced("hostile", before.pid)
        .last_exit
        .unwrap();
    assert_eq!(exit.cause, ExitCause::CpuLimit, "{}", exit.description);
    neighbour.finish();
}

#[test]
fn file_size_limit_kills_with_sigxfsz() {
    let out = tempfile::tempdir().unwrap();
    corral_tests::open_to_all(out.path());
    let limits = format!(
        "[permissions]\nwrite = [\"{}\"]\n\n[limits]\nfile_size_mb = 1\n",
        out.path().display()
    );
    let corral = hostile(&limits);
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let target = out.path().join("big.bin");
    let error = corral
        .client()
        .call("hostile", "write-file", target.to_str().unwrap().as_bytes())
        .unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    let exit = corral
        .wait_replaced("hostile", before.pid)
        .last_exit
        .unwrap();
    assert_eq!(exit.cause, ExitCause::FileSizeLimit, "{}", exit.description);
    assert!(std::fs::metadata(&target).unwrap().len() <= 1 << 20);
    neighbour.finish();
}

#[test]
fn workers_run_with_no_new_privileges_and_their_rlimits() {
    let corral = hostile("[limits]\nmemory_mb = 64\nopen_files = 32\n");
    let pid = corral.wait_ready("hostile").pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
        "{status}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |name: &str| -> Vec<String> {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{limits}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("Max data size"), ["67108864", "67108864"]);
    assert_eq!(row("Max open files"), ["32", "32"]);
    assert_eq!(row("Max core file size"), ["0", "0"]);
    assert_eq!(row("Max file size"), ["67108864", "67108864"]);
}

#[test]
fn busy_background_thread_is_killed_by_the_cpu_watchdog() {
    let corral = hostile("[limits]\ncpu_percent = 10\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    // The call returns at once; the spinning thread is what the watchdog sees.
    let reply = corral.client().call("hostile", "spin-thread", b"").unwrap();
    assert_eq!(reply, b"spinning in the background");
    let after = corral.wait_replaced("hostile", before.pid);
    let exit = after.last_exit.unwrap();
    assert_eq!(exit.cause, ExitCause::CpuLimit, "{}", exit.description);
    assert!(
        exit.description.contains("watchdog:") && exit.description.contains("limit 10%"),
        "{}",
        exit.description
    );
    neighbour.finish();
}

#[test]
fn thread_bomb_is_refused_by_the_kernel_under_a_worker_uid() {
    let corral = hostile("[limits]\nthreads = 4\n");
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    if !corral
        .client()
        .inspect("hostile")
        .unwrap()
        .layers
        .iter()
        .any(|l| l.name == "uid" && l.active)
    {
        eprintln!(
            "SKIPPED thread_bomb_is_refused_by_the_kernel_under_a_worker_uid: workers have no uid of their own (not root)"
        );
        return;
    }
    let error = corral
        .client()
        .call("hostile", "thread-bomb", b"")
        .unwrap_err()
        .to_string();
    // RLIMIT_NPROC counts the worker's main thread too.
    assert!(error.starts_with("thread refused after 3 more"), "{error}");
    assert_eq!(corral.plugin("hostile").pid, before.pid);
    neighbour.finish();
}

#[test]
fn thread_bomb_is_killed_by_the_watchdog_without_a_worker_uid() {
    let Some(nobody) =
        corral_tests::nobody_or_skip("thread_bomb_is_killed_by_the_watchdog_without_a_worker_uid")
    else {
        return;
    };
    // An ordinary user's supervisor cannot give workers a uid of their own:
    // RLIMIT_NPROC would count all of that user's processes, so the
    // watchdog enforces `threads`.
    let corral = Corral::builder()
        .native_with("hostile", "hostile", "[limits]\nthreads = 4\n")
        .hello("neighbour")
        .as_user(nobody)
        .start();
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let _ = corral.client().call("hostile", "thread-bomb", b"");
    let after = corral.wait_replaced("hostile", before.pid);
    let exit = after.last_exit.unwrap();
    assert_eq!(exit.cause, ExitCause::ThreadLimit, "{}", exit.description);
    assert!(exit.description.contains("limit 4"), "{}", exit.description);
    neighbour.finish();
}

/// A stand-in for a delegated cgroup v2 subtree: a plain folder. The
/// machine's own cgroup tree is never touched; this checks what corral
/// writes where, and that the worker joins before any plugin code runs.
#[test]
fn cgroup_subtree_gets_each_plugins_limits_and_worker() {
    let subtree = tempfile::tempdir().unwrap();
    let corral = Corral::builder()
        .native_with(
            "hostile",
            "hostile",
            "[limits]\nmemory_mb = 32\nthreads = 8\ncpu_percent = 25\n",
        )
        .arg("--cgroup")
        .arg(subtree.path().to_str().unwrap())
        .start();
    let pid = corral.wait_ready("hostile").pid.unwrap();
    let read =
        |file: &str| std::fs::read_to_string(subtree.path().join("hostile").join(file)).unwrap();
    assert_eq!(read("memory.max"), (32u64 << 20).to_string());
    assert_eq!(read("pids.max"), "8");
    assert_eq!(read("cpu.max"), "25000 100000");
    assert_eq!(read("cgroup.procs"), pid.to_string());
    let details = corral.client().inspect("hostile").unwrap();
    let cgroup = details
        .layers
        .iter()
        .find(|l| l.name == "cgroup")
        .expect("a cgroup layer");
    assert!(cgroup.active, "{cgroup:?}");
}

#[test]
fn unusable_cgroup_subtree_refuses_the_worker() {
    let not_a_folder = tempfile::NamedTempFile::new().unwrap();
    let corral = Corral::builder()
        .hello("hello")
        .arg("--cgroup")
        .arg(not_a_folder.path().to_str().unwrap())
        .start();
    corral.wait_last_exit("hello", "the refusal is recorded", |exit| {
        exit.cause == ExitCause::Sandbox
    });
    let exit = corral.plugin("hello").last_exit.unwrap();
    assert!(exit.description.contains("cgroup"), "{}", exit.description);
    assert_ne!(corral.plugin("hello").state, corral::PluginState::Ready);
}
