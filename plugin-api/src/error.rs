//! Errors that cross a process boundary: plain data with a kind to match on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong with a remote call, for callers to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The plugin returned an error (or panicked; the message says so).
    Plugin,
    /// The plugin does not know the method.
    UnknownMethod,
    /// No plugin of that name is installed.
    UnknownPlugin,
    /// The worker process died while the call was in flight.
    Crashed,
    /// The call did not complete before its deadline.
    Timeout,
    /// The plugin is not running now (starting failed, restarting, stopped).
    Unavailable,
    /// A peer sent a frame that breaks the protocol.
    Protocol,
    /// The request is malformed (bad argument, too large, ...).
    BadRequest,
    /// The client's uid may not do this (corral.toml `allowed_uids`,
    /// `admin_uids`).
    PermissionDenied,
}

impl ErrorKind {
    /// The kind's name as it appears in JSON and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plugin => "plugin",
            Self::UnknownMethod => "unknown_method",
            Self::UnknownPlugin => "unknown_plugin",
            Self::Crashed => "crashed",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Protocol => "protocol",
            Self::BadRequest => "bad_request",
            Self::PermissionDenied => "permission_denied",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reported by another process: a kind and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// What went wrong, for matching.
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

impl RemoteError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
