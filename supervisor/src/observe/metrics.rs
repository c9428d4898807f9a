//! Call metrics per plugin: calls finished, failures by error kind, calls in
//! flight and a latency histogram, all in atomics so that every call can
//! count itself without a lock. Reading them ([`CallMetrics::snapshot`]) is
//! for status and scrapes; it is not a time series.

use corral_plugin_api::ErrorKind;
use corral_plugin_api::wire::DirectCounts;
use corral_plugin_api::wire::latency::{BUCKETS, bucket, quantile};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The counters of one plugin's calls. Counters are independent atomics
/// (`Relaxed`): a snapshot taken while calls end may be off by those calls,
/// never by more.
#[derive(Debug, Default)]
pub(crate) struct CallMetrics {
    /// Calls begun and not yet finished or dropped.
    in_flight: AtomicU64,
    /// Failed calls, indexed by `ErrorKind::code() - 1`.
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Latency of finished calls; its total is the number of finished calls.
    latency: Histogram,
}

impl CallMetrics {
    /// A call begins: it counts as in flight until the returned guard is
    /// finished or dropped.
    pub(crate) fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight {
            metrics: self,
            started: Instant::now(),
        }
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Everything counted so far, with the calls a worker counted on its
    /// direct channels (`direct`) added.
    pub(crate) fn snapshot(&self, direct: Option<&DirectCounts>) -> CallStats {
        let mut counts = self.latency.counts();
        let mut errors: [u64; ErrorKind::ALL.len()] =
            std::array::from_fn(|index| self.errors[index].load(Relaxed));
        let mut in_flight = self.in_flight();
        if let Some(direct) = direct {
            // A worker's counts are its own word: wrapping, never a panic.
            for (count, more) in counts.iter_mut().zip(&direct.latency) {
                *count = count.wrapping_add(*more);
            }
            for (count, more) in errors.iter_mut().zip(&direct.errors) {
                *count = count.wrapping_add(*more);
            }
            in_flight += u64::from(direct.busy);
        }
        let calls = counts
            .iter()
            .fold(0u64, |sum, count| sum.saturating_add(*count));
        let errors = ErrorKind::ALL
            .into_iter()
            .zip(errors)
            .filter(|(_, count)| *count > 0)
            .collect();
        CallStats {
            calls,
            errors,
            in_flight,
            p50_us: quantile(&counts, 50),
            p99_us: quantile(&counts, 99),
        }
    }

    /// Adds the calls an ended worker counted on its direct channels.
    pub(crate) fn absorb(&self, direct: &DirectCounts) {
        for (count, more) in self.latency.buckets.iter().zip(&direct.latency) {
            count.fetch_add(*more, Relaxed);
        }
        for (count, more) in self.errors.iter().zip(&direct.errors) {
            count.fetch_add(*more, Relaxed);
        }
    }

    /// Counts a finished call.
    fn record(&self, latency_us: u64, error: Option<ErrorKind>) {
        self.latency.record(latency_us);
        if let Some(kind) = error {
            let index = usize::try_from(kind.code() - 1).ok();
            if let Some(count) = index.and_then(|index| self.errors.get(index)) {
                count.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A call in flight, from [`CallMetrics::begin`]. Dropping it without
/// [`finish`](Self::finish) (the caller went away) only ends "in flight";
/// nothing else is counted.
#[derive(Debug)]
#[must_use = "the call counts as in flight only while this guard lives"]
pub(crate) struct InFlight<'a> {
    /// Where the call is counted.
    metrics: &'a CallMetrics,
    /// When the call began.
    started: Instant,
}

impl InFlight<'_> {
    /// The call ended: counts it, its latency (time since `begin`) and, when
    /// it failed, its error kind.
    pub(crate) fn finish(self, error: Option<ErrorKind>) {
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.record(latency_us, error);
        // Dropping `self` ends "in flight".
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Relaxed);
    }
}

/// What a [`CallMetrics`] has counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallStats {
    /// Finished calls.
    pub(crate) calls: u64,
    /// Failed calls by kind: only kinds with a count above 0, in
    /// [`ErrorKind::ALL`] order.
    pub(crate) errors: Vec<(ErrorKind, u64)>,
    /// Calls in flight.
    pub(crate) in_flight: u64,
    /// Median latency in microseconds (within 10%); `None` before the first
    /// finished call.
    pub(crate) p50_us: Option<u64>,
    /// 99th percentile latency in microseconds (within 10%); `None` before
    /// the first finished call.
    pub(crate) p99_us: Option<u64>,
}

