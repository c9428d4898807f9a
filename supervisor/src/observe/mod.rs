//! What admins and monitors see: the event journal, call metrics, the
//! Prometheus endpoint, per-plugin log files, systemd notifications, and
//! the wall-clock times they print.
//!
//! Layer: may import `config` and `transport`; nothing above.

pub mod clock;
pub(crate) mod crashes;
pub(crate) mod events;
pub(crate) mod journal;
pub(crate) mod logfile;
pub(crate) mod metrics;
pub(crate) mod symbols;
// The endpoint serves the daemon, which is Linux-only, as are its crates.
#[cfg(target_os = "linux")]
pub(crate) mod metrics_http;
#[cfg(target_os = "linux")]
pub(crate) mod prometheus;
pub(crate) mod sd_notify;
