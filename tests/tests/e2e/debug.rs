//! `corral serve --debug NAME`: that plugin's worker stops, sandboxed,
//! before the plugin loads, the log names the `gdb -p` line, a real gdb
//! attaches, and once continued it serves with no call deadline, while
//! every other plugin serves as usual.

use corral::PluginState;
use corral_tests::{Corral, Workspace};
use std::time::{Duration, Instant};

/// The state letter of `/proc/PID/stat` (`T`: stopped).
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

#[test]
fn a_debugged_worker_waits_for_a_debugger_then_serves_without_deadlines() {
    let corral = Corral::builder()
        .hello("hello")
        .hello("other")
        .arg("--debug")
        .arg("hello")
        .arg("--call-timeout-ms")
        .arg("300")
        .start();
    corral.wait_ready("other");
    // The supervisor's log says which process to attach to.
    let mut pid = None;
    corral.wait_until("hello's worker is stopped", || {
        pid = corral.log().lines().find_map(|line| {
            let (_, after) = line.split_once("debug: worker ")?;
            after.split_once(" is stopped")?.0.parse::<u32>().ok()
        });
        pid.is_some_and(|pid| process_state(pid) == 'T')
    });
    let pid = pid.expect("a pid");
    assert!(
        corral_tests::is_worker(pid),
        "{}",
        corral_tests::cmdline(pid)
    );
    assert_eq!(corral.plugin("hello").state, PluginState::Starting);
    let log = corral.log();
    assert!(
        log.contains(&format!("gdb -p {pid} (then `continue`)")),
        "{log}"
    );
    // Confined already: the sandbox is in force before the debugger comes.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    // The others do not wait for it.
    assert_eq!(corral.client().call("other", "echo", b"x").unwrap(), b"x");

    // A real debugger attaches to the confined worker and reads it.
    corral_tests::gdb_attaches(pid);
    corral_tests::send_signal(pid, libc::SIGCONT);
    corral.wait_ready("hello");

    // No deadline: 300 ms is the default, and a 1 s call still answers.
    let started = Instant::now();
    let slept = corral
        .client()
        .call("hello", "sleep", b"1000")
        .expect("no deadline");
    assert_eq!(slept, b"slept 1000 ms");
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let limits = corral.client().inspect("hello").unwrap().limits;
    assert!(limits.call_timeout_ms > 24 * 3600 * 1000, "{limits:?}");
    // The other plugin keeps its deadline.
    let error = corral
        .client()
        .call("other", "sleep", b"1000")
        .expect_err("past the deadline");
    assert_eq!(error.kind(), Some(corral::ErrorKind::Timeout), "{error}");
}
