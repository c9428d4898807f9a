//! Admin tools that work on plugin folders and archives, with or without a
//! running supervisor: `corral check`, `install`/`rollback`, signing,
//! `corral new` templates, `corral profile`.
//!
//! Layer: may import everything below it (the daemon, `supervise` for
//! discovery, `process` for the integrity check, `client`, `config`);
//! nothing but the CLI and the test kit imports it.

pub mod check;
pub mod install;
pub mod profile;
pub mod scaffold;
pub mod signing;
