//! Restart policy, pure: no I/O, time passed in, unit-tested without
//! sleeping.
//!
//! After a worker exits, `[restart] policy` decides whether it runs again:
//! `always`, `on-failure` (not after a clean exit 0), or `never`. A restart
//! is immediate the first time, then waits `backoff_ms` (1 s), doubling up
//! to `backoff_max_ms` (60 s). A worker that stayed ready for 5 minutes has
//! earned a clean slate. Five failures within 5 minutes is a crash loop:
//! the plugin keeps being retried at the backoff cap and says so, unless
//! `give_up_after` failures in a row make it give up (state `failed`).

use corral_plugin_api::manifest::{RestartPolicy, RestartSettings};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Time ready after which the failure count resets.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(5 * 60);
/// Failures within [`CRASHLOOP_WINDOW`] that make a crash loop.
pub(crate) const CRASHLOOP_FAILURES: usize = 5;
/// The window crash-loop failures are counted in.
pub(crate) const CRASHLOOP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How a worker's run ended, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It exited 0 on its own.
    Clean,
    /// It crashed, was killed, exited non-zero, or never got ready.
    Failed,
}

/// What to do after a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start again after `delay`; `crashloop` when failures pile up.
    Restart { delay: Duration, crashloop: bool },
    /// Do not restart: the plugin is stopped (a clean exit the policy
    /// does not restart).
    Stay,
    /// Do not restart: the plugin has failed, for this reason.
    GiveUp(String),
}

/// One plugin's restart bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Restarts {
    settings: RestartSettings,
    /// Failures in a row (reset by a long enough ready run).
    consecutive: u32,
    /// When recent failures happened, for crash-loop detection.
    recent: VecDeque<Instant>,
}

