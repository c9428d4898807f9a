//! Scale: one supervisor with many idle workers (1,000 by default,
//! `CORRAL_BENCH_WORKERS` to change it): how long they take to all be
//! ready, that each answers a call, the supervisor's RSS and open fds
//! before and after, and the workers' RSS, as `corral ps` reports it, with
//! their PSS and private memory from `/proc/PID/smaps_rollup`.
//!
//! Every plugin is `hello`, each in its own folder with its own worker uid
//! (its entry a symlink to one copy of the library). Not pinned: it
//! measures memory and counts, not latency. Prints a table and writes
//! `target/bench/scale.json`. It reports; it asserts no speed.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral::PluginState;
use corral_tests::{Corral, bench};
use std::fs;
use std::time::{Duration, Instant};

const DEFAULT_WORKERS: usize = 1000;

fn main() {
    let workers = bench::count_from_env("CORRAL_BENCH_WORKERS", DEFAULT_WORKERS);
    let builder = Corral::builder();
    let plugins = builder.plugins_dir();
    let library = plugins.join("libhello.so");
    fs::create_dir_all(&plugins).expect("plugins folder");
    fs::copy(corral_tests::artifact("libhello.so"), &library).expect("copy hello");
    for i in 0..workers {
        let folder = plugins.join(format!("p{i:05}"));
        fs::create_dir_all(&folder).expect("plugin folder");
        std::os::unix::fs::symlink(&library, folder.join("libhello.so")).expect("symlink");
        fs::write(
            folder.join("plugin.toml"),
            format!(
                "[plugin]\nname = \"p{i:05}\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"libhello.so\"\napi = 1\n\n[health]\ninterval_ms = 0\n"
            ),
        )
        .expect("manifest");
    }
    let started = Instant::now();
    let corral = builder.start();
    let supervisor = corral.pid();
    let (rss_empty, fds_empty) = (rss_kib(supervisor), fd_count(supervisor));
    let mut client = corral.client();
    // Relayed: one client holding a direct channel to each of thousands of
    // plugins would run out of fds itself.
    client.set_direct(false);
    let deadline = Instant::now() + Duration::from_secs(600);
    let plugins = loop {
        let plugins = client.list().expect("ps");
        let ready = plugins
            .iter()
            .filter(|p| p.state == PluginState::Ready)
            .count();
        if ready == workers {
            break plugins;
        }
        let failed: Vec<_> = plugins
            .iter()
            .filter(|p| p.state == PluginState::Failed)
            .collect();
        assert!(failed.is_empty(), "failed: {:?}", failed.first());
        assert!(Instant::now() < deadline, "only {ready} of {workers} ready");
        std::thread::sleep(Duration::from_millis(50));
    };
    let all_ready = started.elapsed();
    for plugin in &plugins {
        let reply = client
            .call(&plugin.name, "echo", plugin.name.as_bytes())
            .expect("echo");
        assert_eq!(reply, plugin.name.as_bytes());
    }
    // Let the watchdog sample every worker's RSS.
    std::thread::sleep(Duration::from_millis(600));
    let plugins = client.list().expect("ps");
    let mut worker_rss: Vec<u64> = plugins
        .iter()
        .filter_map(|p| p.rss_bytes.map(|b| b / 1024))
        .collect();
    worker_rss.sort_unstable();
    let median_rss = worker_rss.get(worker_rss.len() / 2).copied().unwrap_or(0);
    let (rss_full, fds_full) = (rss_kib(supervisor), fd_count(supervisor));
    // RSS counts the binary's and libc's pages that every worker shares;
    // PSS divides them among the sharers, private is the worker's own.
    let mut pss = Vec::new();
    let mut private = Vec::new();
    for pid in plugins.iter().filter_map(|p| p.pid) {
        if let Some((p, own)) = pss_and_private_kib(pid) {
            pss.push(p);
            private.push(own);
        }
    }
    pss.sort_unstable();
    private.sort_unstable();
    let median = |values: &[u64]| values.get(values.len() / 2).copied().unwrap_or(0);

    println!("corral scale ({workers} idle native workers, unpinned)");
    println!("all ready after        {:>10.2} s", all_ready.as_secs_f64());
    println!("calls answered         {:>10}", plugins.len());
    println!(
        "supervisor RSS         {:>10} KiB when its socket came up, {rss_full} KiB with every worker ready ({:.1} KiB a worker)",
        rss_empty,
        (rss_full.saturating_sub(rss_empty)) as f64 / workers as f64
    );
    println!(
        "supervisor open fds    {:>10} when its socket came up, {fds_full} with every worker ready",
        fds_empty
    );
    println!(
        "worker RSS, median     {:>10} KiB ({} sampled); PSS {} KiB, private {} KiB",
        median_rss,
        worker_rss.len(),
        median(&pss),
        median(&private)
    );
    let json = serde_json::json!({
        "bench": "scale",
        "workers": workers,
        "all_ready_s": all_ready.as_secs_f64(),
        "supervisor_rss_kib": { "start": rss_empty, "full": rss_full },
        "supervisor_fds": { "start": fds_empty, "full": fds_full },
        "worker_rss_kib_median": median_rss,
        "worker_pss_kib_median": median(&pss),
        "worker_private_kib_median": median(&private),
    });
    let path = bench::write_json("scale", &json);
    eprintln!("figures written to {}", path.display());
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count()
}

/// `Pss:` and `Private_Clean:` + `Private_Dirty:` of `/proc/PID/smaps_rollup`.
fn pss_and_private_kib(pid: u32) -> Option<(u64, u64)> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        rollup
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    };
    Some((
        field("Pss:")?,
        field("Private_Clean:")? + field("Private_Dirty:")?,
    ))
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("a number")
}
