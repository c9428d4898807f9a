//! How a supervisor is set up: what `corral serve` turns its flags into.

use corral_plugin_api::manifest::Limits;
use corral_plugin_api::wire::DEFAULT_MAX_FRAME;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The `cgroup` setting that means "the subtree delegated to me".
pub(crate) const CGROUP_AUTO: &str = "auto";

/// How plugin storage is flushed to disk (`storage_sync` in corral.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageSync {
    /// An acknowledged write survives any process being killed; a power
    /// loss may lose the last ones (SQLite `synchronous = NORMAL`).
    #[default]
    Normal,
    /// An acknowledged write survives a power loss too: an fsync per
    /// transaction (`synchronous = FULL`).
    Full,
}

/// Settings for [`serve`](crate::serve).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Folders whose `*/plugin.toml` are plugins.
    pub plugin_dirs: Vec<PathBuf>,
    /// The host socket.
    pub socket: PathBuf,
    /// The `corral-worker` binary.
    pub worker_exe: PathBuf,
    /// Largest frame body on either channel.
    pub max_frame: u32,
    /// A plugin's call deadline unless its manifest sets one; a worker
    /// that misses it is killed and restarted.
    pub call_timeout: Duration,
    /// Time a worker has to get from spawn to `Ready`.
    pub start_timeout: Duration,
    /// Time a worker has to exit after `Shutdown` before it is killed.
    pub stop_grace: Duration,
    /// When running as root, plugin number `i` (in name order) runs its
    /// worker as uid and gid `worker_uid_base + i`.
    pub worker_uid_base: u32,
    /// Refuse a worker when any sandbox layer is missing, instead of
    /// warning.
    pub strict: bool,
    /// A delegated cgroup v2 folder to put each plugin's cgroup in.
    pub cgroup: Option<PathBuf>,
    /// Where corral keeps state (compiled wasm modules); `None` keeps
    /// nothing.
    pub state_dir: Option<PathBuf>,
    /// Most plugin workers running at once; `None` = no cap
    /// (`corral.toml` `max_plugins`).
    pub max_plugins: Option<usize>,
    /// Mode of the socket file (`socket_mode`); default 0600.
    pub socket_mode: u32,
    /// Group owner (gid) of the socket file (`socket_group`); `None`
    /// leaves the supervisor's own group.
    pub socket_group: Option<u32>,
    /// Peer uids that may connect besides root and the supervisor's own
    /// uid (`allowed_uids`); empty = only those two. `admin_uids` may
    /// connect too.
    pub allowed_uids: Vec<u32>,
    /// Peer uids that may run admin commands (stop, kill, disable,
    /// reload...) besides root and the supervisor's own uid
    /// (`admin_uids`).
    pub admin_uids: Vec<u32>,
    /// Defaults for the `[limits]` a plugin leaves unset (`corral.toml`
    /// `[limits]`); `None` ones keep corral's built-in defaults. The call
    /// deadline is [`call_timeout`](Self::call_timeout), never
    /// `call_timeout_ms` here.
    pub default_limits: Limits,
    /// Size at which a plugin's log file rotates (`log_max_mb`); 10 MiB.
    pub log_max_bytes: u64,
    /// Rotated log files kept per plugin (`log_keep`); 5.
    pub log_keep: u32,
    /// What a worker's flight recorder keeps for its crash report
    /// (`record_calls`, `record_bytes`); 8 calls, 64 KiB.
    pub recording: corral_plugin_api::wire::Recording,
    /// How plugin storage is flushed (`storage_sync`); `normal`.
    pub storage_sync: StorageSync,
    /// Events the journal keeps (`events_keep`); 100000.
    pub events_keep: u64,
    /// How long the journal keeps an event (`events_days`); 30 days.
    pub events_max_age: Duration,
    /// Crash reports kept (`crash_reports_keep`); 100.
    pub crash_reports_keep: u32,
    /// How long a crash report is kept (`crash_reports_days`); 30 days.
    pub crash_reports_max_age: Duration,
    /// Where to serve Prometheus metrics (`--metrics-addr`,
    /// `metrics_addr`); `None` = off.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The `corral.toml` these settings came from (`--config`): watched,
    /// so that changed `[plugins.NAME.config]` overrides reload their
    /// plugins.
    pub config_file: Option<PathBuf>,
    /// Overrides of plugins' `[config]` defaults, by plugin name.
    pub plugin_config: BTreeMap<String, toml::Table>,
    /// Run this plugin's worker under a debugger (`--debug NAME`): it
    /// stops at start, and no deadline kills it.
    pub debug: Option<String>,
    /// Profile this plugin's syscalls (`--profile NAME`, `corral
    /// profile`): what the seccomp baseline does not allow is let through
    /// (a killing syscall refused) and shows in `corral inspect`.
    pub profile: Option<String>,
    /// Let admin clients inject faults into workers (`--faults`, for
    /// tests: `corral::testing`).
    pub faults: bool,
}

impl ServeConfig {
    /// Settings with the defaults: 16 MiB frames, 30 s call deadline, 10 s
    /// start deadline, 2 s stop grace, worker uids from 200000, socket
    /// mode 0600, no cap on workers, no other peers.
    pub fn new(plugin_dirs: Vec<PathBuf>, socket: PathBuf, worker_exe: PathBuf) -> Self {
        Self {
            plugin_dirs,
            socket,
            worker_exe,
            max_frame: DEFAULT_MAX_FRAME,
            call_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(10),
            stop_grace: Duration::from_secs(2),
            worker_uid_base: 200_000,
            strict: false,
            cgroup: None,
            state_dir: None,
            max_plugins: None,
            socket_mode: 0o600,
            socket_group: None,
            allowed_uids: Vec::new(),
            admin_uids: Vec::new(),
            default_limits: Limits::default(),
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 5,
            recording: corral_plugin_api::wire::Recording {
                calls: 8,
                bytes: 64 * 1024,
                inputs: true,
            },
            storage_sync: StorageSync::Normal,
            events_keep: 100_000,
            events_max_age: Duration::from_secs(30 * 86_400),
            crash_reports_keep: 100,
            crash_reports_max_age: Duration::from_secs(30 * 86_400),
            metrics_addr: None,
            config_file: None,
            plugin_config: BTreeMap::new(),
            debug: None,
            profile: None,
            faults: false,
        }
    }
}
