//! Throughput: pipelined 64-byte calls from 8 concurrent async clients to
//! one plugin, relayed by the supervisor and on direct channels, and large
//! payloads (64 KiB, 1 MiB, 15 MiB, 32 MiB: a 4K RGBA frame) echoed
//! through corral both ways, beside a raw floor measured in the same run
//! and mode: the same payload, length-prefixed, echoed over one plain Unix
//! socketpair by a thread. The supervisor runs with `--max-frame-mb 64`;
//! the relayed client's own limit is the default 16 MiB, so the relayed
//! 32 MiB row is empty.
//!
//! The direct rows are what a host app that moves frames does: it writes
//! its input in place in the channel's shared memory (`call_with`, one
//! copy of its data, as the floor's `write` is one) and reads the reply in
//! place (`ReplyView`); the plugin writes its reply once (`call_into`).
//! `direct_vec` is the plain `Vec` API on the same channel, which copies
//! the input in and the reply out.
//!
//! Runs pinned to CPU 0 unless `CORRAL_BENCH_UNPINNED=1`;
//! `CORRAL_BENCH_SECONDS` sets how long the pipelined run lasts (3 s).
//! Prints a table and writes `target/bench/throughput.json`. It reports; it
//! asserts no speed.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral_tests::bench;
use corral_tests::{Corral, Workspace};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
/// Calls each client keeps in flight.
const DEPTH: usize = 16;
const PAYLOADS: [(&str, usize); 4] = [
    ("64 KiB", 64 << 10),
    ("1 MiB", 1 << 20),
    // The default frame limit is 16 MiB, call header included.
    ("15 MiB", 15 << 20),
    ("32 MiB", 32 << 20),
];

fn main() {
    let pinned = bench::pin_unless_unpinned();
    let seconds = bench::count_from_env("CORRAL_BENCH_SECONDS", 3);
    let corral = Corral::builder()
        .hello("hello")
        .arg("--max-frame-mb")
        .arg("64")
        .start();
    corral.wait_ready("hello");

    let mode = bench::mode(pinned);
    let time = Duration::from_secs(seconds as u64);
    let pipelined_relayed = pipelined(&corral, time, false);
    let pipelined_direct = pipelined(&corral, time, true);
    println!("corral throughput ({mode})");
    println!(
        "pipelined 64 B echo, {CLIENTS} async clients x {DEPTH} in flight, {seconds} s: \
         {pipelined_relayed:.0} calls/s relayed, {pipelined_direct:.0} calls/s direct"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>10} {:>12} {:>10} {:>12} {:>10}   relayed / direct vs floor",
        "payload",
        "floor MB/s",
        "relayed MB/s",
        "relayed ms",
        "direct MB/s",
        "direct ms",
        "d. Vec MB/s",
        "d. Vec ms"
    );
    let mut rows = Vec::new();
    for (what, size) in PAYLOADS {
        let rounds = ((256 << 20) / size).max(4); // about 256 MiB each way
        let floor = raw_echo(size, rounds);
        let relayed = corral_echo(&corral, size, rounds, Path::Relayed);
        let direct = corral_echo(&corral, size, rounds, Path::InPlace);
        let direct_vec = corral_echo(&corral, size, rounds, Path::DirectVec);
        let show = |echo: Option<(f64, Duration)>| match echo {
            Some((rate, took)) => (
                format!("{:.0}", rate / 1e6),
                format!("{:.2}", took.as_secs_f64() * 1e3),
                format!("{:.2}x", rate / floor),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (relayed_rate, relayed_ms, relayed_ratio) = show(relayed);
        let (direct_rate, direct_ms, direct_ratio) = show(direct);
        let (vec_rate, vec_ms, _) = show(direct_vec);
        println!(
            "{what:<8} {:>12.0} {relayed_rate:>12} {relayed_ms:>10} {direct_rate:>12} {direct_ms:>10} {vec_rate:>12} {vec_ms:>10}   {relayed_ratio} / {direct_ratio}",
            floor / 1e6,
        );
        rows.push(serde_json::json!({
            "payload": what,
            "bytes": size,
            "floor_bytes_per_s": floor,
            "corral_bytes_per_s": relayed.map(|(rate, _)| rate),
            "corral_round_trip_ms": relayed.map(|(_, took)| took.as_secs_f64() * 1e3),
            "direct_bytes_per_s": direct.map(|(rate, _)| rate),
            "direct_round_trip_ms": direct.map(|(_, took)| took.as_secs_f64() * 1e3),
            "direct_vec_bytes_per_s": direct_vec.map(|(rate, _)| rate),
            "direct_vec_round_trip_ms": direct_vec.map(|(_, took)| took.as_secs_f64() * 1e3),
        }));
    }
    drop(corral);
    let runtimes = runtimes();
    let json = serde_json::json!({
        "bench": "throughput",
        "runtimes": runtimes,
        "pinned": pinned,
        "pipelined": { "clients": CLIENTS, "depth": DEPTH, "seconds": seconds, "calls_per_s": pipelined_relayed },
        "pipelined_direct": { "clients": CLIENTS, "depth": DEPTH, "seconds": seconds, "calls_per_s": pipelined_direct },
        "payloads": rows,
    });
    let path = bench::write_json("throughput", &json);
    eprintln!("figures written to {}", path.display());
}

/// A 1 MiB echo on a direct channel (`Vec` in and out) through `hello` in
/// each runtime: native, wasm, and its TypeScript twins (`hello-ts` on the
/// JavaScript engine, `as-hello` in AssemblyScript), beside the floor.
fn runtimes() -> Vec<serde_json::Value> {
    const SIZE: usize = 1 << 20;
    const ROUNDS: usize = 256;
    let mut builder = Corral::builder().hello("hello");
    let mut plugins = vec![("native (Rust)", "hello")];
    if corral_tests::wasm_module("hello").is_file() {
        builder = builder.wasm_with("hello-wasm", "hello", "");
        plugins.push(("wasm (Rust)", "hello-wasm"));
    }
    if corral_tests::js_bundle("hello-ts").is_file() {
        builder = builder
            .js_with("hello-ts", "hello-ts", "")
            .example("as-hello", &["build/as-hello.wasm"]);
        plugins.push(("TypeScript (JavaScript engine)", "hello-ts"));
        plugins.push(("AssemblyScript (wasm)", "as-hello"));
    } else {
        eprintln!("TypeScript rows skipped: run example-plugins/build-js.sh first");
    }
    let corral = builder.start();
    let floor = raw_echo(SIZE, ROUNDS);
    println!(
        "\n1 MiB echo per runtime, direct channel, Vec in and out (floor {:.0} MB/s)",
        floor / 1e6
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "runtime", "MB/s", "ms", "vs floor"
    );
    let mut rows = Vec::new();
    for (runtime, plugin) in plugins {
        corral.wait_ready(plugin);
        let Some((rate, took)) = echo_of(&corral, plugin, SIZE, ROUNDS, Path::DirectVec) else {
            continue;
        };
        let ms = took.as_secs_f64() * 1e3;
        println!(
            "{runtime:<32} {:>10.0} {ms:>10.2} {:>9.2}x",
            rate / 1e6,
            rate / floor
        );
        rows.push(serde_json::json!({
            "runtime": runtime,
            "payload": "1 MiB",
            "bytes": SIZE,
            "floor_bytes_per_s": floor,
            "direct_vec_bytes_per_s": rate,
            "direct_vec_round_trip_ms": ms,
        }));
    }
    rows
}

/// Calls/s with `CLIENTS` connections keeping `DEPTH` calls in flight
/// each, on direct channels or relayed.
fn pipelined(corral: &Corral, time: Duration, direct: bool) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let client = corral::Client::connect(&corral.socket)
                .await
                .expect("connect");
            client.set_direct(direct);
            clients.push(std::rc::Rc::new(client));
        }
        let until = Instant::now() + time;
        let started = Instant::now();
        let local = tokio::task::LocalSet::new();
        let mut tasks = Vec::new();
        for client in &clients {
            for _ in 0..DEPTH {
                let client = client.clone();
                tasks.push(local.spawn_local(async move {
                    let mut done = 0u64;
                    while Instant::now() < until {
                        let reply = client.call("hello", "echo", vec![7; 64]).await;
                        assert_eq!(reply.expect("echo call").len(), 64);
                        done += 1;
                    }
                    done
                }));
            }
        }
        let calls: u64 = local
            .run_until(async {
                let mut calls = 0;
                for task in tasks {
                    calls += task.await.expect("caller task");
                }
                calls
            })
            .await;
        calls as f64 / started.elapsed().as_secs_f64()
    })
}

