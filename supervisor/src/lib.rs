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
//! Inside, one folder per layer; a layer imports only the layers below
//! it, and takes what it needs from above as a trait the upper layer
//! implements (`tests/tests/imports.rs` checks this, and that no module
//! anywhere in the workspace imports one that imports it back):
//!
//! | layer | owns | reaches up through |
//! |---|---|---|
//! | `testing` | the test kit | |
//! | `admin` | check, install, signing, templates, profile, replay | |
//! | `daemon` | `corral serve`: builds and runs the layers below | |
//! | `host` | the local socket host apps talk to | |
//! | `supervise` | plugins: discovery, dependencies, handles, controllers, registry | |
//! | `services` | what plugins ask of the host: kv, bus, calls | `Plugins`, `PluginEvents` |
//! | `process` | one worker process, from fork to reaping | `HostCalls`, `refusals::Record` |
//! | `observe` | events, metrics, Prometheus, log files, clock | |
//! | `config` | settings, corral.toml, overrides, paths | |
//! | `client` | the Rust client | |
//! | `transport` | frames and payloads over Unix sockets | |
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
mod admin;
#[cfg(target_os = "linux")]
mod client;
mod config;
#[cfg(target_os = "linux")]
mod daemon;
#[cfg(target_os = "linux")]
mod host;
mod observe;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod services;
#[cfg(target_os = "linux")]
mod supervise;
#[cfg(target_os = "linux")]
pub mod testing;
#[cfg(target_os = "linux")]
mod transport;

#[cfg(unix)]
pub use admin::scaffold;
#[cfg(target_os = "linux")]
pub use admin::{check, install, profile, replay, signing};
#[cfg(target_os = "linux")]
pub use client::{
    Client, ClientError, DEFAULT_CALL_TIMEOUT, EventStream, ReplyView, Subscription, blocking,
};
pub use config::paths::{default_socket_path, default_state_dir};
pub use config::settings;
pub use config::{ServeConfig, StorageSync};
pub use corral_plugin_api::wire::{
    Action, CallEnd, CrashReport, CrashSummary, EffectiveLimits, Event, EventKind, ExitCause,
    ExitInfo, Fault, KvAnswer, KvRequest, Layer, Message, PluginDetails, PluginInfo, PluginKind,
    PluginState, RecordedCall, Refusal, SpawnMode,
};
pub use corral_plugin_api::{ErrorKind, RemoteError};
#[cfg(target_os = "linux")]
pub use daemon::{ServeError, serve};
pub use observe::clock;
