//! The watchdog: one thread that samples every ready worker's CPU time,
//! resident memory and thread count (through sysinfo), keeps the figures
//! for `corral ps`, and condemns a worker that
//!
//! - used more CPU than its `cpu_percent` over a whole [`WINDOW`]
//!   (a busy loop in a background thread, which no call deadline sees), or
//! - runs more threads than its `threads` limit (`RLIMIT_NPROC` cannot
//!   hold them while workers share the supervisor's uid).
//!
//! The measuring is pure ([`CpuWindow`]) and unit-tested with injected
//! samples; the thread only reads `/proc` and condemns.

use crate::process::worker::Worker;
use corral_plugin_api::wire::{EffectiveLimits, ExitCause};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tracing::warn;

/// How often workers are sampled.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);
/// How long CPU use must stay over the limit.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);

/// CPU time samples of one process over a sliding window.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    window: Duration,
    /// (when, accumulated CPU milliseconds), oldest first.
    samples: VecDeque<(Duration, u64)>,
}

impl CpuWindow {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample taken at `at` (any monotonic origin).
    pub(crate) fn push(&mut self, at: Duration, cpu_ms: u64) {
        self.samples.push_back((at, cpu_ms));
        // Keep the newest sample at least `window` old as the baseline.
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
    }

    /// Average CPU use in percent of one core over the last window, once
    /// the samples span a whole window.
    pub(crate) fn usage(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let span = last.0.saturating_sub(first.0);
        if span < self.window || span.is_zero() {
            return None;
        }
        let cpu = last.1.saturating_sub(first.1);
        Some(cpu as f64 * 100.0 / span.as_millis() as f64)
    }
}

struct Watched {
    worker: Weak<Worker>,
    pid: Pid,
    cpu_percent: Option<u64>,
    threads: u64,
    cpu: CpuWindow,
}

/// Registry of watched workers, shared with the watchdog thread.
#[derive(Default)]
pub(crate) struct Watchdog {
    watched: Mutex<Vec<Watched>>,
}

impl Watchdog {
    /// Starts the watchdog thread; it runs as long as the process.
    pub(crate) fn start() -> std::io::Result<Arc<Self>> {
        let watchdog = Arc::new(Self::default());
        let shared = watchdog.clone();
        std::thread::Builder::new()
            .name("corral-watchdog".into())
            .spawn(move || shared.run())?;
        Ok(watchdog)
    }

    /// Watches a ready worker until it exits.
    pub(crate) fn watch(&self, worker: &Arc<Worker>, limits: &EffectiveLimits) {
        self.lock().push(Watched {
            worker: Arc::downgrade(worker),
            pid: Pid::from_u32(worker.pid()),
            cpu_percent: limits.cpu_percent,
            threads: limits.threads,
            cpu: CpuWindow::new(WINDOW),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut system = match System::new() {
            Ok(system) => system,
            Err(error) => {
                warn!("watchdog disabled: cannot read process information: {error}");
                return;
            }
        };
        let origin = Instant::now();
        loop {
            std::thread::sleep(INTERVAL);
            let pids: Vec<Pid> = {
                let mut watched = self.lock();
                watched.retain(|w| w.worker.upgrade().is_some_and(|worker| !worker.is_closed()));
                watched.iter().map(|w| w.pid).collect()
            };
            if pids.is_empty() {
                continue;
            }
            let refresh = ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_tasks();
            system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, refresh);
            let now = origin.elapsed();
            for watched in self.lock().iter_mut() {
                let Some(process) = system.process(watched.pid) else {
                    continue;
                };
                watched.cpu.push(now, process.accumulated_cpu_time());
                let threads = process.tasks().map_or(1, |tasks| tasks.len() as u64);
                let Some(worker) = watched.worker.upgrade() else {
                    continue;
                };
                worker.record_usage(process.memory(), watched.cpu.usage());
                if let Some((cause, why)) = verdict(watched, threads) {
                    worker.condemn(cause, why);
                }
            }
        }
    }
}

fn verdict(watched: &Watched, threads: u64) -> Option<(ExitCause, String)> {
    if threads > watched.threads {
        return Some((
            ExitCause::ThreadLimit,
            format!("watchdog: {threads} threads, limit {}", watched.threads),
        ));
    }
    let limit = watched.cpu_percent?;
    let usage = watched.cpu.usage()?;
    (usage > limit as f64).then(|| {
        (
            ExitCause::CpuLimit,
            format!(
                "watchdog: {usage:.0}% CPU over {} s, limit {limit}%",
                WINDOW.as_secs()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn usage_needs_a_whole_window() {
        let mut cpu = CpuWindow::new(ms(1000));
        cpu.push(ms(0), 0);
        cpu.push(ms(500), 500);
        assert_eq!(cpu.usage(), None);
        cpu.push(ms(1000), 1000);
        assert_eq!(cpu.usage(), Some(100.0));
    }

    #[test]
    fn usage_follows_the_last_window() {
        let mut cpu = CpuWindow::new(ms(1000));
        // busy for 2 s, then idle
        for t in (0..=2000).step_by(250) {
            cpu.push(ms(t), t);
        }
        assert_eq!(cpu.usage(), Some(100.0));
        for t in (2250..=4000).step_by(250) {
            cpu.push(ms(t), 2000);
        }
        assert_eq!(cpu.usage(), Some(0.0));
        // half busy
        let mut used = 2000;
        for t in (4250..=6000).step_by(250) {
            used += 125;
            cpu.push(ms(t), used);
        }
        assert_eq!(cpu.usage(), Some(50.0));
    }

    #[test]
    fn two_busy_threads_count_as_200_percent() {
        let mut cpu = CpuWindow::new(ms(1000));
        cpu.push(ms(0), 0);
        cpu.push(ms(1000), 2000);
        assert_eq!(cpu.usage(), Some(200.0));
    }
}
