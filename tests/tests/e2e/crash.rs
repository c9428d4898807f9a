//! Crash isolation: workers die, calls fail fast with the reason, the
//! worker comes back, nothing else is touched.

use corral::{ErrorKind, ExitCause, PluginState};
use corral_tests::{Corral, Workspace, is_alive, is_worker, send_signal};
use std::time::{Duration, Instant};

#[test]
fn killed_worker_fails_in_flight_calls_and_is_restarted() {
    let corral = Corral::builder().hello("hello").hello("other").start();
    let before = corral.wait_ready("hello");
    corral.wait_ready("other");
    let old_pid = before.pid.expect("ready worker has a pid");
    assert!(is_worker(old_pid));

    let neighbour = corral.keep_calling("other");
    std::thread::scope(|scope| {
        // A call that will still be running when the worker dies.
        let in_flight = scope.spawn(|| {
            let result = corral.client().call("hello", "sleep", b"5000");
            (result, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(300));
        let pid: u32 = {
            // As an admin would: the pid from `corral ps --json`.
            let out = corral.cli(&["ps", "--json"]);
            let ps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let hello = ps
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "hello")
                .unwrap();
            u32::try_from(hello["pid"].as_u64().unwrap()).unwrap()
        };
        assert_eq!(pid, old_pid);
        let killed_at = Instant::now();
        send_signal(pid, libc::SIGKILL);

        let (result, failed_at) = in_flight.join().unwrap();
        let error = result.unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
        assert!(
            error.to_string().contains("killed by signal 9 (SIGKILL)"),
            "{error}"
        );
        assert!(
            failed_at - killed_at < Duration::from_secs(1),
            "in-flight call failed after {:?}",
            failed_at - killed_at
        );

        let after = corral.wait_replaced("hello", Some(old_pid));
        assert_eq!(after.restarts, 1);
        let exit = after.last_exit.expect("last exit recorded");
        assert_eq!((exit.signal, exit.code), (Some(9), None));
        assert_eq!(
            corral.client().call("hello", "echo", b"back").unwrap(),
            b"back"
        );
        assert!(!is_alive(old_pid));
    });
    neighbour.finish();
    let other = corral.plugin("other");
    assert_eq!((other.state, other.restarts), (PluginState::Ready, 0));
}

#[test]
fn crash_method_fails_the_call_and_restarts_the_worker() {
    let corral = Corral::builder().hello("hello").start();
    let before = corral.wait_ready("hello");
    let error = corral.client().call("hello", "crash", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("SIGABRT"), "{error}");
    let after = corral.wait_replaced("hello", before.pid);
    assert_eq!(after.restarts, 1);
    assert_eq!(after.last_exit.unwrap().signal, Some(6));
    assert_eq!(
        corral.client().call("hello", "upper", b"ok").unwrap(),
        b"OK"
    );
}

#[test]
fn repeated_crashes_back_off_and_calls_fail_fast_meanwhile() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut client = corral.client();
    // First crash: restarted at once.
    assert!(client.call("hello", "crash", b"").is_err());
    corral.wait_ready("hello");
    // Second crash: restarted after 1 s; meanwhile calls fail at once.
    assert!(client.call("hello", "crash", b"").is_err());
    let started = Instant::now();
    let error = client.call("hello", "echo", b"x").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a call during backoff waited"
    );
    assert_eq!(error.kind(), Some(ErrorKind::Unavailable), "{error}");
    assert!(error.to_string().contains("restarts in"), "{error}");
    assert_eq!(corral.plugin("hello").state, PluginState::Backoff);
    let ready = corral.wait_ready("hello");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "backoff too short: {:?}",
        started.elapsed()
    );
    assert_eq!(ready.restarts, 2);
}

#[test]
fn worker_exit_code_is_recorded() {
    let corral = Corral::builder().native("hostile", "hostile").start();
    let before = corral.wait_ready("hostile");
    let error = corral.client().call("hostile", "exit", b"7").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("exited with code 7"), "{error}");
    let after = corral.wait_replaced("hostile", before.pid);
    assert_eq!(after.last_exit.unwrap().code, Some(7));
}

#[test]
fn worker_sending_bad_frames_is_killed_and_restarted() {
    for method in [
        "garbage",
        "oversize",
        "terabyte",
        "unsealed-fd",
        "stray-fds",
    ] {
        let corral = Corral::builder()
            .native("hostile", "hostile")
            .hello("hello")
            .start();
        let before = corral.wait_ready("hostile");
        corral.wait_ready("hello");
        let started = Instant::now();
        let error = corral.client().call("hostile", method, b"").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{method}: took {:?}",
            started.elapsed()
        );
        assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{method}: {error}");
        assert!(
            error.to_string().contains("protocol violation"),
            "{method}: {error}"
        );
        corral.wait_replaced("hostile", before.pid);
        assert!(
            !is_alive(before.pid.unwrap()),
            "{method}: old worker still alive"
        );
        assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
    }
}

#[test]
fn worker_that_closes_its_channel_is_killed_after_the_grace_period() {
    let corral = Corral::builder().native("hostile", "hostile").start();
    let before = corral.wait_ready("hostile");
    let error = corral
        .client()
        .call("hostile", "close-channel", b"")
        .unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("SIGKILL"), "{error}");
    corral.wait_replaced("hostile", before.pid);
    assert!(!is_alive(before.pid.unwrap()));
}

