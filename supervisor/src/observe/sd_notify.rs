//! systemd's readiness protocol (`sd_notify(3)`): with `Type=notify`,
//! systemd passes a datagram socket in `NOTIFY_SOCKET` and waits for
//! `READY=1` before it counts the service as started. corral sends it once
//! every plugin that starts with it has settled, and `STATUS=` lines for
//! `systemctl status`. Without `NOTIFY_SOCKET` nothing is sent.

use std::io;
use std::os::unix::net::UnixDatagram;
use tracing::{debug, warn};

/// Where notifications go, if corral was started by systemd with
/// `Type=notify`.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    address: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names; `None` without one (or when it
    /// cannot be used, with a warning).
    pub(crate) fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::connect(&path) {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                warn!("NOTIFY_SOCKET={}: {error}", path.to_string_lossy());
                None
            }
        }
    }

    fn connect(path: &std::ffi::OsStr) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)?
            }
            #[cfg(not(target_os = "linux"))]
            Some(_) => return Err(io::ErrorKind::Unsupported.into()),
            None => std::os::unix::net::SocketAddr::from_pathname(path)?,
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends `state` (`READY=1`, `STATUS=…`, newline-separated).
    pub(crate) fn send(&self, state: &str) {
        debug!("sd_notify: {state:?}");
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            warn!("sd_notify {state:?}: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        Notifier::connect(path.as_os_str()).unwrap().send("READY=1");
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("corral-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_receiver = UnixDatagram::bind_addr(&address).unwrap();
        Notifier::connect(format!("@{name}").as_ref())
            .unwrap()
            .send("STATUS=x");
        let n = abstract_receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=x");
    }
}
