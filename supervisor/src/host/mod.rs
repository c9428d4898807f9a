//! The host API: the local socket host apps and admins talk to, its
//! connections, their peer checks, the two encodings of its frames
//! (bincode and JSON), and the direct channels it hands out.
//!
//! Layer: may import `supervise` (to route calls and admin actions),
//! `services`, `process`, `observe`, `config` and `transport`.

pub(crate) mod direct;
pub(crate) mod encoding;
pub(crate) mod server;
pub(crate) mod stream;
