//! Calls from host apps: replies, errors, concurrency.

use corral::{Client, ErrorKind};
use corral_tests::{Corral, Workspace};
use std::time::{Duration, Instant};

#[test]
fn call_round_trip_returns_the_plugin_reply() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut client = corral.client();
    assert_eq!(
        client.call("hello", "echo", b"\x00bytes\xff").unwrap(),
        b"\x00bytes\xff"
    );
    assert_eq!(
        client.call("hello", "upper", "grüße".as_bytes()).unwrap(),
        "GRÜSSE".as_bytes()
    );
    assert_eq!(client.call("hello", "sum", b"1 2 39").unwrap(), b"42");
    assert_eq!(client.call("hello", "echo", b"").unwrap(), b"");
}

#[test]
fn unknown_method_plugin_error_and_unknown_plugin_are_told_apart() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut client = corral.client();

    let error = client.call("hello", "nope", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::UnknownMethod), "{error}");
    assert!(
        error.to_string().contains("unknown method `nope`"),
        "{error}"
    );

    let error = client.call("hello", "sum", b"1 x").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(
        error.to_string().contains("`x` is not an integer"),
        "{error}"
    );

    let error = client.call("nobody", "echo", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::UnknownPlugin), "{error}");
    assert!(
        error.to_string().contains("no plugin named `nobody`"),
        "{error}"
    );

    // The connection and the plugin are fine after errors.
    assert_eq!(
        client.call("hello", "echo", b"still here").unwrap(),
        b"still here"
    );
}

#[test]
fn plugin_panic_is_an_error_not_a_crash() {
    let corral = Corral::builder().native("hostile", "hostile").start();
    let before = corral.wait_ready("hostile");
    let mut client = corral.client();
    let error = client.call("hostile", "panic", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(
        error.to_string().contains("plugin panicked: hostile panic"),
        "{error}"
    );
    assert_eq!(client.call("hostile", "echo", b"ok").unwrap(), b"ok");
    let after = corral.plugin("hostile");
    assert_eq!((after.pid, after.restarts), (before.pid, 0));
}

#[test]
fn many_concurrent_calls_from_several_clients_get_their_own_replies() {
    let corral = Corral::builder().hello("hello").hello("hello2").start();
    corral.wait_ready("hello");
    corral.wait_ready("hello2");
    std::thread::scope(|scope| {
        for client_no in 0..8 {
            let corral = &corral;
            scope.spawn(move || {
                let mut client = corral.client();
                let plugin = if client_no % 2 == 0 {
                    "hello"
                } else {
                    "hello2"
                };
                for call_no in 0..200 {
                    let input = format!("client {client_no} call {call_no}");
                    let reply = client.call(plugin, "upper", input.as_bytes()).unwrap();
                    assert_eq!(reply, input.to_uppercase().as_bytes());
                }
            });
        }
    });
}

#[test]
fn pipelined_calls_on_one_connection_are_matched_by_id() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    crate::calls::block_on(async {
        let client = Client::connect(&corral.socket).await.unwrap();
        let calls = (0..500).map(|i| {
            let client = &client;
            async move {
                let input = format!("payload {i}").into_bytes();
                (i, client.call("hello", "echo", input).await)
            }
        });
        let mut pending: Vec<_> = calls.map(Box::pin).collect();
        // Poll them all concurrently: every reply must carry its own input.
        let results = futures_join_all(&mut pending).await;
        for (i, result) in results {
            assert_eq!(result.unwrap(), format!("payload {i}").into_bytes());
        }
    });
}

/// Runs `future` to its end on a current-thread tokio runtime, as a host
/// app's async client would.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// A tiny join_all: polls every future until all are done.
pub(crate) async fn futures_join_all<F: std::future::Future + Unpin>(
    futures: &mut [F],
) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match std::pin::Pin::new(future).poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all done")).collect()
}

#[test]
fn slow_call_times_out_without_blocking_other_plugins() {
    let corral = Corral::builder().hello("slow").hello("fast").start();
    corral.wait_ready("slow");
    corral.wait_ready("fast");
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let started = Instant::now();
            let error = corral
                .client()
                .call_with_timeout("slow", "sleep", b"3000", Duration::from_millis(200))
                .unwrap_err();
            (error, started.elapsed())
        });
        let mut client = corral.client();
        for _ in 0..20 {
            assert_eq!(client.call("fast", "echo", b"x").unwrap(), b"x");
        }
        let (error, took) = slow.join().unwrap();
        assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
        assert!(
            error.to_string().contains("did not answer within 200 ms"),
            "{error}"
        );
        assert!(took < Duration::from_secs(2), "timeout took {took:?}");
    });
}

#[test]
fn calls_queued_behind_a_busy_worker_time_out_on_time() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    std::thread::scope(|scope| {
        scope.spawn(|| corral.client().call("hello", "sleep", b"1500").unwrap());
        std::thread::sleep(Duration::from_millis(100));
        // Enough queued bytes to fill the channel's socket buffer: writes to
        // the worker block, and the callers must still get their timeouts.
        let big = vec![7u8; 256 * 1024];
        let mut client = corral.client();
        for _ in 0..8 {
            let started = Instant::now();
            let error = client
                .call_with_timeout("hello", "echo", &big, Duration::from_millis(100))
                .unwrap_err();
            assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
            assert!(
                started.elapsed() < Duration::from_millis(600),
                "timeout took {:?}",
                started.elapsed()
            );
        }
    });
    // The worker drains what was queued and serves again, with no restart.
    assert_eq!(
        corral.client().call("hello", "echo", b"after").unwrap(),
        b"after"
    );
    assert_eq!(corral.plugin("hello").restarts, 0);
}
