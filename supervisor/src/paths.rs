//! Where the host socket lives by default.

use std::path::PathBuf;

/// The default socket path: `/run/corral/corral.sock` for root,
/// `$XDG_RUNTIME_DIR/corral/corral.sock` for anyone else. `None` when
/// neither applies (not root and `XDG_RUNTIME_DIR` unset).
pub fn default_socket_path() -> Option<PathBuf> {
    if is_root() {
        return Some(PathBuf::from("/run/corral/corral.sock"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join("corral/corral.sock"))
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(target_os = "linux"))]
fn is_root() -> bool {
    false
}
