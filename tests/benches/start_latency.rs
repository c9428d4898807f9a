//! Start latency: how long a plugin takes from the supervisor spawning its
//! worker to the worker's Ready frame (fork from the zygote or exec,
//! sandbox, loading the plugin, `init`), as the supervisor measures it
//! (`start_us` in `corral ps`), beside the floor measured in the same run
//! and mode: spawning `/bin/true` and waiting for it, timed here — what no
//! fresh exec can go under.
//!
//! Rows: the native `hello` restarted in a running supervisor (`corral
//! restart`: a new worker forked from the zygote), and the same with
//! `[restart] fresh_exec = true` (executed afresh); `hello.wasm` with a new
//! supervisor and state folder for every start, so wasmtime compiles the
//! module; `hello.wasm` restarted in a running supervisor, loading from the
//! compiled-module cache, forked and executed afresh; the TypeScript twins
//! restarted the same way: `hello-ts` (its bundle evaluated by the
//! JavaScript engine) and `as-hello` (AssemblyScript, from the cache).
//! Each row begins with an untimed start.
//!
//! Runs pinned to CPU 0 (every child inherits it) unless
//! `CORRAL_BENCH_UNPINNED=1`; `CORRAL_BENCH_STARTS` sets the number of timed
//! starts per row. Prints a table and writes the figures to
//! `target/bench/start_latency.json`. It reports; it asserts no speed.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral_tests::bench::{self, Summary};
use corral_tests::{Corral, CorralBuilder, Workspace};
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT_STARTS: usize = 30;
const FLOOR: &str = "floor: spawn+wait /bin/true";

/// The manifest lines that opt a plugin out of the zygote.
const FRESH: &str = "[restart]\nfresh_exec = true\n";

fn main() {
    let pinned = bench::pin_unless_unpinned();
    let starts = bench::count_from_env("CORRAL_BENCH_STARTS", DEFAULT_STARTS);

    let mut rows = vec![
        (FLOOR, floor(starts)),
        (
            "native hello",
            restarts(starts, Corral::builder().hello("hello")),
        ),
        (
            "native hello, fresh exec",
            restarts(
                starts,
                Corral::builder().native_with("hello", "hello", FRESH),
            ),
        ),
    ];
    let wasm = corral_tests::wasm_module("hello");
    let wasm_skipped = !wasm.is_file();
    if !wasm_skipped {
        let hello_wasm = || Corral::builder().wasm_with("hello", "hello", "");
        rows.push(("wasm hello, compiled", worker_starts(starts, hello_wasm)));
        rows.push(("wasm hello, cached", restarts(starts, hello_wasm())));
        rows.push((
            "wasm hello, cached, fresh exec",
            restarts(starts, Corral::builder().wasm_with("hello", "hello", FRESH)),
        ));
    }
    // Plugins written in TypeScript (example-plugins/build-js.sh).
    if corral_tests::js_bundle("hello-ts").is_file() {
        rows.push((
            "TypeScript hello-ts (JavaScript engine)",
            restarts(starts, Corral::builder().js_with("hello", "hello-ts", "")),
        ));
        rows.push((
            "AssemblyScript as-hello (wasm), cached",
            restarts_of(
                starts,
                Corral::builder().example("as-hello", &["build/as-hello.wasm"]),
                "as-hello",
            ),
        ));
    } else {
        eprintln!("SKIPPED the TypeScript rows: run example-plugins/build-js.sh first");
    }
    report(&rows, pinned, starts, wasm_skipped);
    if wasm_skipped {
        println!(
            "SKIPPED the wasm rows: {} is missing; build it with example-plugins/build-wasm.sh",
            wasm.display()
        );
    }
}

/// The floor: `/bin/true` spawned and waited for, `starts` times after a
/// few untimed runs.
fn floor(starts: usize) -> Summary {
    let run = || {
        let started = Instant::now();
        let status = Command::new("/bin/true").status();
        let took = started.elapsed();
        match status {
            Ok(status) if status.success() => took,
            other => panic!("/bin/true did not run cleanly: {other:?}"),
        }
    };
    for _ in 0..5 {
        run();
    }
    Summary::of((0..starts).map(|_| run()).collect())
}

/// Starts a supervisor set up by `setup` once untimed and then `starts`
/// times, each until its `hello` is ready, and summarises the start times
/// the supervisor reported.
fn worker_starts(starts: usize, setup: impl Fn() -> CorralBuilder) -> Summary {
    // Each start's supervisor, and its worker, stop when it is dropped.
    let start = || {
        let start_us = setup().start().wait_ready("hello").start_us;
        Duration::from_micros(start_us.unwrap_or_else(|| {
            panic!("the supervisor reports no start_us: run `cargo build --release --workspace`")
        }))
    };
    start();
    Summary::of((0..starts).map(|_| start()).collect())
}

/// Starts one supervisor set up by `builder`, then restarts its `hello`
/// (`corral restart`) once untimed and `starts` times, and summarises the
/// start times it reported.
fn restarts(starts: usize, builder: CorralBuilder) -> Summary {
    restarts_of(starts, builder, "hello")
}

/// [`restarts`] of the plugin `name`.
fn restarts_of(starts: usize, builder: CorralBuilder, name: &str) -> Summary {
    let corral = builder.start();
    corral.wait_ready(name);
    let restart = || {
        corral
            .client()
            .control(name, corral::Action::Restart, Duration::from_secs(10))
            .expect("corral restart");
        let start_us = corral.wait_ready(name).start_us;
        Duration::from_micros(start_us.expect("the supervisor reports start_us"))
    };
    restart();
    Summary::of((0..starts).map(|_| restart()).collect())
}

/// Prints the table and writes the JSON file.
fn report(rows: &[(&str, Summary)], pinned: bool, starts: usize, wasm_skipped: bool) {
    let floor = rows
        .iter()
        .find(|(what, _)| *what == FLOOR)
        .map(|(_, summary)| summary)
        .expect("a floor row");
    let mode = bench::mode(pinned);
    println!("corral start latency, spawn to Ready ({mode}, N={starts})");
    let width = rows.iter().map(|(what, _)| what.len()).max().unwrap_or(4);
    println!(
        "{:<width$} {:>8} {:>8} {:>8}   p50 / p99 vs floor",
        "what", "p50 ms", "p99 ms", "min ms"
    );
    let mut results = Vec::new();
    for (what, summary) in rows {
        let (p50_ratio, p99_ratio) = (summary.p50_us / floor.p50_us, summary.p99_us / floor.p99_us);
        println!(
            "{what:<width$} {:>8.2} {:>8.2} {:>8.2}   {p50_ratio:.1}x / {p99_ratio:.1}x",
            summary.p50_us / 1e3,
            summary.p99_us / 1e3,
            summary.min_us / 1e3,
        );
        results.push(serde_json::json!({
            "what": what,
            "starts": summary.count,
            "p50_us": summary.p50_us,
            "p99_us": summary.p99_us,
            "min_us": summary.min_us,
            "mean_us": summary.mean_us,
            "p50_vs_floor": p50_ratio,
            "p99_vs_floor": p99_ratio,
        }));
    }
    let json = serde_json::json!({
        "bench": "start_latency",
        "pinned": pinned,
        "starts": starts,
        "wasm_skipped": wasm_skipped,
        "results": results,
    });
    let path = bench::write_json("start_latency", &json);
    eprintln!("figures written to {}", path.display());
}
