//! `corral serve`: discover plugins, bind the host socket, supervise every
//! plugin, serve host apps until SIGINT or SIGTERM, then stop every worker.

use crate::config::ServeConfig;
use crate::config::overrides::Overrides;
use crate::host::server::{Access, Server};
use crate::observe::crashes::CrashReports;
use crate::observe::events::Events;
use crate::process::spawn::{Spawner, WorkerBinaries};
use crate::process::watchdog::Watchdog;
use crate::services::Services;
use crate::supervise::discovery::discover;
use crate::supervise::fleet::Fleet;
use crate::supervise::handle::Supervision;
use crate::supervise::limits::Defaults;
use crate::supervise::registry::Registry;
use crate::supervise::watcher;
use corral_plugin_api::manifest::StartMode;
use corral_plugin_api::wire::{EventKind, PluginKind, PluginState};
use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

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
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
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
    serve_until(config, std::future::pending()).await
}

/// Runs a supervisor until SIGINT or SIGTERM, or until `until` resolves
/// (a private supervisor, such as `corral profile` runs).
pub(crate) async fn serve_until(
    mut config: ServeConfig,
    until: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let setup = |what| move |source| ServeError::Setup { what, source };
    ensure_std_fds()?;
    raise_fd_limit();
    // Opened here and executed through /proc/self/fd: a worker's own uid
    // needs no path to the binary.
    let worker_exe =
        std::fs::File::open(&config.worker_exe).map_err(|source| ServeError::Worker {
            path: config.worker_exe.clone(),
            source,
        })?;
    let binaries = WorkerBinaries {
        full: worker_exe.into(),
        native: native_worker(&config.worker_exe),
    };
    if let Some(state) = &config.state_dir {
        // Traversable: each wasm worker's own uid reaches its cache in it;
        // what else it holds (storage, logs) is in 0700 folders.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(state)
            .map_err(setup("cannot create the state folder"))?;
    }
    if config.cgroup.as_deref() == Some(Path::new(crate::config::CGROUP_AUTO)) {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        config.cgroup = match crate::process::cgroup::delegated(Path::new("/sys/fs/cgroup"), &own) {
            Ok(subtree) => {
                info!("plugins' cgroups go under {}", subtree.display());
                Some(subtree)
            }
            Err(error) => {
                warn!("cgroup = \"auto\": {error}; rlimits and the watchdog cover the limits");
                None
            }
        };
    }
    let overrides = Arc::new(Overrides::new(config.plugin_config.clone()));
    let found = discover(&config.plugin_dirs, &overrides)
        .map_err(|e| ServeError::Discovery(e.to_string()))?;
    for broken in &found.broken {
        warn!(plugin = %broken.name, "not started: {}", broken.error);
    }
    let mut interrupt = signal(SignalKind::interrupt()).map_err(setup("cannot handle SIGINT"))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(setup("cannot handle SIGTERM"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(setup("cannot handle SIGHUP"))?;
    let listener = listen(&config.socket, config.socket_mode, config.socket_group)?;

    let events = Arc::new(events(&config));
    let crashes = Arc::new(CrashReports::new(
        config.state_dir.as_deref(),
        config.crash_reports_keep,
        config.crash_reports_max_age,
    ));
    let registry = Arc::new(Registry::default());
    let services = Arc::new(Services::new(
        registry.clone(),
        config.state_dir.as_deref(),
        config.storage_sync,
    ));
    if let Some(kv) = services.kv() {
        for migrated in kv.migrate() {
            let detail = migrated.describe(kv.root());
            events.record(&migrated.plugin, 0, EventKind::Admin, detail);
        }
    }
    let supervision = Arc::new(Supervision {
        spawner: Spawner::start(binaries).map_err(setup("cannot start the spawner thread"))?,
        max_frame: config.max_frame,
        start_timeout: config.start_timeout,
        stop_grace: config.stop_grace,
        watchdog: Watchdog::start().map_err(setup("cannot start the watchdog thread"))?,
        strict: config.strict,
        defaults: Defaults::new(config.call_timeout, &config.default_limits),
        slots: config
            .max_plugins
            .filter(|&max| max > 0)
            .map(|max| Arc::new(Semaphore::new(max))),
        state_dir: config.state_dir.clone(),
        events: events.clone(),
        services: services.clone(),
        overrides: overrides.clone(),
        debug: config.debug.clone(),
        profile: config.profile.clone(),
        recording: config.recording,
        crashes: crashes.clone(),
    });
    // The zygotes start while the rest is set up.
    for kind in [PluginKind::Native, PluginKind::Wasm, PluginKind::Js] {
        if found
            .plugins
            .iter()
            .any(|plugin| plugin.manifest.kind == kind)
        {
            supervision.spawner.warm(kind);
        }
    }
    let (stop, stopped) = watch::channel(false);
    let fleet = Fleet::new(supervision, registry, config.clone(), stopped);
    for broken in found.broken {
        fleet.registry.set_broken(broken);
    }
    let count = found.plugins.len();
    fleet.start(found.plugins);
    for name in overrides.names() {
        if fleet.registry.get(&name).is_none()
            && !fleet.registry.broken().iter().any(|b| b.name == name)
        {
            warn!("corral.toml [plugins.{name}]: no plugin named `{name}`");
        }
    }
    let _watcher = match watcher::watch(
        fleet.clone(),
        &config.plugin_dirs,
        config.config_file.clone(),
    ) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!("hot reload is off: cannot watch the plugin folders: {error}");
            None
        }
    };
    let server = Arc::new(Server {
        registry: fleet.registry.clone(),
        services,
        max_frame: config.max_frame,
        events,
        access: Access {
            own_uid: nix::unistd::geteuid().as_raw(),
            allowed: config.allowed_uids.clone(),
            admins: config.admin_uids.clone(),
        },
        faults: config.faults,
        crashes,
    });
    let serving = tokio::spawn(server.run(listener));
    let notifier = crate::observe::sd_notify::Notifier::from_env().map(Arc::new);
    let _readiness = notifier.clone().map(|notifier| {
        let registry = fleet.registry.clone();
        let patience = config.start_timeout.saturating_mul(2);
        AbortOnDrop(tokio::spawn(announce_ready(registry, notifier, patience)))
    });
    let _metrics = match config.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Metrics { addr, source })?;
            let registry = fleet.registry.clone();
            info!("Prometheus metrics at http://{addr}/metrics");
            Some(AbortOnDrop(tokio::spawn(
                crate::observe::metrics_http::serve(
                    listener,
                    Arc::new(move || crate::observe::prometheus::render(&registry.list())),
                ),
            )))
        }
        None => None,
    };
    info!(
        socket = %config.socket.display(),
        plugins = count,
        "corral {} serving",
        env!("CARGO_PKG_VERSION")
    );

    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => break info!("stopping"),
            _ = interrupt.recv() => break info!("SIGINT: stopping"),
            _ = terminate.recv() => break info!("SIGTERM: stopping"),
            _ = hangup.recv() => match &config.config_file {
                Some(file) => {
                    info!("SIGHUP: reading {} again", file.display());
                    let (fleet, file) = (fleet.clone(), file.clone());
                    let _ = tokio::task::spawn_blocking(move || fleet.reconfigure(&file)).await;
                }
                None => info!("SIGHUP: no --config file to read again"),
            },
        }
    }
    if let Some(notifier) = &notifier {
        notifier.send("STOPPING=1");
    }
    // Stop taking requests (this drops the listener and removes the socket
    // file), then stop every worker.
    serving.abort();
    let _ = serving.await;
    stop.send_replace(true);
    fleet.join().await;
    info!("all workers stopped");
    Ok(())
}