impl Restarts {
    pub(crate) fn new(settings: RestartSettings) -> Self {
        Self {
            settings,
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }

    /// Adopts new settings (hot reload) and keeps the history.
    pub(crate) fn set_settings(&mut self, settings: RestartSettings) {
        self.settings = settings;
    }

    /// Forgets past failures: an admin started the plugin by hand.
    pub(crate) fn reset(&mut self) {
        self.consecutive = 0;
        self.recent.clear();
    }

    /// Whether failures pile up right now.
    pub(crate) fn crashloop(&self) -> bool {
        self.recent.len() >= CRASHLOOP_FAILURES
    }

    /// Records a run that ended at `now` after being ready for `ready_for`
    /// (zero if it never got ready) and decides what comes next.
    pub(crate) fn after(&mut self, now: Instant, ready_for: Duration, ending: Ending) -> Next {
        if ready_for >= RESET_AFTER {
            self.reset();
        }
        let restart = match (self.settings.policy, ending) {
            (RestartPolicy::Always, _) | (RestartPolicy::OnFailure, Ending::Failed) => true,
            (RestartPolicy::OnFailure | RestartPolicy::Never, Ending::Clean) => false,
            (RestartPolicy::Never, Ending::Failed) => {
                return Next::GiveUp("the worker failed and [restart] policy is \"never\"".into());
            }
        };
        if !restart {
            return Next::Stay;
        }
        if ending == Ending::Failed {
            self.consecutive = self.consecutive.saturating_add(1);
            self.recent.push_back(now);
        }
        while self
            .recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) > CRASHLOOP_WINDOW)
        {
            self.recent.pop_front();
        }
        if let Some(limit) = self.settings.give_up_after
            && self.consecutive >= limit
        {
            return Next::GiveUp(format!(
                "gave up after {} failures in a row ([restart] give_up_after = {limit})",
                self.consecutive
            ));
        }
        Next::Restart {
            delay: self.delay(),
            crashloop: self.crashloop(),
        }
    }

    /// Immediate after the first failure, then `backoff_ms` doubling up to
    /// `backoff_max_ms`. A clean exit restarts after `backoff_ms` at the
    /// least, so a plugin that exits at once cannot spin.
    fn delay(&self) -> Duration {
        let base = self.settings.backoff_ms;
        let max = self.settings.backoff_max_ms.max(base);
        let ms = match self.consecutive {
            0 => base,
            1 => 0,
            n => base.saturating_mul(1u64 << (n - 2).min(32)).min(max),
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restarts(policy: RestartPolicy, give_up_after: Option<u32>) -> Restarts {
        Restarts::new(RestartSettings {
            policy,
            give_up_after,
            ..RestartSettings::default()
        })
    }

    fn delays(next: &[Next]) -> Vec<u64> {
        next.iter()
            .map(|n| match n {
                Next::Restart { delay, .. } => delay.as_secs(),
                other => panic!("expected a restart, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn immediate_then_doubling_then_capped() {
        let mut r = restarts(RestartPolicy::Always, None);
        let now = Instant::now();
        let next: Vec<_> = (0..10)
            .map(|i| r.after(now + Duration::from_secs(i), Duration::ZERO, Ending::Failed))
            .collect();
        assert_eq!(delays(&next), [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn five_minutes_ready_resets() {
        let mut r = restarts(RestartPolicy::Always, None);
        let now = Instant::now();
        for _ in 0..5 {
            r.after(now, Duration::from_secs(1), Ending::Failed);
        }
        let next = r.after(now, RESET_AFTER - Duration::from_secs(1), Ending::Failed);
        assert_eq!(delays(&[next]), [16]);
        let next = r.after(now, RESET_AFTER, Ending::Failed);
        assert_eq!(delays(&[next]), [0]);
        assert!(!r.crashloop());
    }

    #[test]
    fn five_failures_in_five_minutes_is_a_crash_loop_that_keeps_retrying() {
        let mut r = restarts(RestartPolicy::Always, None);
        let t0 = Instant::now();
        let loops: Vec<bool> = (0..7)
            .map(|i| {
                let next = r.after(
                    t0 + Duration::from_secs(i * 10),
                    Duration::ZERO,
                    Ending::Failed,
                );
                matches!(
                    next,
                    Next::Restart {
                        crashloop: true,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(loops, [false, false, false, false, true, true, true]);
        // Failures spread over more than the window are no loop.
        let mut r = restarts(RestartPolicy::Always, None);
        for i in 0..10 {
            let next = r.after(
                t0 + Duration::from_secs(i * 100),
                Duration::ZERO,
                Ending::Failed,
            );
            assert!(
                matches!(
                    next,
                    Next::Restart {
                        crashloop: false,
                        ..
                    }
                ),
                "{i}: {next:?}"
            );
        }
    }

    #[test]
    fn give_up_after_n_failures_in_a_row() {
        let mut r = restarts(RestartPolicy::Always, Some(3));
        let now = Instant::now();
        assert!(matches!(
            r.after(now, Duration::ZERO, Ending::Failed),
            Next::Restart { .. }
        ));
        assert!(matches!(
            r.after(now, Duration::ZERO, Ending::Failed),
            Next::Restart { .. }
        ));
        let Next::GiveUp(why) = r.after(now, Duration::ZERO, Ending::Failed) else {
            panic!("expected to give up");
        };
        assert!(why.contains("3 failures in a row"), "{why}");
        // An admin's start forgives.
        r.reset();
        assert!(matches!(
            r.after(now, Duration::ZERO, Ending::Failed),
            Next::Restart { .. }
        ));
    }

    #[test]
    fn policies() {
        let now = Instant::now();
        let mut on_failure = restarts(RestartPolicy::OnFailure, None);
        assert_eq!(
            on_failure.after(now, Duration::ZERO, Ending::Clean),
            Next::Stay
        );
        assert!(matches!(
            on_failure.after(now, Duration::ZERO, Ending::Failed),
            Next::Restart { .. }
        ));
        let mut never = restarts(RestartPolicy::Never, None);
        assert_eq!(never.after(now, Duration::ZERO, Ending::Clean), Next::Stay);
        assert!(matches!(
            never.after(now, Duration::ZERO, Ending::Failed),
            Next::GiveUp(_)
        ));
        // A clean exit under `always` waits the base delay: no spinning.
        let mut always = restarts(RestartPolicy::Always, None);
        assert_eq!(
            always.after(now, Duration::ZERO, Ending::Clean),
            Next::Restart {
                delay: Duration::from_secs(1),
                crashloop: false
            }
        );
    }

    #[test]
    fn backoff_settings_apply_and_never_overflow() {
        let mut r = Restarts::new(RestartSettings {
            backoff_ms: 100,
            backoff_max_ms: 250,
            ..RestartSettings::default()
        });
        let now = Instant::now();
        let ms: Vec<u128> = (0..6)
            .map(|_| match r.after(now, Duration::ZERO, Ending::Failed) {
                Next::Restart { delay, .. } => delay.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ms, [0, 100, 200, 250, 250, 250]);
        r.consecutive = u32::MAX - 1;
        assert!(
            matches!(r.after(now, Duration::ZERO, Ending::Failed), Next::Restart { delay, .. } if delay.as_millis() == 250)
        );
    }
}
