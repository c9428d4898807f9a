//! Plugin storage: puts, gets and batches of 100 puts of 64-byte and
//! 4 KiB values through `Host::kv_*`, each timed inside the plugin
//! (`hostile`'s `kv-time`: plugin → worker → supervisor → SQLite and
//! back), with `storage_sync = "normal"` and `"full"`, beside the floor
//! measured in the same run on the same filesystem: one file per key,
//! written by this process the way corral wrote them before SQLite (temp
//! file, write, fsync, rename over the key's file, fsync of the folder)
//! and read with `fs::read`; and the same write without the fsyncs, which
//! is what `normal` promises too (it survives kill -9, not a power loss).
//!
//! Runs pinned to CPU 0 unless `CORRAL_BENCH_UNPINNED=1`;
//! `CORRAL_BENCH_PUTS` sets the number of timed puts and gets (2000),
//! `CORRAL_BENCH_SYNCED_PUTS` that of the rows with an fsync a put (500),
//! `CORRAL_BENCH_BATCHES` the number of batches (100). Every timed write
//! stores a new key. Prints a table and writes `target/bench/storage.json`.
//! It reports; it asserts no speed.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral_tests::bench::{self, Summary};
use corral_tests::{Corral, Workspace};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const DEFAULT_PUTS: usize = 2_000;
const DEFAULT_SYNCED_PUTS: usize = 500;
const DEFAULT_BATCHES: usize = 100;
/// Puts in a batch.
const BATCH: usize = 100;
/// Value sizes, and the plugin that stores values of that size (each
/// plugin has a database of its own, so every size starts from empty).
const SIZES: [(usize, &str); 2] = [(64, "kv64"), (4096, "kv4k")];
const MANIFEST: &str = "[permissions]\nhost = [\"kv\"]\n\n[limits]\nstorage_mb = 1024\n";

/// One measured row.
struct Row {
    what: String,
    value_bytes: usize,
    /// `put`, `get` or `batch`.
    op: &'static str,
    /// How a write reaches the disk: `fsync`, `none`, `normal`, `full`.
    sync: &'static str,
    /// Per operation (per batch for batches).
    latency: Summary,
    /// Puts or gets a second (puts, for batches), over the timed time.
    ops_per_s: f64,
}

impl Row {
    fn new(
        what: String,
        value_bytes: usize,
        (op, sync): (&'static str, &'static str),
        samples: Vec<Duration>,
    ) -> Self {
        let per_sample = if op == "batch" { BATCH } else { 1 };
        let total: Duration = samples.iter().sum();
        let ops_per_s = (samples.len() * per_sample) as f64 / total.as_secs_f64();
        Self {
            what,
            value_bytes,
            op,
            sync,
            latency: Summary::of(samples),
            ops_per_s,
        }
    }
}

fn main() {
    let pinned = bench::pin_unless_unpinned();
    let puts = bench::count_from_env("CORRAL_BENCH_PUTS", DEFAULT_PUTS);
    let synced_puts = bench::count_from_env("CORRAL_BENCH_SYNCED_PUTS", DEFAULT_SYNCED_PUTS);
    let batches = bench::count_from_env("CORRAL_BENCH_BATCHES", DEFAULT_BATCHES);
    // The state folders and the floor's folders side by side: one
    // filesystem.
    let dir = tempfile::Builder::new()
        .prefix("corral-bench-storage-")
        .tempdir()
        .expect("temp dir");
    {
        // Traversable by the workers' uids, as the harness's own folders.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).expect("chmod temp dir");
    }

    let mut rows = Vec::new();
    for (size, _) in SIZES {
        let value = vec![b'v'; size];
        let synced = dir.path().join(format!("floor-fsync-{size}"));
        let unsynced = dir.path().join(format!("floor-none-{size}"));
        rows.push(Row::new(
            "floor: file per key put (2 fsyncs)".to_owned(),
            size,
            ("put", "fsync"),
            file_puts(&synced, &value, synced_puts, true),
        ));
        rows.push(Row::new(
            "floor: file per key put, no fsync".to_owned(),
            size,
            ("put", "none"),
            file_puts(&unsynced, &value, puts, false),
        ));
        rows.push(Row::new(
            "floor: file per key get (fs::read)".to_owned(),
            size,
            ("get", "none"),
            file_gets(&unsynced, size, puts),
        ));
    }

    let normal = supervisor(&dir.path().join("state-normal"), None);
    for (size, plugin) in SIZES {
        let time = |request: String| kv_time(&normal, plugin, &request);
        rows.push(Row::new(
            "corral put, normal".to_owned(),
            size,
            ("put", "normal"),
            time(format!("put {puts} {size}")),
        ));
        rows.push(Row::new(
            "corral get, normal".to_owned(),
            size,
            ("get", "normal"),
            time(format!("get {puts} {size}")),
        ));
        rows.push(Row::new(
            format!("corral batch of {BATCH} puts, normal"),
            size,
            ("batch", "normal"),
            time(format!("batch {batches} {size} {BATCH}")),
        ));
    }
    drop(normal);

    let full = supervisor(
        &dir.path().join("state-full"),
        Some("plugins = [\"plugins\"]\nsocket = \"corral.sock\"\nstorage_sync = \"full\"\n"),
    );
    for (size, plugin) in SIZES {
        let time = |request: String| kv_time(&full, plugin, &request);
        rows.push(Row::new(
            "corral put, full".to_owned(),
            size,
            ("put", "full"),
            time(format!("put {synced_puts} {size}")),
        ));
        rows.push(Row::new(
            format!("corral batch of {BATCH} puts, full"),
            size,
            ("batch", "full"),
            time(format!("batch {batches} {size} {BATCH}")),
        ));
    }
    drop(full);

    report(&rows, pinned, (puts, synced_puts, batches));
}

