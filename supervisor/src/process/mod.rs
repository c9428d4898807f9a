//! One worker process, from fork to reaping: spawning it (the only place
//! that forks, itself or through a zygote), the sandbox applied before exec, its cgroup, its channel
//! and the calls in flight on it, its output, the seccomp referrals it
//! makes, the watchdog, and how it ended.
//!
//! Layer: may import `observe`, `config` and `transport`; never a layer
//! above. What it needs from above (host services for a worker, where
//! refusals are recorded) it takes as traits.

pub(crate) mod cgroup;
pub(crate) mod exit;
pub(crate) mod integrity;
pub(crate) mod output;
pub(crate) mod refusals;
pub(crate) mod sandbox;
pub(crate) mod spawn;
pub(crate) mod watchdog;
pub(crate) mod worker;
pub(crate) mod zygote;
