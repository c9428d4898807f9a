//! How a plugin's worker is run: when it starts (`[plugin] start`,
//! [`StartMode`]), what happens when it exits or fails to start
//! (`[restart]`, [`RestartSettings`]), and its periodic health call
//! (`[health]`, [`HealthSettings`]).

use super::limits::checked;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// When a plugin's worker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// When the supervisor starts (`start = "eager"`).
    #[default]
    Eager,
    /// On the first call (`start = "lazy"`).
    Lazy,
}

impl StartMode {
    /// The manifest spelling: `eager` or `lazy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eager => "eager",
            Self::Lazy => "lazy",
        }
    }
}

/// Whether a worker that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// After any exit (`policy = "always"`).
    #[default]
    Always,
    /// After an exit that was not clean: a crash, a kill, a non-zero
    /// exit code (`policy = "on-failure"`).
    OnFailure,
    /// Never: the plugin stays down until an admin starts it
    /// (`policy = "never"`).
    Never,
}

impl RestartPolicy {
    /// The manifest spelling: `always`, `on-failure` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::Never => "never",
        }
    }
}

/// `[restart]`: restart policy and backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartSettings {
    /// When to restart.
    pub policy: RestartPolicy,
    /// Give up (state failed) after this many consecutive failed
    /// starts/crashes; `None` = never give up. 1 to 1000.
    pub give_up_after: Option<u32>,
    /// Delay after the 2nd failure; doubles each time (the first restart
    /// is immediate). Default 1000, 1 to 3 600 000.
    pub backoff_ms: u64,
    /// Cap of the delay. Default 60 000, `backoff_ms` to 3 600 000.
    pub backoff_max_ms: u64,
    /// Keep a spare worker, spawned and sandboxed but with no plugin code
    /// loaded, so that a restart only loads the plugin. Default false.
    pub spare: bool,
    /// Execute every worker of this plugin afresh instead of forking it
    /// from the zygote: its own address-space layout (ASLR), at the cost
    /// of a slower start. Default false.
    pub fresh_exec: bool,
}

impl Default for RestartSettings {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::Always,
            give_up_after: None,
            backoff_ms: 1_000,
            backoff_max_ms: 60_000,
            spare: false,
            fresh_exec: false,
        }
    }
}

/// `[health]`: the periodic `health` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Period of the health call; 0 = no health checks. Default 10 000;
    /// 0, or 100 to 3 600 000.
    pub interval_ms: u64,
    /// Deadline of one health call. Default 1000, 1 to 600 000.
    pub timeout_ms: u64,
    /// Consecutive failed checks after which the worker is restarted.
    /// Default 3, 1 to 100.
    pub failures: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            timeout_ms: 1_000,
            failures: 3,
        }
    }
}

/// `[restart]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRestart {
    policy: Option<Spanned<String>>,
    give_up_after: Option<Spanned<u64>>,
    backoff_ms: Option<Spanned<u64>>,
    backoff_max_ms: Option<Spanned<u64>>,
    spare: Option<bool>,
    fresh_exec: Option<bool>,
}

/// `[health]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    interval_ms: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    failures: Option<Spanned<u64>>,
}

/// Longest delay `[restart]` and `[health]` accept: one hour.
pub(super) const MAX_DELAY_MS: u64 = 3_600_000;

/// `[plugin] start`, checked; unset = [`StartMode::Eager`].
pub(super) fn spawn_mode(
    raw: Option<Spanned<String>>,
) -> Result<StartMode, (Range<usize>, String)> {
    match raw {
        None => Ok(StartMode::default()),
        Some(start) => match start.get_ref().as_str() {
            "eager" => Ok(StartMode::Eager),
            "lazy" => Ok(StartMode::Lazy),
            other => Err((
                start.span(),
                format!("[plugin] start = {other:?}: expected \"eager\" or \"lazy\""),
            )),
        },
    }
}

/// `[restart]`, checked: a policy, and delays within range.
pub(super) fn restart_settings(raw: RawRestart) -> Result<RestartSettings, (Range<usize>, String)> {
    let defaults = RestartSettings::default();
    let policy = match raw.policy {
        None => defaults.policy,
        Some(policy) => match policy.get_ref().as_str() {
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            "never" => RestartPolicy::Never,
            other => {
                return Err((
                    policy.span(),
                    format!(
                        "[restart] policy = {other:?}: expected \"always\", \"on-failure\" or \"never\""
                    ),
                ));
            }
        },
    };
    let give_up_after = checked(
        raw.give_up_after,
        "[restart]",
        "give_up_after",
        1..=1000,
        "",
    )?
    .map(|n| u32::try_from(n).expect("at most 1000"));
    let backoff_span = raw.backoff_ms.as_ref().map(Spanned::span);
    let backoff_ms = checked(
        raw.backoff_ms,
        "[restart]",
        "backoff_ms",
        1..=MAX_DELAY_MS,
        "",
    )?
    .unwrap_or(defaults.backoff_ms);
    let backoff_max_ms = match raw.backoff_max_ms {
        Some(max) if *max.get_ref() < backoff_ms => {
            return Err((
                max.span(),
                format!(
                    "[restart] backoff_max_ms = {}: expected at least backoff_ms ({backoff_ms})",
                    max.get_ref()
                ),
            ));
        }
        max => checked(max, "[restart]", "backoff_max_ms", 1..=MAX_DELAY_MS, "")?
            .unwrap_or(defaults.backoff_max_ms),
    };
    if backoff_max_ms < backoff_ms {
        // Only a backoff_ms above the default cap gets here.
        let span = backoff_span.expect("backoff_ms was set");
        return Err((
            span,
            format!(
                "[restart] backoff_ms = {backoff_ms}: expected at most backoff_max_ms ({backoff_max_ms}); raise backoff_max_ms too"
            ),
        ));
    }
    Ok(RestartSettings {
        policy,
        give_up_after,
        backoff_ms,
        backoff_max_ms,
        spare: raw.spare.unwrap_or(defaults.spare),
        fresh_exec: raw.fresh_exec.unwrap_or(defaults.fresh_exec),
    })
}