/// A supervisor with one `hostile` plugin for each value size, keeping its
/// state in `state`, with `config` as its corral.toml if given.
fn supervisor(state: &Path, config: Option<&str>) -> Corral {
    let mut builder = Corral::builder();
    for (_, plugin) in SIZES {
        builder = builder.native_with(plugin, "hostile", MANIFEST);
    }
    let builder = builder.state_dir(state);
    let corral = match config {
        Some(toml) => builder.start_with_config(toml),
        None => builder.start(),
    };
    for (_, plugin) in SIZES {
        corral.wait_ready(plugin);
    }
    corral
}

/// What `plugin` timed of `request` (`OP N SIZE [BATCH]`): one duration
/// an operation.
fn kv_time(corral: &Corral, plugin: &str, request: &str) -> Vec<Duration> {
    let reply = corral
        .client()
        .call(plugin, "kv-time", request.as_bytes())
        .unwrap_or_else(|error| panic!("{plugin} kv-time {request}: {error}"));
    let nanos = reply.chunks_exact(8);
    assert!(
        nanos.remainder().is_empty(),
        "kv-time replied {} bytes, not u64s",
        reply.len()
    );
    nanos
        .map(|ns| Duration::from_nanos(u64::from_le_bytes(ns.try_into().expect("8 bytes"))))
        .collect()
}

/// The file a key was stored in before SQLite (`bench/7` escaped).
fn key_file(i: usize) -> String {
    format!("bench%2F{i}")
}

/// `count` puts of `value` into a fresh `dir`, one file a key, each timed.
fn file_puts(dir: &Path, value: &[u8], count: usize, fsync: bool) -> Vec<Duration> {
    fs::create_dir(dir).expect("floor folder");
    (0..count)
        .map(|i| {
            let start = Instant::now();
            file_put(dir, &key_file(i), value, fsync)
                .unwrap_or_else(|error| panic!("floor put in {}: {error}", dir.display()));
            start.elapsed()
        })
        .collect()
}

/// The write of corral's earlier per-key storage (`write_durably`, and
/// the quota check's look at the old value's size before it).
fn file_put(dir: &Path, name: &str, value: &[u8], fsync: bool) -> io::Result<()> {
    let path = dir.join(name);
    let _old_size = fs::metadata(&path).ok().map(|metadata| metadata.len());
    let temp = dir.join(format!(".tmp-{name}"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(value)?;
    if fsync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&temp, &path)?;
    if fsync {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `count` reads of the files [`file_puts`] wrote, each timed.
fn file_gets(dir: &Path, size: usize, count: usize) -> Vec<Duration> {
    (0..count)
        .map(|i| {
            let start = Instant::now();
            let value = fs::read(dir.join(key_file(i))).expect("floor get");
            let took = start.elapsed();
            assert_eq!(value.len(), size, "the floor read back something else");
            took
        })
        .collect()
}

/// Prints the table and writes the JSON file.
fn report(rows: &[Row], pinned: bool, (puts, synced_puts, batches): (usize, usize, usize)) {
    let width = rows
        .iter()
        .map(|row| row.what.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "corral plugin storage ({}, N={puts}, {synced_puts} for a put with an fsync, {batches} batches)",
        bench::mode(pinned)
    );
    println!("batch rows: p50/p99 of a batch, ops/s counts puts");
    let mut results = Vec::new();
    for (size, _) in SIZES {
        println!(
            "\n{:<width$} {:>6} {:>9} {:>9} {:>9}",
            format!("{size} B values"),
            "n",
            "p50 µs",
            "p99 µs",
            "ops/s"
        );
        for row in rows.iter().filter(|row| row.value_bytes == size) {
            let latency = &row.latency;
            println!(
                "{:<width$} {:>6} {:>9.1} {:>9.1} {:>9.0}",
                row.what, latency.count, latency.p50_us, latency.p99_us, row.ops_per_s
            );
            results.push(serde_json::json!({
                "what": row.what,
                "value_bytes": row.value_bytes,
                "op": row.op,
                "sync": row.sync,
                "puts_per_op": if row.op == "batch" { BATCH } else { 1 },
                "count": latency.count,
                "p50_us": latency.p50_us,
                "p99_us": latency.p99_us,
                "mean_us": latency.mean_us,
                "ops_per_s": row.ops_per_s,
            }));
        }
    }
    let json = serde_json::json!({
        "bench": "storage",
        "pinned": pinned,
        "puts": puts,
        "synced_puts": synced_puts,
        "batches": batches,
        "batch_size": BATCH,
        "results": results,
    });
    let path = bench::write_json("storage", &json);
    eprintln!("figures written to {}", path.display());
}
