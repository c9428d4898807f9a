//! What both channels are made of: async frame I/O over Unix streams
//! (with the fds of shared payloads beside the frames), and payloads that
//! are bytes or a sealed memfd.
//!
//! Layer: the bottom; imports no other layer.

pub(crate) mod framed;
pub(crate) mod payload;
