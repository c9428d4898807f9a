//! Crash latency: a worker is SIGKILLed while a call waits in it; how long
//! until the caller gets its `crashed` error, and until a replacement
//! worker answers a call (another client retries an `echo` every 0.1 ms
//! while the plugin is in backoff; once a worker is starting, the call
//! waits for it), beside
//! the floor measured in the same run and mode: SIGKILL to a child
//! process until `waitpid` returns, timed here. Measured for a plugin
//! without and with a spare worker (`[restart] spare = true`: the
//! replacement is already spawned and sandboxed and only loads the plugin).
//!
//! Runs pinned to CPU 0 unless `CORRAL_BENCH_UNPINNED=1`;
//! `CORRAL_BENCH_CRASHES` sets the number of timed crashes (50). Prints a
//! table and writes `target/bench/crash_latency.json`. It reports; it
//! asserts no speed.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral::{ErrorKind, PluginState};
use corral_tests::bench::{self, Summary};
use corral_tests::{Corral, Workspace, send_signal};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEFAULT_CRASHES: usize = 50;

fn main() {
    let pinned = bench::pin_unless_unpinned();
    let crashes = bench::count_from_env("CORRAL_BENCH_CRASHES", DEFAULT_CRASHES);
    let corral = Corral::builder()
        .native_with("hello", "hello", "")
        .native_with("spared", "hello", "[restart]\nspare = true\n")
        .start();
    corral.wait_ready("hello");
    corral.wait_ready("spared");

    let mut floor = Vec::new();
    let mut failed = Vec::new();
    let mut replaced = Vec::new();
    let mut spare_failed = Vec::new();
    let mut spare_replaced = Vec::new();
    for _ in 0..crashes {
        floor.push(kill_floor());
        fresh_start(&corral, "hello");
        let (failed_after, replaced_after) = crash_once(&corral, "hello");
        failed.push(failed_after);
        replaced.push(replaced_after);
        fresh_start(&corral, "spared");
        corral.wait_until("a spare stands by", || {
            corral.plugin("spared").spare_pid.is_some()
        });
        let (failed_after, replaced_after) = crash_once(&corral, "spared");
        spare_failed.push(failed_after);
        spare_replaced.push(replaced_after);
    }
    let rows = [
        ("floor: SIGKILL → waitpid", Summary::of(floor)),
        ("crash → in-flight call failed", Summary::of(failed)),
        ("crash → replacement answers", Summary::of(replaced)),
        ("spare: crash → call failed", Summary::of(spare_failed)),
        (
            "spare: crash → replacement answers",
            Summary::of(spare_replaced),
        ),
    ];
    println!(
        "corral crash latency ({}, N={crashes}; each crash is a first one: restarted at once)",
        bench::mode(pinned)
    );
    println!("{:<32} {:>9} {:>9}", "what", "p50 ms", "p99 ms");
    let mut results = Vec::new();
    for (what, summary) in &rows {
        println!(
            "{what:<32} {:>9.3} {:>9.3}",
            summary.p50_us / 1e3,
            summary.p99_us / 1e3
        );
        results.push(serde_json::json!({
            "what": what, "p50_us": summary.p50_us, "p99_us": summary.p99_us,
        }));
    }
    let json = serde_json::json!({
        "bench": "crash_latency", "pinned": pinned, "crashes": crashes, "results": results,
    });
    let path = bench::write_json("crash_latency", &json);
    eprintln!("figures written to {}", path.display());
}

/// Restarts `plugin` by hand, which resets its restart count, so that the
/// next crash is restarted at once as a first failure is (a later one in
/// the same 5 minutes waits out the backoff).
fn fresh_start(corral: &Corral, plugin: &str) {
    corral
        .client()
        .control(plugin, corral::Action::Restart, Duration::from_secs(10))
        .expect("corral restart");
    corral.wait_ready(plugin);
}

/// SIGKILL to a sleeping child until it is reaped.
fn kill_floor() -> Duration {
    let mut child = Command::new("sleep").arg("60").spawn().expect("sleep");
    std::thread::sleep(Duration::from_millis(5));
    let pid = child.id();
    let sent = Instant::now();
    send_signal(pid, libc::SIGKILL);
    child.wait().expect("wait");
    sent.elapsed()
}

/// Kills the worker while a call sleeps in it: (time until the call
/// failed, time until a new worker was ready).
fn crash_once(corral: &Corral, plugin: &'static str) -> (Duration, Duration) {
    let old = corral.wait_ready(plugin).pid.expect("a worker");
    let mut caller = corral.client();
    let (started, failed) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        started.send(()).expect("main thread");
        let error = caller
            .call(plugin, "sleep", b"10000")
            .expect_err("the call outlived its worker");
        assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
        Instant::now()
    });
    failed.recv().expect("caller thread");
    // Let the call reach the worker.
    std::thread::sleep(Duration::from_millis(20));
    let mut watcher = corral.client();
    let sent = Instant::now();
    send_signal(old, libc::SIGKILL);
    let replaced = loop {
        // Calls fail fast while the plugin is in backoff and wait while a
        // worker is starting; the first answer comes from the replacement.
        match watcher.call(plugin, "echo", b"up?") {
            Ok(_) => break sent.elapsed(),
            Err(error) => assert!(
                matches!(
                    error.kind(),
                    Some(ErrorKind::Unavailable | ErrorKind::Crashed)
                ),
                "{error}"
            ),
        }
        // Retrying without a pause would take the CPU the supervisor needs.
        std::thread::sleep(Duration::from_micros(100));
    };
    let now = corral.plugin(plugin);
    assert!(
        now.state == PluginState::Ready && now.pid.is_some_and(|pid| pid != old),
        "the answer came from a new worker"
    );
    let failed_at = waiter.join().expect("caller");
    (failed_at.duration_since(sent), replaced)
}
