//! One plugin under supervision: its status, the worker serving it now,
//! and the loop that starts a worker, watches it and starts the next one
//! after a crash, with backoff.

use crate::cgroup::Cgroup;
use crate::lifecycle::Backoff;
use crate::limits::Defaults;
use crate::registry::Discovered;
use crate::sandbox::ChildSetup;
use crate::spawn::{Spawner, WorkerCommand};
use crate::watchdog::Watchdog;
use crate::worker::{self, StartError, Worker};
use corral_plugin_api::wire::{
    EffectiveLimits, ExitCause, ExitInfo, Hello, Layer, PROTOCOL_VERSION, PluginDetails,
    PluginInfo, PluginKind, PluginState,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Where calls for a plugin go right now.
#[derive(Clone)]
enum Route {
    /// A worker is starting: wait for it.
    Starting,
    /// Send calls here.
    Ready(Arc<Worker>),
    /// No worker: fail calls with this.
    Down(RemoteError),
}

/// Exits kept per plugin for `corral inspect`.
const EXITS_KEPT: usize = 10;

#[derive(Debug)]
struct Status {
    state: PluginState,
    pid: Option<u32>,
    ready_since: Option<Instant>,
    /// How long the current worker took from spawn to Ready.
    start_time: Option<Duration>,
    starts: u32,
    /// Recent exits, newest last, at most [`EXITS_KEPT`].
    exits: VecDeque<ExitInfo>,
    error: Option<String>,
    /// The sandbox layers of the current or last worker.
    layers: Vec<Layer>,
}

impl Status {
    fn record_exit(&mut self, exit: ExitInfo) {
        if self.exits.len() == EXITS_KEPT {
            self.exits.pop_front();
        }
        self.exits.push_back(exit);
    }
}

/// Settings every plugin's supervision shares.
pub(crate) struct Supervision {
    pub(crate) spawner: Spawner,
    pub(crate) worker_exe: Arc<std::os::fd::OwnedFd>,
    pub(crate) max_frame: u32,
    pub(crate) start_timeout: Duration,
    pub(crate) stop_grace: Duration,
    pub(crate) watchdog: Arc<Watchdog>,
    /// Refuse workers with a sandbox layer missing.
    pub(crate) strict: bool,
}

/// A supervised plugin, shared by the server (calls, status) and its
/// supervision task.
pub(crate) struct PluginHandle {
    plugin: Discovered,
    limits: EffectiveLimits,
    /// The worker's own uid and gid (when the supervisor is root).
    uid: Option<u32>,
    /// The plugin's cgroup, inside a delegated subtree.
    cgroup: Option<Cgroup>,
    /// Where a wasm worker keeps its compiled module.
    cache_dir: Option<PathBuf>,
    status: Mutex<Status>,
    route: watch::Sender<Route>,
}

impl PluginHandle {
    pub(crate) fn new(
        plugin: Discovered,
        defaults: &Defaults,
        uid: Option<u32>,
        cgroups: Option<&std::path::Path>,
        cache_dir: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            uid,
            cache_dir,
            cgroup: cgroups.map(|subtree| Cgroup::new(subtree, &plugin.manifest.name)),
            limits: defaults.apply(&plugin.manifest.limits),
            plugin,
            status: Mutex::new(Status {
                state: PluginState::Starting,
                pid: None,
                ready_since: None,
                start_time: None,
                starts: 0,
                exits: VecDeque::new(),
                error: None,
                layers: Vec::new(),
            }),
            route: watch::Sender::new(Route::Starting),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.plugin.manifest.name
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This plugin's row for `corral ps`.
    pub(crate) fn info(&self) -> PluginInfo {
        let status = self.status();
        PluginInfo {
            name: self.plugin.manifest.name.clone(),
            version: Some(self.plugin.manifest.version.to_string()),
            dir: self.plugin.dir.display().to_string(),
            state: status.state,
            pid: status.pid,
            uptime_ms: status
                .ready_since
                .map(|since| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)),
            start_us: status
                .start_time
                .map(|time| u64::try_from(time.as_micros()).unwrap_or(u64::MAX)),
            restarts: status.starts.saturating_sub(1),
            last_exit: status.exits.back().cloned(),
            error: status.error.clone(),
        }
    }

    /// Every sandbox layer of worker `pid`: what the supervisor applied,
    /// what it sees from outside, and what the worker reported.
    fn layers(&self, pid: u32, reported: &[Layer]) -> Vec<Layer> {
        let mut layers = supervisor_layers(&self.limits, self.plugin.manifest.kind);
        if let Some(cgroup) = &self.cgroup {
            layers.push(cgroup_layer(cgroup, pid));
        }
        let network = self.plugin.manifest.permissions.network;
        layers.extend(crate::sandbox::observe(pid, self.uid, network));
        layers.extend(reported.iter().cloned());
        layers
    }

    /// Everything `corral inspect` shows.
    pub(crate) fn details(&self) -> PluginDetails {
        let info = self.info();
        let permissions = &self.plugin.manifest.permissions;
        let status = self.status();
        PluginDetails {
            info,
            manifest: self
                .plugin
                .dir
                .join(crate::registry::MANIFEST)
                .display()
                .to_string(),
            kind: self.plugin.manifest.kind,
            entry: self.plugin.entry.display().to_string(),
            read: self.permitted(&permissions.read),
            write: self.permitted(&permissions.write),
            network: permissions.network,
            limits: self.limits.clone(),
            layers: status.layers.clone(),
            exits: status.exits.iter().cloned().collect(),
        }
    }

    /// Calls `method`; waits for a starting worker, fails at once when
    /// there is none. The call gets the plugin's deadline, or the caller's
    /// when that is shorter; only a missed plugin deadline kills the worker.
    pub(crate) async fn call(
        &self,
        method: String,
        input: Vec<u8>,
        caller_timeout: Option<Duration>,
    ) -> Result<Vec<u8>, RemoteError> {
        let started = tokio::time::Instant::now();
        let plugin_deadline = Duration::from_millis(self.limits.call_timeout_ms);
        let (budget, kill_on_timeout) = match caller_timeout {
            Some(timeout) if timeout < plugin_deadline => (timeout, false),
            _ => (plugin_deadline, true),
        };
        // Fast path: a ready worker, no subscription needed.
        let ready = match &*self.route.borrow() {
            Route::Ready(worker) => Some(worker.clone()),
            _ => None,
        };
        let worker = match ready {
            Some(worker) => worker,
            None => self.wait_for_worker(started, budget).await?,
        };
        worker
            .call(method, input, started, budget, kill_on_timeout)
            .await
    }

    /// Waits while a worker is starting; fails at once when there is none.
    async fn wait_for_worker(
        &self,
        started: tokio::time::Instant,
        deadline: Duration,
    ) -> Result<Arc<Worker>, RemoteError> {
        let mut route = self.route.subscribe();
        loop {
            match &*route.borrow_and_update() {
                Route::Ready(worker) => return Ok(worker.clone()),
                Route::Down(error) => return Err(error.clone()),
                Route::Starting => {}
            }
            let waiting = tokio::time::timeout_at(started + deadline, route.changed()).await;
            if waiting.is_err() {
                return Err(RemoteError::new(
                    ErrorKind::Timeout,
                    format!(
                        "plugin `{}` did not start within {} ms",
                        self.name(),
                        deadline.as_millis()
                    ),
                ));
            }
        }
    }

    /// Marks the plugin as stopping: new calls fail at once. The
    /// supervision task does the stopping.
    pub(crate) fn begin_stop(&self) {
        let error = RemoteError::new(
            ErrorKind::Unavailable,
            format!("plugin `{}` is stopping", self.name()),
        );
        self.set(PluginState::Stopping, Route::Down(error));
    }

    fn set(&self, state: PluginState, route: Route) {
        self.status().state = state;
        self.route.send_replace(route);
    }

    fn hello(&self, supervision: &Supervision) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            plugin: self.plugin.manifest.name.clone(),
            version: self.plugin.manifest.version.to_string(),
            kind: self.plugin.manifest.kind,
            wasi: self.plugin.manifest.wasi,
            dir: self.plugin.dir.display().to_string(),
            entry: self.plugin.entry.display().to_string(),
            entry_fd: Some(crate::sandbox::ENTRY_FD),
            max_frame: supervision.max_frame,
            read: self.permitted(&self.plugin.manifest.permissions.read),
            write: self.permitted(&self.plugin.manifest.permissions.write),
            network: self.plugin.manifest.permissions.network,
            memory_bytes: self.limits.memory_bytes,
            cache_dir: self.cache_dir.as_ref().map(|dir| dir.display().to_string()),
            wasm_fuel: self.limits.wasm_fuel,
        }
    }

    /// `[permissions]` paths as absolute paths (relative ones are under
    /// the plugin's folder).
    fn permitted(&self, paths: &[std::path::PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|path| self.plugin.dir.join(path).display().to_string())
            .collect()
    }

    fn command(&self, supervision: &Supervision) -> WorkerCommand {
        let manifest = &self.plugin.manifest;
        let mut env = vec![(
            OsString::from("CORRAL_PLUGIN"),
            OsString::from(&manifest.name),
        )];
        if let Some(level) = std::env::var_os("CORRAL_LOG") {
            env.push(("CORRAL_LOG".into(), level));
        }
        WorkerCommand {
            exe: supervision.worker_exe.clone(),
            entry: self.plugin.entry.clone(),
            dir: self.plugin.dir.clone(),
            title: format!("corral-worker: {}@{}", manifest.name, manifest.version),
            env,
            setup: ChildSetup::new(
                &self.limits,
                self.uid,
                manifest.permissions.network,
                manifest.kind,
            ),
        }
    }
}

