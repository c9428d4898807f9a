//! corral: a process-isolated plugin supervisor.
//!
//! The `corral` binary runs the supervisor (`corral serve`) and the admin
//! commands. This library holds the supervisor itself and the client
//! library for host apps:
//!
//! - [`Client`]: async (tokio) client for host apps;
//! - [`blocking::Client`]: the same calls without an async runtime;
//! - [`serve`]: runs a supervisor until SIGINT/SIGTERM (Linux only).
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral::ClientError> {
//! let client = corral::Client::connect("/run/corral/corral.sock").await?;
//! let reply = client.call("hello", "upper", b"hi".to_vec()).await?;
//! assert_eq!(reply, b"HI");
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

#[cfg(target_os = "linux")]
pub mod blocking;
#[cfg(target_os = "linux")]
mod client;
pub mod clock;
mod config;
mod deps;
#[cfg(target_os = "linux")]
mod framed;
#[cfg(target_os = "linux")]
pub mod install;
mod paths;
#[cfg(unix)]
pub mod scaffold;
pub mod settings;
#[cfg(target_os = "linux")]
pub mod signing;
#[cfg(target_os = "linux")]
pub mod testing;

#[cfg(target_os = "linux")]
mod bus;
#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
pub mod check;
#[cfg(target_os = "linux")]
mod controller;
#[cfg(target_os = "linux")]
mod daemon;
#[cfg(target_os = "linux")]
mod encoding;
#[cfg(target_os = "linux")]
mod events;
#[cfg(target_os = "linux")]
mod exit;
#[cfg(target_os = "linux")]
mod fleet;
#[cfg(target_os = "linux")]
mod kv;
#[cfg(target_os = "linux")]
mod lifecycle;
#[cfg(target_os = "linux")]
mod limits;
#[cfg(target_os = "linux")]
mod logfile;
#[cfg(target_os = "linux")]
mod metrics;
#[cfg(target_os = "linux")]
mod output;
#[cfg(target_os = "linux")]
mod overrides;
#[cfg(target_os = "linux")]
mod payload;
#[cfg(target_os = "linux")]
mod plugin;
#[cfg(target_os = "linux")]
mod prometheus;
#[cfg(target_os = "linux")]
mod registry;
#[cfg(target_os = "linux")]
mod sandbox;
#[cfg(target_os = "linux")]
mod sd_notify;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod services;
#[cfg(target_os = "linux")]
mod spawn;
#[cfg(target_os = "linux")]
mod syscalls;
#[cfg(target_os = "linux")]
mod watchdog;
#[cfg(target_os = "linux")]
mod watcher;
#[cfg(target_os = "linux")]
mod worker;

#[cfg(target_os = "linux")]
pub use client::{Client, ClientError, DEFAULT_CALL_TIMEOUT, EventStream, Subscription};
pub use config::ServeConfig;
pub use corral_plugin_api::wire::{
    Action, EffectiveLimits, Event, EventKind, ExitCause, ExitInfo, Fault, Layer, Message,
    PluginDetails, PluginInfo, PluginKind, PluginState,
};
pub use corral_plugin_api::{ErrorKind, RemoteError};
#[cfg(target_os = "linux")]
pub use daemon::{ServeError, serve};
pub use paths::{default_socket_path, default_state_dir};
