//! Plugins under supervision: discovering them, resolving their
//! dependencies, one handle and one controller task per plugin (its
//! lifecycle, restarts, spares, hot reloads), the registry of handles,
//! and the watcher that reloads changed folders.
//!
//! Layer: may import `services`, `process`, `observe`, `config` and
//! `transport`; never `host`.

pub(crate) mod controller;
pub(crate) mod crash_report;
pub(crate) mod deps;
pub(crate) mod disabled;
pub(crate) mod discovery;
pub(crate) mod fleet;
pub(crate) mod handle;
pub(crate) mod launch;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod registry;
pub(crate) mod want;
pub(crate) mod watcher;