/// Keeps `plugin` served until `stop` turns true: start a worker, serve
/// until it exits, wait out the backoff, start again.
pub(crate) async fn supervise(
    plugin: Arc<PluginHandle>,
    supervision: Arc<Supervision>,
    mut stop: watch::Receiver<bool>,
) {
    let name = plugin.name().to_owned();
    let mut backoff = Backoff::default();
    while !*stop.borrow() {
        plugin.set(PluginState::Starting, Route::Starting);
        plugin.status().starts += 1;
        let mut ready_for = Duration::ZERO;
        let spawned_at = Instant::now();
        match start(&plugin, &supervision).await {
            Ok(started) => {
                let pid = started.worker.pid();
                let ready_at = Instant::now();
                let layers = plugin.layers(pid, &started.layers);
                let oom_kills = plugin.cgroup.as_ref().and_then(Cgroup::oom_kills);
                let missing: Vec<&str> = layers
                    .iter()
                    .filter(|layer| !layer.active)
                    .map(|layer| layer.name.as_str())
                    .collect();
                let refused = supervision.strict && !missing.is_empty();
                if refused {
                    let why = format!("strict: missing sandbox layers: {}", missing.join(", "));
                    started.worker.condemn(ExitCause::Sandbox, why);
                } else if missing.is_empty() {
                    info!(plugin = %name, pid, "ready, every sandbox layer in force");
                } else {
                    warn!(plugin = %name, pid, "ready; sandbox layers missing: {} (see corral inspect)", missing.join(", "));
                }
                {
                    let mut status = plugin.status();
                    status.pid = Some(pid);
                    status.ready_since = (!refused).then_some(ready_at);
                    status.start_time = Some(ready_at - spawned_at);
                    status.error = None;
                    status.layers = layers;
                }
                if !refused {
                    supervision.watchdog.watch(&started.worker, &plugin.limits);
                    plugin.set(PluginState::Ready, Route::Ready(started.worker.clone()));
                }
                let mut ended =
                    worker::run_until_exit(started, stop.clone(), supervision.stop_grace).await;
                if plugin.cgroup.as_ref().and_then(Cgroup::oom_kills) > oom_kills {
                    ended.exit = crate::exit::oom_killed(ended.exit);
                }
                ready_for = ready_at.elapsed();
                if ended.requested {
                    info!(plugin = %name, pid, "stopped: {}", ended.exit.description);
                } else {
                    warn!(plugin = %name, pid, "worker {}", ended.exit.description);
                }
                let mut status = plugin.status();
                status.pid = None;
                status.ready_since = None;
                status.start_time = None;
                status.record_exit(ended.exit);
            }
            Err(failure) => {
                error!(plugin = %name, "start failed: {failure}");
                let mut status = plugin.status();
                if let StartError::Exited(exit) = &failure {
                    status.record_exit(exit.clone());
                }
                status.error = Some(failure.to_string());
            }
        }
        if *stop.borrow() {
            break;
        }
        let delay = backoff.next_delay(ready_for);
        if delay.is_zero() {
            continue;
        }
        let reason = plugin.status().exits.back().map_or_else(
            || "start failed".to_owned(),
            |exit| format!("worker {}", exit.description),
        );
        info!(plugin = %name, "restarting in {delay:?}");
        plugin.set(
            PluginState::Backoff,
            Route::Down(RemoteError::new(
                ErrorKind::Unavailable,
                format!(
                    "plugin `{name}` restarts in {} ms, after: {reason}",
                    delay.as_millis()
                ),
            )),
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
    }
    plugin.status().pid = None;
    plugin.set(
        PluginState::Stopped,
        Route::Down(RemoteError::new(
            ErrorKind::Unavailable,
            format!("plugin `{name}` is stopped"),
        )),
    );
}

async fn start(
    plugin: &PluginHandle,
    supervision: &Supervision,
) -> Result<worker::Started, StartError> {
    let spawned = supervision
        .spawner
        .spawn(plugin.command(supervision))
        .await?;
    plugin.status().pid = Some(spawned.pid);
    let into_cgroup = |pid| match &plugin.cgroup {
        Some(cgroup) => cgroup
            .prepare(&plugin.limits)
            .and_then(|()| cgroup.add(pid))
            .map_err(|e| format!("cgroup {}: {e}", cgroup.dir().display())),
        None => Ok(()),
    };
    worker::handshake(
        spawned,
        plugin.hello(supervision),
        supervision.max_frame,
        supervision.start_timeout,
        into_cgroup,
    )
    .await
}

/// The layers the supervisor applies before exec, as `corral inspect` shows
/// them (the worker reports its own: Landlock, seccomp).
fn supervisor_layers(limits: &EffectiveLimits, kind: PluginKind) -> Vec<Layer> {
    const MIB: u64 = 1024 * 1024;
    let layer = |name: &str, active: bool, detail: String| Layer {
        name: name.to_owned(),
        active,
        detail,
    };
    let cpu = limits
        .cpu_seconds
        .map_or_else(|| "unlimited".to_owned(), |secs| format!("{secs} s"));
    vec![
        layer(
            "session",
            true,
            "own session and process group; stdin /dev/null; only fds 0-4 (channel, module); empty environment"
                .into(),
        ),
        layer(
            "rlimits",
            true,
            format!(
                "data {} MiB{}, open files {}, file size {} MiB, cpu {cpu}, core 0",
                limits.memory_bytes / MIB,
                match kind {
                    PluginKind::Native => String::new(),
                    PluginKind::Wasm => format!(
                        " (guest; +{} MiB for the wasm runtime)",
                        crate::sandbox::WASM_RUNTIME_BYTES / MIB
                    ),
                },
                limits.open_files,
                limits.file_size_bytes / MIB
            ),
        ),
        layer(
            "no_new_privs",
            true,
            "PR_SET_NO_NEW_PRIVS, verified in /proc before the first call".into(),
        ),
        layer(
            "pdeathsig",
            true,
            "SIGKILL when the supervisor dies; end of channel too".into(),
        ),
        layer(
            "watchdog",
            true,
            format!(
                "at most {} threads; {}",
                limits.threads,
                limits.cpu_percent.map_or_else(
                    || "CPU use unwatched".to_owned(),
                    |percent| format!(
                        "at most {percent}% CPU sustained over {} s",
                        crate::watchdog::WINDOW.as_secs()
                    )
                )
            ),
        ),
    ]
}

/// The cgroup layer: in force when the worker is listed in its
/// `cgroup.procs`.
fn cgroup_layer(cgroup: &Cgroup, pid: u32) -> Layer {
    let members = std::fs::read_to_string(cgroup.dir().join("cgroup.procs")).unwrap_or_default();
    Layer {
        name: "cgroup".into(),
        active: members
            .split_whitespace()
            .any(|member| member == pid.to_string()),
        detail: format!("{}: memory.max, pids.max, cpu.max", cgroup.dir().display()),
    }
}
