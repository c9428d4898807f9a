//! Errors: [`RemoteError`], which crosses a process boundary as plain data
//! with a kind to match on, and [`PluginError`], which a plugin returns.

use crate::abi;
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
    /// The caller may not do this: a client's uid (corral.toml
    /// `allowed_uids`, `admin_uids`), or a plugin's host service its
    /// manifest does not grant (`[permissions] host`).
    PermissionDenied,
    /// What was asked for does not exist (a storage key).
    NotFound,
    /// A limit of the plugin's was hit (its storage quota).
    LimitExceeded,
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
            Self::NotFound => "not_found",
            Self::LimitExceeded => "limit_exceeded",
        }
    }

    /// Every kind, in [`code`](Self::code) order.
    pub const ALL: [Self; 11] = [
        Self::Plugin,
        Self::UnknownMethod,
        Self::UnknownPlugin,
        Self::Crashed,
        Self::Timeout,
        Self::Unavailable,
        Self::Protocol,
        Self::BadRequest,
        Self::PermissionDenied,
        Self::NotFound,
        Self::LimitExceeded,
    ];

    /// The kind's number in the native ABI (a host service's non-zero
    /// result, `CORRAL_ERR_*` in the C header): 1 for `plugin` up to 11
    /// for `limit_exceeded`.
    pub fn code(self) -> i32 {
        let index = Self::ALL.iter().position(|kind| *kind == self);
        index.map_or(1, |index| i32::try_from(index).unwrap_or(0) + 1)
    }

    /// The kind for an ABI number; unknown numbers read as `plugin`.
    pub fn from_code(code: i32) -> Self {
        usize::try_from(code - 1)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
            .unwrap_or(Self::Plugin)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), kind);
        }
        assert_eq!(ErrorKind::Plugin.code(), 1);
        assert_eq!(ErrorKind::LimitExceeded.code(), 11);
        assert_eq!(ErrorKind::from_code(0), ErrorKind::Plugin);
        assert_eq!(ErrorKind::from_code(99), ErrorKind::Plugin);
    }

    /// The C header's `CORRAL_ERR_*` numbers are these codes.
    #[test]
    fn the_c_header_agrees() {
        let header = include_str!("../include/corral_plugin.h");
        for kind in ErrorKind::ALL {
            let line = format!(
                "#define CORRAL_ERR_{} {}",
                kind.as_str().to_uppercase(),
                kind.code()
            );
            assert!(
                header.lines().any(|l| l.starts_with(&line)),
                "corral_plugin.h lacks `{line}`"
            );
        }
    }
}

/// An error a plugin returns from a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    unknown_method: bool,
    message: String,
}

impl PluginError {
    /// A plugin failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            unknown_method: false,
            message: message.into(),
        }
    }

    /// The plugin has no method called `method`.
    pub fn unknown_method(method: &str) -> Self {
        Self {
            unknown_method: true,
            message: format!("unknown method `{method}`"),
        }
    }

    /// Whether this error says the method is unknown.
    pub fn is_unknown_method(&self) -> bool {
        self.unknown_method
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn abi_code(&self) -> i32 {
        if self.unknown_method {
            abi::CALL_ERR_UNKNOWN_METHOD
        } else {
            abi::CALL_ERR_PLUGIN
        }
    }

    pub(crate) fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A failed host service becomes the call's error, so `?` works on it.
impl From<RemoteError> for PluginError {
    fn from(error: RemoteError) -> Self {
        Self::new(format!("{}: {}", error.kind, error.message))
    }
}
