//! Syscalls per call: `strace -c -f` attached to the host client (this
//! process), the supervisor and the worker while sequential `echo` calls
//! of 64 bytes and of 1 MiB go through, relayed by the supervisor and then
//! on a direct channel, divided by the number of calls.
//!
//! Needs `strace` (skipped, saying so, without it). Runs pinned to CPU 0
//! unless `CORRAL_BENCH_UNPINNED=1`; `CORRAL_BENCH_CALLS` sets the number
//! of 64-byte calls (the 1 MiB run makes a tenth as many). Prints a table
//! per process and writes `target/bench/syscalls.json`. It reports; it
//! asserts nothing about the counts. strace slows every syscall down, so
//! the times of this run mean nothing.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral_tests::bench;
use corral_tests::{Corral, Workspace};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_CALLS: usize = 5_000;

fn main() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("syscalls bench skipped: strace is not installed (apt-get install strace)");
        return;
    }
    let pinned = bench::pin_unless_unpinned();
    let calls = bench::count_from_env("CORRAL_BENCH_CALLS", DEFAULT_CALLS);
    let corral = Corral::builder().hello("hello").start();
    let worker = corral
        .wait_ready("hello")
        .pid
        .expect("a ready worker has a pid");
    let mut client = corral.client();
    let processes = [
        ("client", std::process::id()),
        ("supervisor", corral.pid()),
        ("worker", worker),
    ];

    println!(
        "syscalls per sequential echo call ({}, strace -c -f)",
        bench::mode(pinned)
    );
    let mut json = Vec::new();
    let cases = [
        ("64 B", 64, calls, false),
        ("1 MiB", 1 << 20, calls / 10, false),
        ("64 B direct", 64, calls, true),
        ("1 MiB direct", 1 << 20, calls / 10, true),
    ];
    for (what, size, count, direct) in cases {
        client.set_direct(direct);
        let input = vec![0x5a; size];
        client.call("hello", "echo", &input).expect("warm-up");
        let traced = trace(corral.dir(), &processes, || {
            for _ in 0..count {
                let reply = client.call("hello", "echo", &input).expect("echo");
                assert!(reply == input, "the echo came back changed");
            }
        });
        println!("\n{what} payload, {count} calls:");
        for ((process, _), counts) in processes.iter().zip(&traced) {
            let total: u64 = counts.values().sum();
            let per_call = |n: u64| n as f64 / count as f64;
            let mut top: Vec<_> = counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let listed: Vec<String> = top
                .iter()
                .filter(|(_, n)| per_call(**n) >= 0.05)
                .map(|(name, n)| format!("{name} {:.2}", per_call(**n)))
                .collect();
            println!(
                "  {process:<10} {:>6.2} a call: {}",
                per_call(total),
                listed.join(", ")
            );
            json.push(serde_json::json!({
                "payload": what,
                "route": if direct { "direct" } else { "relayed" },
                "calls": count,
                "process": process,
                "per_call": per_call(total),
                "by_syscall": counts
                    .iter()
                    .map(|(name, n)| (name.clone(), per_call(*n)))
                    .collect::<BTreeMap<_, _>>(),
            }));
        }
    }
    let path = bench::write_json(
        "syscalls",
        &serde_json::json!({ "pinned": pinned, "rows": json }),
    );
    println!("\nfigures written to {}", path.display());
}

/// Runs `work` with one `strace -c -f` attached to each of `processes`;
/// returns each one's syscall counts.
fn trace(dir: &Path, processes: &[(&str, u32)], work: impl FnOnce()) -> Vec<BTreeMap<String, u64>> {
    let tracers: Vec<(Child, std::path::PathBuf)> = processes
        .iter()
        .map(|(name, pid)| {
            let out = dir.join(format!("strace-{name}.txt"));
            let child = Command::new("strace")
                .args(["-c", "-f", "-q", "-o"])
                .arg(&out)
                .args(["-p", &pid.to_string()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start strace");
            (child, out)
        })
        .collect();
    for (_, pid) in processes {
        wait_traced(*pid);
    }
    work();
    tracers
        .into_iter()
        .map(|(mut child, out)| {
            corral_tests::send_signal(child.id(), libc::SIGINT);
            child.wait().expect("strace exits");
            let text = std::fs::read_to_string(&out).expect("strace summary");
            parse_summary(&text)
        })
        .collect()
}

/// Waits until every thread of `pid` has a tracer.
fn wait_traced(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("process tasks");
        let all = tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("status"))
                .map(|status| {
                    status.lines().any(|line| {
                        line.starts_with("TracerPid:") && line.trim_end() != "TracerPid:\t0"
                    })
                })
                .unwrap_or(true) // a thread that just ended
        });
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "strace did not attach to {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `calls` column of an `strace -c` table, by syscall name.
fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let Some(name) = fields.last() else { continue };
        if *name == "total" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            *counts.entry((*name).to_owned()).or_insert(0) += calls;
        }
    }
    counts
}