/// Latencies in microseconds, counted in log-linear buckets.
struct Histogram {
    /// Samples per bucket; see [`bucket`].
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }
}

impl fmt::Debug for Histogram {
    // 496 counters say less than their total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let samples: u64 = self.counts().iter().sum();
        f.debug_struct("Histogram")
            .field("samples", &samples)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    /// Counts one sample.
    fn record(&self, us: u64) {
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
    }

    /// The samples per bucket now.
    fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|index| self.buckets[index].load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_plugin_api::wire::latency::midpoint;

    /// The quantiles the histogram reports for `samples`.
    fn reported(samples: &[u64]) -> (Option<u64>, Option<u64>) {
        let histogram = Histogram::default();
        for &us in samples {
            histogram.record(us);
        }
        let counts = histogram.counts();
        (quantile(&counts, 50), quantile(&counts, 99))
    }

    /// The exact `percent` quantile: the `ceil(percent/100 · n)`-th smallest.
    fn exact(samples: &[u64], percent: u64) -> u64 {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = u128::try_from(sorted.len()).unwrap();
        let rank = usize::try_from((n * u128::from(percent)).div_ceil(100)).unwrap();
        sorted[rank.max(1) - 1]
    }

    /// Asserts that `got` is within 10% of `want`.
    fn assert_close(got: Option<u64>, want: u64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what}: no value, want {want}"));
        let diff = u128::from(got.abs_diff(want));
        assert!(
            diff * 10 <= u128::from(want),
            "{what}: got {got}, want {want} within 10%"
        );
    }

    /// Asserts both quantiles of `samples` are within 10% of the exact ones.
    fn assert_quantiles(samples: &[u64]) {
        let (p50, p99) = reported(samples);
        assert_close(p50, exact(samples, 50), "p50");
        assert_close(p99, exact(samples, 99), "p99");
    }

    #[test]
    fn every_value_is_within_a_sixteenth_of_its_bucket_midpoint() {
        let mut values: Vec<u64> = (0..5000).collect();
        for exp in 0..64 {
            let power = 1u64 << exp;
            values.extend([power - 1, power, power + 1, power + power / 3]);
            values.extend([power.saturating_mul(2) - 1, power | ((power - 1) / 2)]);
        }
        values.push(u64::MAX);
        values.sort_unstable();
        let mut last = 0;
        for us in values {
            let index = bucket(us);
            assert!(index < BUCKETS, "{us} -> bucket {index}");
            assert!(index >= last, "buckets out of order at {us}");
            last = index;
            let mid = midpoint(index);
            assert!(
                u128::from(mid.abs_diff(us)) * 16 <= u128::from(us),
                "{us} -> bucket {index} with midpoint {mid}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        for us in 0..16 {
            assert_eq!(midpoint(bucket(us)), us);
        }
    }

    #[test]
    fn quantiles_of_a_uniform_set() {
        let samples: Vec<u64> = (1..=10_000).collect();
        assert_quantiles(&samples);
        let (p50, p99) = reported(&samples);
        assert_close(p50, 5000, "p50");
        assert_close(p99, 9900, "p99");
    }

    #[test]
    fn quantiles_of_a_bimodal_set() {
        // 9,850 fast calls around 50 µs, 150 slow ones around 3 s: the
        // 9,900th smallest, the p99, is a slow one.
        let mut samples: Vec<u64> = (0..9_850).map(|i| 40 + i % 21).collect();
        samples.extend((0..150).map(|i| 3_000_000 + i * 1_000));
        assert_quantiles(&samples);
        let (p50, p99) = reported(&samples);
        assert!(p50 < Some(100) && p99 > Some(2_500_000), "{p50:?} {p99:?}");
    }

    #[test]
    fn quantiles_of_a_single_sample() {
        assert_eq!(reported(&[777]), (Some(800), Some(800)));
        assert_quantiles(&[777]);
        assert_eq!(reported(&[0]), (Some(0), Some(0)));
    }

    #[test]
    fn quantiles_of_huge_values() {
        let day_us = 86_400_000_000;
        assert_quantiles(&[day_us, 2 * day_us, 3 * day_us]);
        assert_quantiles(&[1 << 40, u64::MAX / 2, u64::MAX]);
        assert_quantiles(&[u64::MAX]);
    }

    #[test]
    fn no_quantiles_before_the_first_call() {
        let stats = CallMetrics::default().snapshot(None);
        assert_eq!(stats, CallStats::default());
        assert_eq!((stats.p50_us, stats.p99_us), (None, None));
    }

    #[test]
    fn calls_and_error_kinds_are_counted() {
        let metrics = CallMetrics::default();
        metrics.record(10, Some(ErrorKind::Timeout));
        metrics.record(20, None);
        metrics.record(30, Some(ErrorKind::Crashed));
        metrics.record(40, Some(ErrorKind::Timeout));
        metrics.record(50, Some(ErrorKind::LimitExceeded));
        let stats = metrics.snapshot(None);
        assert_eq!(stats.calls, 5);
        assert_eq!(
            stats.errors,
            [
                (ErrorKind::Crashed, 1),
                (ErrorKind::Timeout, 2),
                (ErrorKind::LimitExceeded, 1)
            ]
        );
        assert_eq!(stats.p50_us, Some(31));
        assert_eq!(stats.p99_us, Some(50));
    }

    #[test]
    fn in_flight_ends_with_finish_or_drop() {
        let metrics = CallMetrics::default();
        let first = metrics.begin();
        let second = metrics.begin();
        assert_eq!(metrics.in_flight(), 2);
        assert_eq!(metrics.snapshot(None).in_flight, 2);

        first.finish(Some(ErrorKind::Plugin));
        assert_eq!(metrics.in_flight(), 1);
        assert_eq!(metrics.snapshot(None).calls, 1);

        drop(second);
        let stats = metrics.snapshot(None);
        assert_eq!(stats.in_flight, 0);
        assert_eq!(stats.calls, 1, "a dropped call is not counted");
        assert_eq!(stats.errors, [(ErrorKind::Plugin, 1)]);
    }

    #[test]
    fn finish_measures_latency_since_begin() {
        let metrics = CallMetrics::default();
        let call = metrics.begin();
        std::thread::sleep(std::time::Duration::from_millis(2));
        call.finish(None);
        let stats = metrics.snapshot(None);
        // The bucket midpoint may be up to 1/16 below the true latency.
        assert!(stats.p50_us >= Some(1_875), "{stats:?}");
    }

    #[test]
    fn concurrent_calls_are_all_counted() {
        const THREADS: u64 = 4;
        const CALLS: u64 = 10_000;
        let metrics = CallMetrics::default();
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let metrics = &metrics;
                scope.spawn(move || {
                    for call in 0..CALLS {
                        let guard = metrics.begin();
                        match call % 10 {
                            0 => guard.finish(Some(ErrorKind::Timeout)),
                            1 if thread == 0 => guard.finish(Some(ErrorKind::Crashed)),
                            2 => drop(guard),
                            _ => guard.finish(None),
                        }
                    }
                });
            }
        });
        let stats = metrics.snapshot(None);
        let per_tenth = THREADS * CALLS / 10;
        assert_eq!(stats.calls, THREADS * CALLS - per_tenth);
        assert_eq!(
            stats.errors,
            [
                (ErrorKind::Crashed, CALLS / 10),
                (ErrorKind::Timeout, per_tenth)
            ]
        );
        assert_eq!(stats.in_flight, 0);
    }
}