#[test]
fn supervisor_sigkill_leaves_no_worker_behind() {
    let mut corral = Corral::builder().hello("a").hello("b").hello("c").start();
    let pids: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|p| corral.wait_ready(p).pid.unwrap())
        .collect();
    assert!(pids.iter().all(|&pid| is_worker(pid)));
    corral.signal(libc::SIGKILL);
    corral.wait_exit();
    let killed = Instant::now();
    while pids.iter().any(|&pid| is_alive(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "workers outlived the supervisor by 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_stops_every_worker_and_removes_the_socket() {
    let mut corral = Corral::builder().hello("a").hello("b").start();
    let pids: Vec<u32> = ["a", "b"]
        .iter()
        .map(|p| corral.wait_ready(p).pid.unwrap())
        .collect();
    corral.signal(libc::SIGTERM);
    let status = corral.wait_exit();
    assert!(
        status.success(),
        "corral exited with {status}\n{}",
        corral.log()
    );
    assert!(
        pids.iter().all(|&pid| !is_alive(pid)),
        "a worker survived SIGTERM"
    );
    assert!(!corral.socket.exists(), "socket file left behind");
    assert!(corral.log().contains("all workers stopped"));
}

#[test]
fn segfault_mid_call_fails_every_call_in_flight_and_nothing_else() {
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .hello("neighbour")
        .start();
    let before = corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let (slow, crash, queued) = crate::calls::block_on(async {
        let client = corral::Client::connect(&corral.socket).await.unwrap();
        // Sent in this order on one connection: while the worker runs the
        // slow call, the others queue behind it; it then crashes with two
        // calls still queued.
        tokio::join!(
            client.call("hostile", "sleep", b"300".to_vec()),
            client.call("hostile", "segfault", Vec::new()),
            async {
                tokio::join!(
                    client.call("hostile", "echo", b"queued 1".to_vec()),
                    client.call("hostile", "echo", b"queued 2".to_vec()),
                )
            },
        )
    });
    assert_eq!(slow.unwrap(), b"slept 300 ms");
    let error = crash.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("SIGSEGV"), "{error}");
    for result in [queued.0, queued.1] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    }
    let after = corral.wait_replaced("hostile", before.pid);
    assert_eq!(after.last_exit.unwrap().signal, Some(11));
    neighbour.finish();
}

#[test]
fn init_that_never_returns_hits_the_start_deadline_and_backs_off() {
    let corral = Corral::builder()
        .native("hang-init", "hostile")
        .hello("neighbour")
        .arg("--start-timeout-ms")
        .arg("300")
        .start();
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_until("the start deadline is recorded twice", || {
        let plugin = corral.plugin("hang-init");
        plugin.restarts >= 1
            && plugin
                .last_exit
                .is_some_and(|exit| exit.cause == ExitCause::StartDeadline)
    });
    let plugin = corral.plugin("hang-init");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.unwrap();
    assert!(
        exit.description.contains("no Ready within 300 ms"),
        "{}",
        exit.description
    );
    let error = corral.client().call("hang-init", "echo", b"").unwrap_err();
    assert!(
        matches!(
            error.kind(),
            Some(ErrorKind::Unavailable | ErrorKind::Timeout)
        ),
        "{error}"
    );
    neighbour.finish();
}

#[test]
fn flooding_stderr_does_not_hurt_the_supervisor() {
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .hello("neighbour")
        .start();
    corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let rss_before = rss_kib(corral.pid());
    let neighbour = corral.keep_calling("neighbour");
    assert_eq!(
        corral.client().call("hostile", "flood", b"32").unwrap(),
        b"flooded"
    );
    neighbour.finish();
    let rss_after = rss_kib(corral.pid());
    assert!(
        rss_after < rss_before + 16 * 1024,
        "supervisor RSS grew from {rss_before} to {rss_after} KiB"
    );
    // 32 MiB of output; the log gets at most 100 lines a second of it.
    corral.wait_until("the dropped lines are counted", || {
        corral.log().contains("lines of worker output")
    });
    let log_size = std::fs::metadata(corral.dir().join("corral.log"))
        .unwrap()
        .len();
    assert!(
        log_size < 4 << 20,
        "the log took {log_size} bytes of a 32 MiB flood"
    );
}

#[test]
fn worker_output_is_logged_and_kept_with_the_exit() {
    let corral = Corral::builder().hello("hello").start();
    let before = corral.wait_ready("hello");
    assert!(corral.client().call("hello", "crash", b"").is_err());
    let exit = corral.wait_replaced("hello", before.pid).last_exit.unwrap();
    assert!(
        exit.output
            .iter()
            .any(|line| line.contains("crash requested: aborting")),
        "{:?}",
        exit.output
    );
    assert!(corral.log().contains("crash requested: aborting"));
}

#[test]
fn allocation_failure_under_the_memory_limit_is_out_of_memory() {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", "[limits]\nmemory_mb = 64\n")
        .start();
    let before = corral.wait_ready("hostile");
    let error = corral
        .client()
        .call("hostile", "balloon-abort", b"")
        .unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    let exit = corral
        .wait_replaced("hostile", before.pid)
        .last_exit
        .unwrap();
    assert_eq!(
        exit.cause,
        ExitCause::OutOfMemory,
        "{}: {:?}",
        exit.description,
        exit.output
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}
