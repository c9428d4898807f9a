//! How a supervisor is set up: `corral serve`'s settings, `corral.toml`,
//! the admin's overrides of plugins' `[config]`, default paths.
//!
//! Layer: imports no other layer.

pub(crate) mod keys;
pub(crate) mod overrides;
pub(crate) mod paths;
mod serve;
pub mod settings;

pub(crate) use serve::CGROUP_AUTO;
pub use serve::{ServeConfig, StorageSync};
