//! Load under faults: many clients calling while workers are killed at
//! random, and the supervisor itself killed under load. Short by default;
//! `CORRAL_LONG=1` runs the storm for 60 s instead of 10 s. Every eighth
//! call is large (128 KiB), so it goes through the direct channels'
//! shared-memory arenas while their workers die.

use corral::ErrorKind;
use corral_tests::{Corral, Workspace, send_signal, start_time, still_running};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The plugins killed during the storm, and the ones left alone.
const STORMED: [&str; 2] = ["storm-a", "storm-b"];
const CALM: [&str; 2] = ["calm-a", "calm-b"];
const CLIENTS: usize = 8;
/// Each call's deadline; a call must end (reply or error) within it and a
/// little slack.
const DEADLINE: Duration = Duration::from_secs(2);

fn storm_time() -> Duration {
    if std::env::var_os("CORRAL_LONG").is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

/// A small xorshift generator: the storm needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

/// What one client saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    /// Failures by plugin and kind.
    failed: HashMap<(String, ErrorKind), u64>,
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn storm_corral() -> Corral {
    let mut builder = Corral::builder();
    for name in STORMED.iter().chain(&CALM) {
        builder = builder.native_with(
            name,
            "hello",
            "[restart]\nbackoff_ms = 1\nbackoff_max_ms = 5\n",
        );
    }
    let corral = builder.start();
    for name in STORMED.iter().chain(&CALM) {
        corral.wait_ready(name);
    }
    corral
}

#[test]
fn a_kill_storm_loses_no_call_and_touches_no_other_plugin() {
    let corral = storm_corral();
    let supervisor = corral.pid();
    // Warm up every code path once, then take the baseline.
    let mut client = corral.client();
    for name in STORMED.iter().chain(&CALM) {
        client.call(name, "echo", b"warm").unwrap();
    }
    drop(client);
    let (fds_before, rss_before) = (fd_count(supervisor), rss_kib(supervisor));

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let mut client = corral.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
                let mut tally = Tally::default();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let plugin = *[STORMED, CALM].concat().get(rng.below(4)).unwrap();
                    let mut input = format!("client {id} call {n}").into_bytes();
                    if n.is_multiple_of(8) {
                        // Large: in the direct channel's shared memory.
                        input = input.repeat(128 * 1024 / input.len() + 1);
                    }
                    n += 1;
                    let started = Instant::now();
                    let result = client.call_with_timeout(plugin, "echo", &input, DEADLINE);
                    let took = started.elapsed();
                    assert!(
                        took < DEADLINE + Duration::from_secs(1),
                        "a call to {plugin} took {took:?}"
                    );
                    match result {
                        // The right reply, never another caller's.
                        Ok(reply) => {
                            assert_eq!(reply, input, "{plugin} answered another call");
                            tally.ok += 1;
                        }
                        Err(error) => {
                            let kind = error.kind().unwrap_or_else(|| panic!("{plugin}: {error}"));
                            *tally.failed.entry((plugin.to_owned(), kind)).or_default() += 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();

    // Kill a random stormed worker every 20 ms.
    let mut rng = Rng(42);
    let mut kills = 0;
    let until = Instant::now() + storm_time();
    while Instant::now() < until {
        let plugin = STORMED[rng.below(STORMED.len())];
        if let Some(pid) = corral.plugin(plugin).pid {
            send_signal(pid, libc::SIGKILL);
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for client in clients {
        let tally = client.join().expect("a client thread failed");
        total.ok += tally.ok;
        for (key, count) in tally.failed {
            *total.failed.entry(key).or_default() += count;
        }
    }
    eprintln!(
        "storm: {kills} kills, {} calls answered, failures {:?}",
        total.ok, total.failed
    );
    assert!(kills > 100, "only {kills} kills");
    for ((plugin, kind), count) in &total.failed {
        assert!(
            STORMED.contains(&plugin.as_str()),
            "{plugin}, never killed, failed {count} calls with {kind}"
        );
        assert!(
            matches!(kind, ErrorKind::Crashed | ErrorKind::Unavailable),
            "{plugin}: {count} calls failed with {kind}"
        );
    }
    assert!(total.ok > 1000, "only {} calls answered", total.ok);

    // The supervisor gives back what the storm took.
    for name in STORMED {
        corral.wait_ready(name);
    }
    corral.wait_until("the supervisor's fds are back to the baseline", || {
        fd_count(supervisor) <= fds_before
    });
    let rss_after = rss_kib(supervisor);
    assert!(
        rss_after <= rss_before + 16 * 1024,
        "supervisor RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn killing_the_supervisor_under_load_leaves_no_worker_behind() {
    let mut corral = storm_corral();
    let workers: Vec<(u32, u64)> = STORMED
        .iter()
        .chain(&CALM)
        .map(|name| {
            let pid = corral.plugin(name).pid.unwrap();
            (pid, start_time(pid).expect("a running worker"))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = corral.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if client.call("calm-a", "echo", b"x").is_err() {
                        return; // the supervisor is gone
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    corral.signal(libc::SIGKILL);
    corral.wait_exit();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    for (pid, started) in workers {
        // Gone (its pid free or another process's), or dead and waiting
        // for whoever adopted it to reap it.
        assert!(
            !still_running(pid, started),
            "worker {pid} outlived its supervisor by 1 s"
        );
    }
    // A new supervisor serves the same plugins.
    let again = storm_corral();
    assert_eq!(
        again.client().call("calm-a", "echo", b"back").unwrap(),
        b"back"
    );
}
