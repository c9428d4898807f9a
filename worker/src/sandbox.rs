//! The part of the sandbox the worker applies to itself, after the
//! handshake and before the plugin is loaded (a library's constructors run
//! at `dlopen`, so they must already be confined):
//!
//! 1. Landlock: the file system shrinks to the plugin's module, the system
//!    library folders (read-only, for the module's own dependencies) and the
//!    `[permissions]` read/write paths. Everything else is `EACCES`.
//! 2. seccomp: the syscall policy in three tiers (allow, refuse, kill),
//!    see [`crate::seccomp`].
//!
//! `PR_SET_NO_NEW_PRIVS` is already set by the supervisor before exec.
#![allow(unsafe_code, reason = "borrows the module's fd for Landlock")]

use crate::seccomp::{self, SeccompError};
use corral_plugin_api::wire::{Hello, Layer};
use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
};
use std::os::fd::BorrowedFd;

/// Read-only paths every native plugin gets: where its own shared-library
/// dependencies live.
const SYSTEM_LIBRARIES: [&str; 5] = [
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/etc/ld.so.cache",
];

/// Confining the worker failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

/// Applies Landlock then seccomp; returns what is in force.
pub(crate) fn confine(hello: &Hello) -> Result<Vec<Layer>, SandboxError> {
    let landlock = restrict_files(hello)?;
    let seccomp = seccomp::install(hello)?;
    Ok(vec![landlock, seccomp])
}

fn restrict_files(hello: &Hello) -> Result<Layer, SandboxError> {
    let abi = ABI::V5;
    let read_only = AccessFs::from_read(abi);
    let read = SYSTEM_LIBRARIES
        .iter()
        .map(|path| (*path).to_owned())
        .chain(std::iter::once(hello.entry.clone()))
        .chain(hello.read.iter().cloned());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(read, read_only))?
        .add_rules(path_beneath_rules(&hello.write, AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(
            &hello.cache_dir,
            AccessFs::from_all(abi),
        ))?;
    if let Some(fd) = hello.entry_fd {
        // SAFETY: the supervisor passes the module open on this fd, which
        // stays open for the worker's life.
        let module = unsafe { BorrowedFd::borrow_raw(fd) };
        ruleset = ruleset.add_rule(PathBeneath::new(
            module,
            read_only & AccessFs::from_file(abi),
        ))?;
    }
    let status = ruleset.restrict_self()?;
    let (active, detail) = match status.ruleset {
        RulesetStatus::FullyEnforced => (true, "fully enforced".to_owned()),
        RulesetStatus::PartiallyEnforced => {
            (true, "partially enforced (older kernel ABI)".to_owned())
        }
        RulesetStatus::NotEnforced => (false, "not supported by this kernel".to_owned()),
    };
    let detail = format!(
        "{detail}: read {} path(s), write {} path(s)",
        1 + hello.read.len(),
        hello.write.len()
    );
    Ok(Layer {
        name: "landlock".into(),
        active,
        detail,
    })
}
