//! What corral plugins and the corral supervisor share.
//!
//! - [`Plugin`], [`Host`] and [`export_plugin!`]: write a plugin once in Rust;
//!   built as a `cdylib` it exports the native C ABI described in [`abi`]
//!   (and in `include/corral_plugin.h`). [`Host`] also reaches the
//!   supervisor's services: storage, publish/subscribe, calls into a
//!   dependency, each granted by the manifest's `[permissions] host`.
//! - [`kv`]: the formats of the paged and batched storage services.
//! - [`manifest`]: the `plugin.toml` schema and its validation.
//! - [`seccomp`]: the syscall policy workers run under, by name.
//! - [`wire`]: the frames exchanged between host apps, the supervisor and
//!   workers, and their codec.
//! - `worker_setup` (Linux): the sandbox steps every new worker process
//!   applies to itself before the plugin, shared by the supervisor and the
//!   zygote.
//! - [`RemoteError`]: errors that cross a process boundary, as data.
//! - [`testing`]: a [`Host`] for unit tests of a plugin, no supervisor
//!   needed.
//!
//! This crate has no async runtime and no wasm runtime in it: it builds for
//! `wasm32` guests as well as for the host.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod abi;
mod error;
#[doc(hidden)]
pub mod export;
pub mod kv;
pub mod manifest;
mod output;
mod plugin;
pub mod seccomp;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
mod wasm_host;
pub mod wire;
#[cfg(target_os = "linux")]
pub mod worker_setup;

pub use error::{ErrorKind, PluginError, RemoteError};
pub use output::Output;
pub use plugin::{Host, LogLevel, Plugin};
