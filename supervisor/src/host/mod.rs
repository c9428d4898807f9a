//! The host API: the local socket host apps and admins talk to, its
//! connections, their peer checks, and the two encodings of its frames
//! (bincode and JSON).
//!
//! Layer: may import `supervise` (to route calls and admin actions),
//! `services`, `process`, `observe`, `config` and `transport`.

pub(crate) mod encoding;
pub(crate) mod server;