/// How a payload goes through corral.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// Through the supervisor, `Vec` in and out.
    Relayed,
    /// On a direct channel, written and read in place.
    InPlace,
    /// On a direct channel, `Vec` in and out.
    DirectVec,
}

/// Bytes/s and round trip of `rounds` echoes of `size` bytes through
/// corral on `path`; `None` when the payload is over what that path takes
/// (the warm-up echo says why).
fn corral_echo(corral: &Corral, size: usize, rounds: usize, path: Path) -> Option<(f64, Duration)> {
    echo_of(corral, "hello", size, rounds, path)
}

/// [`corral_echo`] through the plugin `plugin`.
fn echo_of(
    corral: &Corral,
    plugin: &str,
    size: usize,
    rounds: usize,
    path: Path,
) -> Option<(f64, Duration)> {
    let mut client = corral.client();
    client.set_direct(path != Path::Relayed);
    let payload = vec![0x5a; size];
    let mut echo = || match path {
        Path::InPlace => client
            .call_with(plugin, "echo", size, |input| {
                input.copy_from_slice(&payload)
            })
            .map(|reply| reply.len()),
        _ => client
            .call(plugin, "echo", &payload)
            .map(|reply| reply.len()),
    };
    if let Err(error) = echo() {
        eprintln!("{size} B echo ({path:?}) skipped: {error}");
        return None;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(echo().expect("echo"), size);
    }
    let took = started.elapsed();
    Some((
        (size * rounds) as f64 / took.as_secs_f64(),
        took / u32::try_from(rounds).expect("rounds fit u32"),
    ))
}

/// Bytes/s of `rounds` length-prefixed echoes of `size` bytes over one
/// socketpair, echoed by a thread.
fn raw_echo(size: usize, rounds: usize) -> f64 {
    let (mut client, mut server) = UnixStream::pair().expect("socketpair");
    let echo = std::thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            let mut header = [0u8; 4];
            if server.read_exact(&mut header).is_err() {
                return;
            }
            buf.resize(u32::from_le_bytes(header) as usize, 0);
            server.read_exact(&mut buf).expect("read body");
            server.write_all(&header).expect("write header");
            server.write_all(&buf).expect("write body");
        }
    });
    let payload = vec![0x5a; size];
    let header = u32::try_from(size).expect("size fits u32").to_le_bytes();
    let mut reply = vec![0; size];
    let started = Instant::now();
    for _ in 0..rounds {
        client.write_all(&header).expect("write header");
        client.write_all(&payload).expect("write body");
        let mut back = [0u8; 4];
        client.read_exact(&mut back).expect("read header");
        client.read_exact(&mut reply).expect("read body");
    }
    let rate = (size * rounds) as f64 / started.elapsed().as_secs_f64();
    drop(client);
    echo.join().expect("echo thread");
    rate
}
