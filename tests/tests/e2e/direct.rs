//! Direct channels: calls that go from the host app's client straight to
//! the worker, the supervisor only handing out the socket and guarding
//! the worker. Every guarantee of the relayed path holds on them: how a
//! dying worker fails its calls, the deadline, the metrics, hot reload
//! without a failed call, a hostile worker killed, a client that goes
//! away releasing its channel.

use corral::{Client, ErrorKind, ExitCause};
use corral_tests::{Corral, Workspace, send_signal};
use std::time::{Duration, Instant};

/// The Unix sockets `pid` holds.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

fn worker_pid(corral: &Corral, name: &str) -> u32 {
    corral.wait_ready(name).pid.expect("a serving worker")
}

/// Resumes a stopped process when dropped, so a failed test leaves no
/// frozen supervisor behind.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        send_signal(self.0, libc::SIGCONT);
    }
}

#[test]
fn calls_go_straight_to_the_worker_and_still_count_in_ps() {
    let corral = Corral::builder().hello("hello").start();
    let pid = worker_pid(&corral, "hello");
    let before = sockets(pid);
    let mut client = corral.client();
    assert_eq!(client.call("hello", "echo", b"first").unwrap(), b"first");
    assert_eq!(
        sockets(pid),
        before + 1,
        "the worker holds the direct channel"
    );

    // With the supervisor frozen, calls on the direct channel still flow.
    send_signal(corral.pid(), libc::SIGSTOP);
    let frozen = Continue(corral.pid());
    for n in 0..50 {
        let input = format!("call {n}").into_bytes();
        assert_eq!(
            client.call("hello", "upper", &input).unwrap(),
            input.to_ascii_uppercase()
        );
    }
    drop(frozen);

    // The worker counted them where ps reads them.
    let row = corral.plugin("hello");
    assert!(row.calls >= 51, "{row:?}");
    assert!(row.latency_p50_us.is_some(), "{row:?}");
    let failed = client
        .call("hello", "sum", b"1 x")
        .expect_err("a plugin error");
    assert_eq!(failed.kind(), Some(ErrorKind::Plugin), "{failed}");
    corral.wait_until("the plugin error counted", || {
        corral
            .plugin("hello")
            .errors
            .iter()
            .any(|(kind, n)| kind == "plugin" && *n >= 1)
    });

    // A client that goes away releases its channel in the worker.
    drop(client);
    corral.wait_until("the worker dropped the direct channel", || {
        sockets(pid) == before
    });
}

#[test]
fn the_async_client_calls_directly_and_can_be_told_not_to() {
    let corral = Corral::builder().hello("hello").start();
    let pid = worker_pid(&corral, "hello");
    let before = sockets(pid);
    crate::calls::block_on(async {
        let relayed = Client::connect(&corral.socket).await.unwrap();
        relayed.set_direct(false);
        assert_eq!(
            relayed.call("hello", "echo", b"r".to_vec()).await.unwrap(),
            b"r"
        );
        assert_eq!(sockets(pid), before, "no direct channel when told not to");
        let direct = Client::connect(&corral.socket).await.unwrap();
        assert_eq!(
            direct.call("hello", "echo", b"d".to_vec()).await.unwrap(),
            b"d"
        );
        assert_eq!(sockets(pid), before + 1);
        // Large payloads both ways, intact.
        let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        assert_eq!(
            direct.call("hello", "echo", big.clone()).await.unwrap(),
            big
        );
    });
}