/// Tells systemd `READY=1` once every plugin that starts with corral has
/// settled (is ready, or has failed its start; lazy plugins wait for a
/// call and count as settled), or after `patience` whatever they do, with
/// a `STATUS=` line of how many are ready.
async fn announce_ready(
    registry: Arc<Registry>,
    notifier: Arc<crate::observe::sd_notify::Notifier>,
    patience: Duration,
) {
    let started = tokio::time::Instant::now();
    loop {
        let handles = registry.handles();
        let settling = handles.iter().any(|handle| {
            let eager = handle.spec().plugin.manifest.start == StartMode::Eager;
            let state = handle.status().state;
            eager && matches!(state, PluginState::Installed | PluginState::Starting)
        });
        if !settling || started.elapsed() >= patience {
            let list = registry.list();
            let ready = list
                .iter()
                .filter(|p| p.state == PluginState::Ready)
                .count();
            notifier.send(&format!(
                "READY=1\nSTATUS=serving {} plugins, {ready} ready",
                list.len()
            ));
            info!("ready: {ready} of {} plugins ready", list.len());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds the host socket with `mode` (0600 by default) and group `group`,
/// creating its folder (0700, or 0750 with a group) when missing, and
/// taking over a stale socket file nobody listens on.
fn listen(path: &Path, mode: u32, group: Option<u32>) -> Result<Listener, ServeError> {
    let error = |source| ServeError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if group.is_some() { 0o750 } else { 0o700 })
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
    let listener = ListenerOptions::new()
        .name(name)
        .mode(mode)
        .create_tokio()
        .map_err(error)?;
    // The umask may have narrowed the mode asked for at bind.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(error)?;
    }
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(error)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::os::unix::fs::chown(parent, None, Some(gid)).map_err(error)?;
        }
    }
    Ok(listener)
}