/// `[health]`, checked: every value within range.
pub(super) fn health_settings(raw: RawHealth) -> Result<HealthSettings, (Range<usize>, String)> {
    let defaults = HealthSettings::default();
    let interval_ms = match raw.interval_ms {
        Some(interval) if *interval.get_ref() == 0 => 0,
        interval => checked(
            interval,
            "[health]",
            "interval_ms",
            100..=MAX_DELAY_MS,
            "0 (no health checks) or 100 to 3600000",
        )?
        .unwrap_or(defaults.interval_ms),
    };
    let timeout_ms = checked(raw.timeout_ms, "[health]", "timeout_ms", 1..=600_000, "")?
        .unwrap_or(defaults.timeout_ms);
    let failures = checked(raw.failures, "[health]", "failures", 1..=100, "")?
        .map_or(defaults.failures, |n| {
            u32::try_from(n).expect("at most 100")
        });
    Ok(HealthSettings {
        interval_ms,
        timeout_ms,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{GOOD, parse, refused_at};

    #[test]
    fn start_is_eager_or_lazy() {
        let with = |start: &str| GOOD.replace("api = 1", &format!("api = 1\nstart = \"{start}\""));
        assert_eq!(parse(&with("eager")).unwrap().start, StartMode::Eager);
        assert_eq!(parse(&with("lazy")).unwrap().start, StartMode::Lazy);
        refused_at(
            &with("later"),
            8,
            "[plugin] start = \"later\": expected \"eager\" or \"lazy\"",
        );
    }

    #[test]
    fn unknown_keys_in_restart_and_health_are_refused() {
        refused_at(
            &format!("{GOOD}[restart]\nretries = 3\n"),
            9,
            "unknown field `retries`",
        );
        refused_at(
            &format!("{GOOD}[health]\nperiod_ms = 3\n"),
            9,
            "unknown field `period_ms`",
        );
    }

    #[test]
    fn restart_settings() {
        let text = format!(
            "{GOOD}\n[restart]\npolicy = \"on-failure\"\ngive_up_after = 5\nbackoff_ms = 200\nbackoff_max_ms = 800\nspare = true\nfresh_exec = true\n"
        );
        assert_eq!(
            parse(&text).unwrap().restart,
            RestartSettings {
                policy: RestartPolicy::OnFailure,
                give_up_after: Some(5),
                backoff_ms: 200,
                backoff_max_ms: 800,
                spare: true,
                fresh_exec: true,
            }
        );
        let never = format!("{GOOD}\n[restart]\npolicy = \"never\"\n");
        assert_eq!(parse(&never).unwrap().restart.policy, RestartPolicy::Never);
        let restart = |body: &str| format!("{GOOD}\n[restart]\n{body}\n");
        let cases = [
            (
                "policy = \"sometimes\"",
                "[restart] policy = \"sometimes\": expected \"always\", \"on-failure\" or \"never\"",
            ),
            (
                "give_up_after = 0",
                "[restart] give_up_after = 0: expected 1 to 1000",
            ),
            ("give_up_after = 1001", "expected 1 to 1000"),
            (
                "backoff_ms = 0",
                "[restart] backoff_ms = 0: expected 1 to 3600000",
            ),
            ("backoff_max_ms = 3600001", "expected 1 to 3600000"),
            (
                "backoff_ms = 500\nbackoff_max_ms = 499",
                "[restart] backoff_max_ms = 499: expected at least backoff_ms (500)",
            ),
            (
                "backoff_ms = 120000",
                "[restart] backoff_ms = 120000: expected at most backoff_max_ms (60000)",
            ),
            ("backoff_ms = -1", "[restart] backoff_ms: invalid value"),
        ];
        for (body, expected) in cases {
            // The key at fault is on the last line.
            refused_at(&restart(body), 9 + body.lines().count(), expected);
        }
        // The cap may be raised together with the delay.
        let slow = restart("backoff_ms = 120000\nbackoff_max_ms = 600000");
        assert_eq!(parse(&slow).unwrap().restart.backoff_max_ms, 600_000);
    }

    #[test]
    fn health_settings() {
        let text = format!("{GOOD}\n[health]\ninterval_ms = 500\ntimeout_ms = 50\nfailures = 1\n");
        assert_eq!(
            parse(&text).unwrap().health,
            HealthSettings {
                interval_ms: 500,
                timeout_ms: 50,
                failures: 1,
            }
        );
        let off = format!("{GOOD}\n[health]\ninterval_ms = 0\n");
        assert_eq!(parse(&off).unwrap().health.interval_ms, 0);
        let health = |body: &str| format!("{GOOD}\n[health]\n{body}\n");
        let cases = [
            (
                "interval_ms = 99",
                "[health] interval_ms = 99: expected 0 (no health checks) or 100 to 3600000",
            ),
            (
                "interval_ms = 3600001",
                "expected 0 (no health checks) or 100",
            ),
            (
                "timeout_ms = 0",
                "[health] timeout_ms = 0: expected 1 to 600000",
            ),
            ("timeout_ms = 600001", "expected 1 to 600000"),
            ("failures = 0", "[health] failures = 0: expected 1 to 100"),
            ("failures = 101", "expected 1 to 100"),
            ("failures = \"3\"", "[health] failures: invalid type"),
        ];
        for (body, expected) in cases {
            refused_at(&health(body), 10, expected);
        }
    }
}
