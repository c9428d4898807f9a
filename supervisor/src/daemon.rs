//! `corral serve`: discover plugins, bind the host socket, supervise every
//! plugin, serve host apps until SIGINT or SIGTERM, then stop every worker.

use crate::config::ServeConfig;
use crate::limits::Defaults;
use crate::plugin::{PluginHandle, Supervision, supervise};
use crate::registry::{Registry, discover};
use crate::server::Server;
use crate::spawn::Spawner;
use crate::watchdog::Watchdog;
use corral_plugin_api::wire::PluginKind;
use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// The supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A plugin folder could not be read.
    #[error("{0}")]
    Discovery(String),
    /// The `corral-worker` binary is missing.
    #[error("worker binary {}: {source}", path.display())]
    Worker {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it cannot be used.
        source: io::Error,
    },
    /// Another supervisor already serves on the socket.
    #[error("another corral is already serving on {}", .0.display())]
    SocketInUse(PathBuf),
    /// The socket could not be created.
    #[error("cannot listen on {}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Setting up the process failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: io::Error,
    },
}

/// Runs a supervisor until SIGINT or SIGTERM. Call it inside a tokio
/// runtime with IO, time and signals enabled.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let setup = |what| move |source| ServeError::Setup { what, source };
    ensure_std_fds()?;
    // Opened here and executed through /proc/self/fd: a worker's own uid
    // needs no path to the binary.
    let worker_exe =
        std::fs::File::open(&config.worker_exe).map_err(|source| ServeError::Worker {
            path: config.worker_exe.clone(),
            source,
        })?;
    let found = discover(&config.plugin_dirs).map_err(|e| ServeError::Discovery(e.to_string()))?;
    for broken in &found.broken {
        warn!(plugin = %broken.name, "not started: {}", broken.error);
    }
    let mut interrupt = signal(SignalKind::interrupt()).map_err(setup("cannot handle SIGINT"))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(setup("cannot handle SIGTERM"))?;
    let listener = listen(&config.socket)?;

    let supervision = Arc::new(Supervision {
        spawner: Spawner::start().map_err(setup("cannot start the spawner thread"))?,
        worker_exe: Arc::new(worker_exe.into()),
        max_frame: config.max_frame,
        start_timeout: config.start_timeout,
        stop_grace: config.stop_grace,
        watchdog: Watchdog::start().map_err(setup("cannot start the watchdog thread"))?,
        strict: config.strict,
    });
    let defaults = Defaults::new(config.call_timeout);
    let root = nix::unistd::geteuid().is_root();
    if !root {
        warn!("not running as root: workers keep this uid (no per-plugin uid, no RLIMIT_NPROC)");
    }
    let handles: Vec<_> = (0u32..)
        .zip(found.plugins)
        .map(|(index, plugin)| {
            let uid = root.then(|| config.worker_uid_base.saturating_add(index));
            let cache = match (&config.state_dir, plugin.manifest.kind) {
                (Some(state), PluginKind::Wasm) => {
                    let dir = state.join("wasm-cache").join(&plugin.manifest.name);
                    match private_dir(&dir, uid) {
                        Ok(()) => Some(dir),
                        Err(error) => {
                            warn!(plugin = %plugin.manifest.name, "no compiled-module cache: {}: {error}", dir.display());
                            None
                        }
                    }
                }
                _ => None,
            };
            PluginHandle::new(plugin, &defaults, uid, config.cgroup.as_deref(), cache)
        })
        .collect();
    let registry = Arc::new(Registry::new(handles, found.broken));
    let (stop, stopped) = watch::channel(false);
    let mut supervisors = JoinSet::new();
    for plugin in registry.handles() {
        supervisors.spawn(supervise(
            plugin.clone(),
            supervision.clone(),
            stopped.clone(),
        ));
    }
    let server = Arc::new(Server {
        registry: registry.clone(),
        max_frame: config.max_frame,
    });
    let serving = tokio::spawn(server.run(listener));
    info!(
        socket = %config.socket.display(),
        plugins = supervisors.len(),
        "corral {} serving",
        env!("CARGO_PKG_VERSION")
    );

    tokio::select! {
        _ = interrupt.recv() => info!("SIGINT: stopping"),
        _ = terminate.recv() => info!("SIGTERM: stopping"),
    }
    // Stop taking requests (this drops the listener and removes the socket
    // file), then stop every worker.
    serving.abort();
    let _ = serving.await;
    for plugin in registry.handles() {
        plugin.begin_stop();
    }
    stop.send_replace(true);
    while supervisors.join_next().await.is_some() {}
    info!("all workers stopped");
    Ok(())
}

/// Binds the host socket with mode 0600, creating its folder (0700) when
/// missing, and taking over a stale socket file nobody listens on.
fn listen(path: &Path) -> Result<Listener, ServeError> {
    let error = |source| ServeError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(error)?;
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ServeError::SocketInUse(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                info!(socket = %path.display(), "removing stale socket");
                std::fs::remove_file(path).map_err(error)?;
            }
            Err(e) => return Err(error(e)),
        }
    }
    let name = path.to_fs_name::<GenericFilePath>().map_err(error)?;
    ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .create_tokio()
        .map_err(error)
}

/// Creates `dir` (mode 0700) for the worker uid `owner` (or for us); the
/// folders above it are made traversable (0755) so that uid can reach it.
fn private_dir(dir: &Path, owner: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    }
    Ok(())
}

/// Opens /dev/null on any of fds 0-2 that is closed, so that no socket of
/// ours lands there and gets clobbered when a worker's stdio is set up.
fn ensure_std_fds() -> Result<(), ServeError> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    loop {
        // open(2) returns the lowest free fd.
        let null = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|source| ServeError::Setup {
                what: "cannot open /dev/null",
                source,
            })?;
        if null.as_raw_fd() > 2 {
            return Ok(());
        }
        let _stdio_for_good = null.into_raw_fd();
    }
}
