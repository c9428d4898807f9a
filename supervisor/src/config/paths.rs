//! Where the host socket and the state folder live by default.

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

/// The default state folder (compiled wasm modules, later plugin data):
/// `/var/lib/corral` for root, `$XDG_STATE_HOME/corral` or
/// `~/.local/state/corral` for anyone else.
pub fn default_state_dir() -> Option<PathBuf> {
    if is_root() {
        return Some(PathBuf::from("/var/lib/corral"));
    }
    let nonempty = |name| std::env::var_os(name).filter(|dir| !dir.is_empty());
    nonempty("XDG_STATE_HOME")
        .map(|dir| PathBuf::from(dir).join("corral"))
        .or_else(|| nonempty("HOME").map(|home| PathBuf::from(home).join(".local/state/corral")))
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(target_os = "linux"))]
fn is_root() -> bool {
    false
}
