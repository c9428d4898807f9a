//! What the benches in `tests/benches/` share: pinning to CPU 0, settings
//! from the environment, latency summaries and the JSON file each writes
//! under `target/bench/`. What each bench measures is said in its own file.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Pins this process, and so every process it starts, to CPU 0 unless
/// `CORRAL_BENCH_UNPINNED=1`; returns whether it pinned.
pub fn pin_unless_unpinned() -> bool {
    let pinned = std::env::var_os("CORRAL_BENCH_UNPINNED").is_none_or(|v| v != "1");
    if pinned {
        pin_to_cpu0();
    }
    pinned
}

/// Pins this process, and so every process it starts, to CPU 0.
pub fn pin_to_cpu0() {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is within the set's bounds.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this
    // thread, and threads and children started later inherit its mask.
    let pinned = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(
        pinned,
        0,
        "sched_setaffinity: {}",
        io::Error::last_os_error()
    );
}

/// How the run was scheduled, for the table's title.
pub fn mode(pinned: bool) -> &'static str {
    if pinned {
        "pinned to CPU 0"
    } else {
        "unpinned"
    }
}

/// The positive count in environment variable `var`, or `default` when it
/// is unset; panics on anything else.
pub fn count_from_env(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(count) => count
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| panic!("{var}=`{count}` is not a positive count")),
        Err(_) => default,
    }
}

/// Nearest-rank percentiles, minimum and mean of a set of samples, in µs.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The fastest sample.
    pub min_us: f64,
    /// The median.
    pub p50_us: f64,
    /// The 99th percentile (the slowest sample when there are under 100).
    pub p99_us: f64,
    /// The mean.
    pub mean_us: f64,
}

impl Summary {
    /// Summarises `samples`; panics when there are none.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples to summarise");
        samples.sort_unstable();
        let count = samples.len();
        let us = |sample: Duration| sample.as_secs_f64() * 1e6;
        let percentile = |p: usize| us(samples[(count * p).div_ceil(100).max(1) - 1]);
        let total: Duration = samples.iter().sum();
        Self {
            count,
            min_us: us(samples[0]),
            p50_us: percentile(50),
            p99_us: percentile(99),
            mean_us: us(total) / count as f64,
        }
    }
}

/// Writes `json` to `target/bench/{bench}.json` and returns that path.
pub fn write_json(bench: &str, json: &serde_json::Value) -> PathBuf {
    let target = crate::target_dir();
    let dir = target
        .parent()
        .expect("target/<profile> has a parent")
        .join("bench");
    let path = dir.join(format!("{bench}.json"));
    let text = serde_json::to_string_pretty(json).expect("a JSON value encodes");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, text + "\n"))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}
