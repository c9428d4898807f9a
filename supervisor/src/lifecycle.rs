//! Restart policy, pure: no I/O, time passed in, unit-tested without
//! sleeping.
//!
//! After a worker exits it is started again at once the first time, then
//! after 1 s, 2 s, 4 s, ... capped at 60 s. A worker that stayed ready for
//! 5 minutes has earned a clean slate: its next restart is immediate again.

use std::time::Duration;

/// Longest wait between restarts.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);
/// Time ready after which the failure count resets.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(5 * 60);

/// Exponential restart backoff.
#[derive(Debug, Default, Clone)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records an exit after the worker was ready for `ready_for` (zero if
    /// it never got ready) and returns how long to wait before the next
    /// start.
    pub(crate) fn next_delay(&mut self, ready_for: Duration) -> Duration {
        if ready_for >= RESET_AFTER {
            self.failures = 0;
        }
        let delay = match self.failures {
            0 => Duration::ZERO,
            n => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_DELAY),
        };
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(delays: &[Duration]) -> Vec<u64> {
        delays.iter().map(Duration::as_secs).collect()
    }

    #[test]
    fn immediate_then_doubling_then_capped() {
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..10)
            .map(|_| backoff.next_delay(Duration::ZERO))
            .collect();
        assert_eq!(secs(&delays), [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn five_minutes_ready_resets() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_delay(Duration::from_secs(1));
        }
        assert_eq!(
            backoff.next_delay(RESET_AFTER - Duration::from_secs(1)),
            Duration::from_secs(16)
        );
        assert_eq!(backoff.next_delay(RESET_AFTER), Duration::ZERO);
        assert_eq!(backoff.next_delay(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn never_overflows() {
        let mut backoff = Backoff {
            failures: u32::MAX - 1,
        };
        assert_eq!(backoff.next_delay(Duration::ZERO), MAX_DELAY);
        assert_eq!(backoff.next_delay(Duration::ZERO), MAX_DELAY);
    }
}
