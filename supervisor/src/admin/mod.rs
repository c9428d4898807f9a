//! Admin tools that work on plugin folders and archives, with or without a
//! running supervisor: `corral check`, `install`/`rollback`, signing,
//! `corral new` templates, `corral profile`, `corral replay`.
//!
//! Layer: may import everything below it (the daemon, `supervise` for
//! discovery, `process` for the integrity check, `client`, `config`);
//! nothing but the CLI and the test kit imports it.

pub mod check;
pub mod install;
mod private;
pub mod profile;
pub mod replay;
pub mod scaffold;
pub mod signing;