/// `corral-worker-native`, next to `corral-worker`, opened; `None` (and
/// native plugins run in `corral-worker`) when it is not there.
fn native_worker(worker: &Path) -> Option<std::os::fd::OwnedFd> {
    let path = worker.with_file_name(NATIVE_WORKER);
    match std::fs::File::open(&path) {
        Ok(file) => Some(file.into()),
        Err(error) => {
            warn!(
                "{}: {error}; native plugins run in {} (with the wasm runtime mapped)",
                path.display(),
                worker.display()
            );
            None
        }
    }
}

/// The native-only worker binary's name.
const NATIVE_WORKER: &str = "corral-worker-native";

/// Raises the limit on open files as far as it goes: to the hard limit,
/// and as root the hard limit to the kernel's `fs.nr_open`. Each worker
/// takes four of the supervisor's fds (channel, pidfd, seccomp listener,
/// output pipe), and the usual soft limit of 1024 would cap a supervisor
/// at a few hundred workers. Workers get their own `open_files` limit
/// anyway.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => return warn!("cannot read the open files limit: {error}"),
    };
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|_| nix::unistd::geteuid().is_root())
        .map_or(hard, |nr_open| nr_open.max(hard));
    if soft >= ceiling {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling)
        .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, hard, hard))
    {
        Ok(()) => debug!("open files limit raised from {soft}"),
        Err(error) => warn!("cannot raise the open files limit from {soft}: {error}"),
    }
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

/// The event log, kept in the state folder's journal when there is one
/// (events of earlier runs included); in memory only otherwise, or when
/// the journal cannot be opened (said in the log).
fn events(config: &ServeConfig) -> Events {
    let Some(state) = &config.state_dir else {
        return Events::default();
    };
    let retention = crate::observe::journal::Retention {
        keep: config.events_keep,
        max_age: config.events_max_age,
    };
    match std::fs::create_dir_all(state)
        .map_err(|error| error.to_string())
        .and_then(|()| {
            crate::observe::journal::Journal::open(state, retention)
                .map_err(|error| error.to_string())
        }) {
        Ok((journal, stored)) => Events::journaled(journal, stored),
        Err(error) => {
            warn!(
                "no event journal in {}: {error}; events are kept in memory only",
                state.display()
            );
            Events::default()
        }
    }
}
