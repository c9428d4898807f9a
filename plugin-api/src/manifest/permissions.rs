//! `[permissions]`: what a plugin may touch beyond its own module:
//! [`Permissions`] (paths, network), the host services it may use
//! ([`HostGrant`]) and the syscalls it may make beyond the baseline
//! ([`Syscall`]).

use super::names::{NameError, check_name};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// `[permissions]`: what the plugin may touch beyond its own module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Paths the plugin may read (relative to its folder, or absolute).
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Paths the plugin may read and write.
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// Whether the plugin may use the network (sockets, no network
    /// namespace).
    #[serde(default)]
    pub network: bool,
    /// The host services the plugin may use.
    #[serde(default)]
    pub host: Vec<HostGrant>,
    /// Syscalls the baseline refuses that this plugin may make
    /// ([`crate::seccomp`]).
    #[serde(default)]
    pub syscalls: Vec<Syscall>,
}

impl Permissions {
    /// `syscalls` by name.
    pub fn syscall_names(&self) -> Vec<String> {
        self.syscalls.iter().map(ToString::to_string).collect()
    }
}

/// A syscall a plugin may make beyond the baseline: an entry of
/// `[permissions] syscalls`, checked by [`crate::seccomp::check_addition`]
/// (a real syscall, and not one that kills).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Syscall(String);

impl Syscall {
    /// The syscall's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Syscall {
    type Error = PermissionError;

    fn try_from(name: String) -> Result<Self, PermissionError> {
        crate::seccomp::check_addition(&name)?;
        Ok(Self(name))
    }
}

/// A `[permissions]` entry that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// `host` names no service corral has.
    #[error(
        "[permissions] host: unknown host service {0:?}: expected \"log\", \"now\", \"kv\", \"publish\" or \"call:PLUGIN\""
    )]
    UnknownService(String),
    /// `call:` with something that is not a plugin name.
    #[error("[permissions] host: {grant:?}: `call:` takes a plugin name: {problem}")]
    CallTarget {
        /// The whole entry.
        grant: String,
        /// What is wrong with the name.
        problem: NameError,
    },
    /// A syscall that cannot be added.
    #[error("[permissions] syscalls: {0}")]
    Syscall(#[from] crate::seccomp::AdditionError),
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host service a plugin may use: an entry of `[permissions] host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum HostGrant {
    /// `log`: always allowed (stdout and stderr are captured anyway);
    /// accepted for clarity.
    Log,
    /// `now`: always allowed; accepted for clarity.
    Now,
    /// `kv`: the plugin's own key-value storage.
    Kv,
    /// `publish`: publishing on any topic.
    Publish,
    /// `call:PLUGIN`: calls into `PLUGIN`, which must be a dependency.
    Call(String),
}

impl TryFrom<String> for HostGrant {
    type Error = PermissionError;

    fn try_from(text: String) -> Result<Self, PermissionError> {
        Ok(match text.as_str() {
            "log" => Self::Log,
            "now" => Self::Now,
            "kv" => Self::Kv,
            "publish" => Self::Publish,
            other => match other.strip_prefix("call:") {
                Some(plugin) => {
                    check_name(plugin).map_err(|problem| PermissionError::CallTarget {
                        grant: other.to_owned(),
                        problem,
                    })?;
                    Self::Call(plugin.to_owned())
                }
                None => {
                    return Err(PermissionError::UnknownService(other.to_owned()));
                }
            },
        })
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log => f.write_str("log"),
            Self::Now => f.write_str("now"),
            Self::Kv => f.write_str("kv"),
            Self::Publish => f.write_str("publish"),
            Self::Call(plugin) => write!(f, "call:{plugin}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::manifest::tests::{GOOD, error, parse};
    use std::path::Path;

    #[test]
    fn syscall_additions_are_checked_with_their_line() {
        let text = format!("{GOOD}\n[permissions]\nsyscalls = [\"inotify_init1\", \"socket\"]\n");
        let manifest = parse(&text).unwrap();
        let names: Vec<&str> = manifest
            .permissions
            .syscalls
            .iter()
            .map(Syscall::as_str)
            .collect();
        assert_eq!(names, ["inotify_init1", "socket"]);

        let message = error(&format!("{GOOD}\n[permissions]\nsyscalls = [\"sysinf\"]\n"));
        assert!(message.contains(":10:"), "{message}");
        assert!(
            message.contains("[permissions] syscalls: \"sysinf\" is not a Linux syscall"),
            "{message}"
        );
        assert!(message.contains("did you mean \"sysinfo\""), "{message}");

        let message = error(&format!(
            "{GOOD}\n[permissions]\nsyscalls = [\"socket\", \"ptrace\"]\n"
        ));
        assert!(message.contains(":10:"), "{message}");
        assert!(
            message
                .contains("\"ptrace\" can never be allowed: it kills the worker: other processes"),
            "{message}"
        );
    }

    #[test]
    fn host_services() {
        let text = format!(
            "{GOOD}\n[dependencies]\nstorage = \"^1\"\n\n[permissions]\nhost = [\"kv\", \"publish\", \"call:storage\", \"log\"]\n\n[events]\nsubscribe = [\"orders.*\", \"ticks\"]\n"
        );
        let manifest = Manifest::parse(&text, Path::new("p/plugin.toml")).unwrap();
        assert_eq!(
            manifest.permissions.host,
            [
                HostGrant::Kv,
                HostGrant::Publish,
                HostGrant::Call("storage".into()),
                HostGrant::Log
            ]
        );

        let message = error(&format!(
            "{GOOD}\n[permissions]\nhost = [\"call:storage\"]\n"
        ));
        assert!(
            message.contains(
                ":10:9: [permissions] host: \"call:storage\": `storage` is not in [dependencies]"
            ),
            "{message}"
        );
        let message = error(&format!("{GOOD}\n[permissions]\nhost = [\"files\"]\n"));
        assert!(
            message.contains("unknown host service \"files\"") && message.contains(":10:"),
            "{message}"
        );
    }

    #[test]
    fn paths_and_network() {
        let text = format!(
            "{GOOD}\n[permissions]\nread = [\"data\"]\nnetwork = true\n\n[limits]\nmemory_mb = 64\ncall_timeout_ms = 250\n"
        );
        let manifest = parse(&text).unwrap();
        assert_eq!(manifest.permissions.read, [PathBuf::from("data")]);
        assert!(manifest.permissions.network);
        assert_eq!(parse(GOOD).unwrap().permissions, Permissions::default());

        let message = error(&format!("{GOOD}\n[permissions]\nnetwork = \"yes\"\n"));
        assert!(
            message.contains("[permissions] network: invalid type"),
            "{message}"
        );
    }
}