#[test]
fn a_worker_that_dies_mid_call_fails_the_direct_call_with_how_it_died() {
    let corral = Corral::builder().hello("hello").start();
    let first = worker_pid(&corral, "hello");
    let mut client = corral.client();
    client.call("hello", "echo", b"warm").unwrap();
    let started = Instant::now();
    let error = client
        .call("hello", "crash", b"")
        .expect_err("the worker aborts");
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    let message = error.to_string();
    assert!(message.contains("SIGABRT"), "says how it died: {message}");
    assert!(started.elapsed() < Duration::from_secs(2), "failed at once");
    // The next call opens a channel to the restarted worker.
    let replaced = corral.wait_replaced("hello", Some(first));
    assert_eq!(client.call("hello", "echo", b"again").unwrap(), b"again");
    let pid = replaced.pid.unwrap();
    assert!(sockets(pid) >= 2, "a direct channel to the new worker");
}

#[test]
fn a_direct_call_past_the_plugins_deadline_times_out_and_the_worker_is_killed() {
    let corral = Corral::builder()
        .native_with("slow", "hello", "[limits]\ncall_timeout_ms = 300\n")
        .start();
    corral.wait_ready("slow");
    let mut client = corral.client();
    client.call("slow", "echo", b"warm").unwrap();
    let started = Instant::now();
    let error = client
        .call("slow", "sleep", b"5000")
        .expect_err("past the deadline");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let row = corral.wait_last_exit("slow", "killed for the deadline", |exit| {
        exit.cause == ExitCause::CallDeadline
    });
    let exit = row.last_exit.unwrap();
    assert!(
        exit.description.contains("direct call"),
        "{}",
        exit.description
    );
}

#[test]
fn a_hot_reload_moves_direct_clients_without_a_failed_call() {
    let corral = Corral::builder().hello("hello").start();
    let first = worker_pid(&corral, "hello");
    let calls = std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let mut client = corral.client();
            let until = Instant::now() + Duration::from_secs(3);
            let mut n = 0u32;
            while Instant::now() < until {
                let input = n.to_string().into_bytes();
                let reply = client.call("hello", "echo", &input);
                assert_eq!(reply.expect("no call fails across a reload"), input);
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            let out = corral.cli(&["reload", "hello"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        caller.join().unwrap()
    });
    let now = worker_pid(&corral, "hello");
    assert_ne!(now, first, "reloaded");
    assert!(calls > 100, "{calls} calls");
}

#[test]
fn a_worker_that_corrupts_its_direct_channel_is_killed_and_the_call_fails() {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", "")
        .start();
    corral.wait_ready("hostile");
    let first = worker_pid(&corral, "hostile");
    let mut client = corral.client();
    client.call("hostile", "echo", b"warm").unwrap();
    let error = client
        .call("hostile", "scribble", b"")
        .expect_err("garbage");
    assert_eq!(error.kind(), Some(ErrorKind::Protocol), "{error}");
    let row = corral.wait_last_exit("hostile", "killed for the garbage", |exit| {
        exit.cause == ExitCause::ProtocolViolation
    });
    assert!(
        row.last_exit
            .unwrap()
            .description
            .contains("direct channel"),
        "names the direct channel"
    );
    corral.wait_replaced("hostile", Some(first));
    assert_eq!(client.call("hostile", "echo", b"ok").unwrap(), b"ok");
}

#[test]
fn busy_direct_channels_do_not_starve_relayed_calls() {
    let corral = Corral::builder().hello("hello").start();
    worker_pid(&corral, "hello");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            crate::calls::block_on(async {
                let client = Client::connect(&corral.socket).await.unwrap();
                let callers = (0..16).map(|_| async {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        client.call("hello", "echo", vec![1; 64]).await.unwrap();
                    }
                });
                let mut callers: Vec<_> = callers.map(Box::pin).collect();
                crate::calls::futures_join_all(&mut callers).await;
            });
        });
        std::thread::sleep(Duration::from_millis(200));
        let mut relayed = corral.client();
        relayed.set_direct(false);
        for n in 0..50 {
            let started = Instant::now();
            let input = format!("relayed {n}").into_bytes();
            assert_eq!(relayed.call("hello", "echo", &input).unwrap(), input);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "a relayed call waited {:?} behind direct ones",
                started.elapsed()
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
