//! One plugin under supervision: what it runs from ([`Spec`], replaced by
//! a hot reload), its status, and where its calls go right now. The task
//! that starts and stops its workers is in [`crate::supervise::controller`].

use crate::config::overrides::Overrides;
use crate::observe::events::Events;
use crate::observe::logfile::LogFile;
use crate::observe::metrics::CallMetrics;
use crate::process::cgroup::Cgroup;
use crate::process::refusals::{Record, Refused};
use crate::process::spawn::{Spawner, WorkerCommand};
use crate::process::watchdog::Watchdog;
use crate::process::worker::Chain;
use crate::process::worker::{Called, Lease, Worker};
use crate::services::{PluginEvents, Services};
use crate::supervise::discovery::Discovered;
use crate::supervise::limits::Defaults;
use crate::transport::payload::Payload;
use corral_plugin_api::manifest::check_declared;
use corral_plugin_api::seccomp::Tier;
use corral_plugin_api::wire::{
    Action, DirectChannel, DirectCounts, EffectiveLimits, EventKind, ExitInfo, Hello, Layer,
    PROTOCOL_VERSION, PluginDetails, PluginInfo, PluginState, Refusal, SpawnMode,
};
use corral_plugin_api::worker_setup::WorkerSetup;
use corral_plugin_api::{ErrorKind, RemoteError};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::warn;

/// The receiving end of a plugin's orders, its controller's.
pub(crate) type Orders = mpsc::UnboundedReceiver<Order>;

/// What a controller is asked to do.
pub(crate) enum Order {
    /// An admin action; `done` gets the outcome once it has settled.
    Admin {
        action: Action,
        done: oneshot::Sender<Result<(), RemoteError>>,
    },
    /// The plugin's folder changed on disk: reload it.
    Changed,
    /// The plugin's folder is gone: stop for good.
    Removed,
    /// A call came for a plugin that starts lazily.
    FirstCall,
}

/// Where calls for a plugin go right now.
#[derive(Clone)]
pub(crate) enum Route {
    /// Not started until a call comes (`start = "lazy"`): start it, wait.
    Idle,
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
pub(crate) struct Status {
    pub(crate) state: PluginState,
    pub(crate) pid: Option<u32>,
    pub(crate) ready_since: Option<Instant>,
    /// How long the current worker took from spawn to Ready.
    pub(crate) start_time: Option<Duration>,
    /// How the current worker was started.
    pub(crate) spawn_mode: Option<SpawnMode>,
    pub(crate) starts: u32,
    /// The serving worker's generation (0 before the first).
    pub(crate) generation: u64,
    /// Recent exits, newest last, at most [`EXITS_KEPT`].
    exits: VecDeque<ExitInfo>,
    pub(crate) error: Option<String>,
    /// The sandbox layers of the current or last worker.
    pub(crate) layers: Vec<Layer>,
    /// The spare worker standing by.
    pub(crate) spare_pid: Option<u32>,
}

impl Status {
    /// The serving worker is gone: no pid, no uptime, and its exit.
    pub(crate) fn worker_ended(&mut self, exit: ExitInfo) {
        self.pid = None;
        self.ready_since = None;
        self.start_time = None;
        self.spawn_mode = None;
        self.record_exit(exit);
    }

    pub(crate) fn record_exit(&mut self, exit: ExitInfo) {
        if self.exits.len() == EXITS_KEPT {
            self.exits.pop_front();
        }
        self.exits.push_back(exit);
    }
}

/// Settings every plugin's supervision shares.
pub(crate) struct Supervision {
    pub(crate) spawner: Spawner,
    pub(crate) max_frame: u32,
    pub(crate) start_timeout: Duration,
    pub(crate) stop_grace: Duration,
    pub(crate) watchdog: Arc<Watchdog>,
    /// Refuse workers with a sandbox layer missing.
    pub(crate) strict: bool,
    /// Limits for what manifests leave unset.
    pub(crate) defaults: Defaults,
    /// Worker slots (`max_plugins`); `None` = no cap.
    pub(crate) slots: Option<Arc<Semaphore>>,
    /// Where admin decisions that survive a restart are kept (disabled
    /// plugins).
    pub(crate) state_dir: Option<PathBuf>,
    /// The event log.
    pub(crate) events: Arc<Events>,
    /// Host services for plugins.
    pub(crate) services: Arc<Services>,
    /// corral.toml's overrides of plugins' `[config]`.
    pub(crate) overrides: Arc<Overrides>,
    /// The plugin to run under a debugger (`--debug NAME`).
    pub(crate) debug: Option<String>,
    /// The plugin whose syscalls to profile (`--profile NAME`).
    pub(crate) profile: Option<String>,
    /// What workers record of their last calls for crash reports.
    pub(crate) recording: corral_plugin_api::wire::Recording,
    /// Where crash reports go.
    pub(crate) crashes: Arc<crate::observe::crashes::CrashReports>,
}

/// What a plugin runs from: its folder and manifest, and the limits they
/// give. A hot reload replaces it.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) plugin: Discovered,
    pub(crate) limits: EffectiveLimits,
    /// Run under a debugger (`corral serve --debug NAME`): the worker
    /// stops for one at start, and no deadline, health check or CPU
    /// watchdog kills it meanwhile.
    pub(crate) debug: bool,
    /// Profile its syscalls (`corral profile`, `corral serve --profile
    /// NAME`): what the baseline does not allow is let through and
    /// recorded, a killing syscall refused; nothing kills.
    pub(crate) profile: bool,
}

/// How long a debugged plugin's worker may take to start, or a call on
/// it: "no deadline", within what `Instant` arithmetic holds.
pub(crate) const DEBUG_DEADLINE: Duration = Duration::from_secs(DEBUG_DEADLINE_S);
const DEBUG_DEADLINE_S: u64 = 30 * 24 * 3600;

impl Spec {
    pub(crate) fn new(mut plugin: Discovered, supervision: &Supervision) -> Arc<Self> {
        let mut limits = supervision.defaults.apply(&plugin.manifest.limits);
        let debug = supervision.debug.as_deref() == Some(plugin.manifest.name.as_str());
        if debug {
            limits.call_timeout_ms = DEBUG_DEADLINE_S * 1000;
            limits.cpu_percent = None;
            plugin.manifest.health.interval_ms = 0;
            plugin.manifest.restart.spare = false;
        }
        let profile = supervision.profile.as_deref() == Some(plugin.manifest.name.as_str());
        Arc::new(Self {
            limits,
            plugin,
            debug,
            profile,
        })
    }

    /// How long a worker has from spawn to `Ready`.
    pub(crate) fn start_timeout(&self, supervision: &Supervision) -> Duration {
        if self.debug {
            DEBUG_DEADLINE
        } else {
            supervision.start_timeout
        }
    }

    /// `[permissions]` paths as absolute paths (relative ones are under
    /// the plugin's folder).
    fn permitted(&self, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|path| self.plugin.dir.join(path).display().to_string())
            .collect()
    }
}

/// A supervised plugin, shared by the server (calls, status), the
/// registry and its controller task.
pub(crate) struct PluginHandle {
    name: String,
    spec: Mutex<Arc<Spec>>,
    /// The worker's own uid and gid (when the supervisor is root).
    pub(crate) uid: Option<u32>,
    /// The plugin's cgroup, inside a delegated subtree.
    pub(crate) cgroup: Option<Cgroup>,
    /// Where a wasm worker keeps its compiled module.
    cache_dir: Option<PathBuf>,
    status: Mutex<Status>,
    route: watch::Sender<Route>,
    orders: mpsc::UnboundedSender<Order>,
    events: Arc<Events>,
    /// Calls, errors and latency, over every generation.
    metrics: CallMetrics,
    /// Its workers' output and `log()` lines (with a state folder).
    log: Option<Arc<LogFile>>,
    /// Syscalls its workers were refused (or made, profiling), by name.
    refusals: Mutex<BTreeMap<String, (Tier, u64)>>,
}

impl PluginHandle {
    /// A handle and the receiving end of its orders, for its controller.
    pub(crate) fn new(
        spec: Arc<Spec>,
        uid: Option<u32>,
        cgroups: Option<&std::path::Path>,
        cache_dir: Option<PathBuf>,
        log: Option<Arc<LogFile>>,
        events: Arc<Events>,
    ) -> (Arc<Self>, Orders) {
        let (orders, receiver) = mpsc::unbounded_channel();
        let name = spec.plugin.manifest.name.clone();
        let handle = Arc::new(Self {
            uid,
            cache_dir,
            cgroup: cgroups.map(|subtree| Cgroup::new(subtree, &name)),
            name,
            spec: Mutex::new(spec),
            status: Mutex::new(Status {
                state: PluginState::Installed,
                pid: None,
                ready_since: None,
                start_time: None,
                spawn_mode: None,
                starts: 0,
                generation: 0,
                exits: VecDeque::new(),
                error: None,
                layers: Vec::new(),
                spare_pid: None,
            }),
            route: watch::Sender::new(Route::Starting),
            orders,
            events,
            metrics: CallMetrics::default(),
            log,
            refusals: Mutex::default(),
        });
        (handle, receiver)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's log file, when there is a state folder.
    pub(crate) fn log(&self) -> Option<Arc<LogFile>> {
        self.log.clone()
    }

    /// What the plugin runs from now.
    pub(crate) fn spec(&self) -> Arc<Spec> {
        self.spec
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_spec(&self, spec: Arc<Spec>) {
        *self.spec.lock().unwrap_or_else(PoisonError::into_inner) = spec;
    }

    pub(crate) fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an order to the controller; false when it is gone.
    pub(crate) fn order(&self, order: Order) -> bool {
        self.orders.send(order).is_ok()
    }

    /// This plugin's row for `corral ps`.
    pub(crate) fn info(&self) -> PluginInfo {
        let spec = self.spec();
        let (rss_bytes, cpu_percent) = self.serving().map_or((None, None), |worker| worker.usage());
        let direct = self
            .serving()
            .filter(|worker| !worker.is_closed())
            .and_then(|worker| worker.direct_counts());
        let calls = self.metrics.snapshot(direct.as_ref());
        let status = self.status();
        PluginInfo {
            name: self.name.clone(),
            version: Some(spec.plugin.manifest.version.to_string()),
            dir: spec.plugin.dir.display().to_string(),
            state: status.state,
            pid: status.pid,
            uptime_ms: status
                .ready_since
                .map(|since| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)),
            start_us: status
                .start_time
                .map(|time| u64::try_from(time.as_micros()).unwrap_or(u64::MAX)),
            restarts: status.starts.saturating_sub(1),
            generation: status.generation,
            rss_bytes,
            cpu_percent,
            memory_limit_bytes: Some(spec.limits.memory_bytes),
            last_exit: status.exits.back().cloned(),
            error: status.error.clone(),
            calls: calls.calls,
            errors: calls
                .errors
                .iter()
                .map(|(kind, count)| (kind.as_str().to_owned(), *count))
                .collect(),
            in_flight: calls.in_flight,
            latency_p50_us: calls.p50_us,
            latency_p99_us: calls.p99_us,
            spare_pid: status.spare_pid,
            provides: spec.plugin.manifest.provides.clone(),
            spawn_mode: status.spawn_mode,
        }
    }

    /// Every sandbox layer of worker `pid` run from `spec`: what the
    /// supervisor applied, what it sees from outside, and what the worker
    /// reported.
    pub(crate) fn layers(&self, spec: &Spec, pid: u32, reported: &[Layer]) -> Vec<Layer> {
        let mut layers =
            crate::process::sandbox::applied_layers(&spec.limits, spec.plugin.manifest.kind);
        if let Some(cgroup) = &self.cgroup {
            layers.push(cgroup.layer(pid));
        }
        let network = spec.plugin.manifest.permissions.network;
        layers.extend(crate::process::sandbox::observe(pid, self.uid, network));
        layers.extend(reported.iter().cloned());
        layers
    }

    /// Everything `corral inspect` shows.
    pub(crate) fn details(&self) -> PluginDetails {
        let info = self.info();
        let spec = self.spec();
        let permissions = &spec.plugin.manifest.permissions;
        let status = self.status();
        PluginDetails {
            info,
            manifest: spec
                .plugin
                .dir
                .join(crate::supervise::discovery::MANIFEST)
                .display()
                .to_string(),
            kind: spec.plugin.manifest.kind,
            entry: spec.plugin.entry.display().to_string(),
            read: spec.permitted(&permissions.read),
            write: spec.permitted(&permissions.write),
            network: permissions.network,
            limits: spec.limits.clone(),
            layers: status.layers.clone(),
            exits: status.exits.iter().cloned().collect(),
            host: permissions.host.iter().map(ToString::to_string).collect(),
            subscribe: spec.plugin.manifest.subscribe.clone(),
            methods: spec
                .plugin
                .manifest
                .methods
                .iter()
                .map(|method| (method.name.clone(), method.description.clone()))
                .collect(),
            config: spec.plugin.config.clone(),
            syscalls: permissions.syscall_names(),
            refused: self.refused(),
        }
    }

    /// Syscalls refused so far, most first.
    fn refused(&self) -> Vec<Refusal> {
        let refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut refused: Vec<Refusal> = refusals
            .iter()
            .map(|(syscall, (tier, count))| Refusal {
                syscall: syscall.clone(),
                tier: *tier,
                count: *count,
            })
            .collect();
        refused.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.syscall.cmp(&b.syscall))
        });
        refused
    }

    /// Adds what an ended worker counted on its direct channels to the
    /// plugin's metrics.
    pub(crate) fn absorb_direct(&self, direct: Option<&DirectCounts>) {
        if let Some(direct) = direct {
            self.metrics.absorb(direct);
        }
    }

    /// Calls `method` for the plugins on `chain` (empty for a host app);
    /// waits for a starting worker (starting a lazy one), fails at once
    /// when there is none. The call gets the plugin's deadline, or the
    /// caller's when that is shorter; only a missed plugin deadline kills
    /// the worker. A call that reaches a worker just replaced by a hot
    /// reload is handed back and goes to the new one. Counted in the
    /// plugin's metrics.
    pub(crate) async fn call(
        &self,
        method: String,
        input: Payload,
        caller_timeout: Option<Duration>,
        chain: Chain,
    ) -> Result<Payload, RemoteError> {
        let in_flight = self.metrics.begin();
        let result = self.route_call(method, input, caller_timeout, chain).await;
        in_flight.finish(result.as_ref().err().map(|error| error.kind));
        result
    }

    async fn route_call(
        &self,
        method: String,
        input: Payload,
        caller_timeout: Option<Duration>,
        chain: Chain,
    ) -> Result<Payload, RemoteError> {
        let started = tokio::time::Instant::now();
        let spec = self.spec();
        let declared = spec.plugin.manifest.methods.iter();
        check_declared(&self.name, &method, declared.map(|m| m.name.as_str()))?;
        let plugin_deadline = Duration::from_millis(spec.limits.call_timeout_ms);
        drop(spec);
        let (budget, kill_on_timeout) = match caller_timeout {
            Some(timeout) if timeout < plugin_deadline => (timeout, false),
            _ => (plugin_deadline, true),
        };
        let (mut method, mut input) = (method, input);
        loop {
            // Fast path: a ready worker, no subscription needed.
            let ready = match &*self.route.borrow() {
                Route::Ready(worker) => Some(worker.clone()),
                _ => None,
            };
            let worker = match ready {
                Some(worker) => worker,
                None => self.wait_for_worker(started, budget).await?,
            };
            match worker
                .call(
                    method,
                    input,
                    started,
                    budget,
                    kill_on_timeout,
                    chain.clone(),
                )
                .await
            {
                Called::Done(result) => return result,
                // Replaced by a hot reload before the call was queued.
                Called::Retired {
                    method: unsent_method,
                    input: unsent_input,
                } => (method, input) = (unsent_method, unsent_input),
            }
        }
    }

    /// A direct channel to the serving worker (waiting for a starting
    /// one, within the plugin's deadline): the host app's end, its lease,
    /// the worker, and what the host app is told about it.
    pub(crate) async fn direct(
        &self,
    ) -> Result<(OwnedFd, Lease, Arc<Worker>, DirectChannel), RemoteError> {
        let deadline = Duration::from_millis(self.spec().limits.call_timeout_ms);
        let worker = self
            .wait_for_worker(tokio::time::Instant::now(), deadline)
            .await?;
        let (socket, lease) = worker.attach(deadline)?;
        let channel = DirectChannel {
            pid: worker.pid(),
            deadline_ms: self.spec().limits.call_timeout_ms,
            max_frame: worker.max_frame(),
        };
        Ok((socket, lease, worker, channel))
    }

    /// Waits while a worker is starting (asking a lazy plugin to start);
    /// fails at once when there is none.
    async fn wait_for_worker(
        &self,
        started: tokio::time::Instant,
        deadline: Duration,
    ) -> Result<Arc<Worker>, RemoteError> {
        let mut route = self.route.subscribe();
        loop {
            match &*route.borrow_and_update() {
                Route::Ready(worker) if !worker.is_retired() => return Ok(worker.clone()),
                Route::Down(error) => return Err(error.clone()),
                Route::Idle => {
                    self.order(Order::FirstCall);
                }
                Route::Ready(_) | Route::Starting => {}
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

    /// The worker serving calls now, if any.
    pub(crate) fn serving(&self) -> Option<Arc<Worker>> {
        match &*self.route.borrow() {
            Route::Ready(worker) => Some(worker.clone()),
            _ => None,
        }
    }

    /// Sets the state and where calls go.
    pub(crate) fn set(&self, state: PluginState, route: Route) {
        self.set_state(state);
        self.route.send_replace(route);
    }

    /// Sets the state (calls keep going where they go); a change is an
    /// event.
    pub(crate) fn set_state(&self, state: PluginState) {
        let (old, generation) = {
            let mut status = self.status();
            let old = std::mem::replace(&mut status.state, state);
            (old, status.generation)
        };
        if old != state {
            self.events.record(
                &self.name,
                generation,
                EventKind::State,
                format!("{} -> {}", old.as_str(), state.as_str()),
            );
        }
    }

    /// Records an event about this plugin.
    pub(crate) fn event(&self, kind: EventKind, detail: String) {
        let generation = self.status().generation;
        self.events.record(&self.name, generation, kind, detail);
    }

    /// Subscribes to where calls go: dependents wait for Ready.
    pub(crate) fn watch_route(&self) -> watch::Receiver<Route> {
        self.route.subscribe()
    }

    /// The `Hello` for a worker run from `spec`.
    pub(crate) fn hello(&self, spec: &Spec, supervision: &Supervision) -> Hello {
        let manifest = &spec.plugin.manifest;
        Hello {
            protocol: PROTOCOL_VERSION,
            plugin: manifest.name.clone(),
            version: manifest.version.to_string(),
            kind: manifest.kind,
            wasi: manifest.wasi,
            dir: spec.plugin.dir.display().to_string(),
            entry: spec.plugin.entry.display().to_string(),
            entry_fd: Some(corral_plugin_api::worker_setup::ENTRY_FD),
            max_frame: supervision.max_frame,
            read: spec.permitted(&manifest.permissions.read),
            write: spec.permitted(&manifest.permissions.write),
            network: manifest.permissions.network,
            memory_bytes: spec.limits.memory_bytes,
            cache_dir: self.cache_dir.as_ref().map(|dir| dir.display().to_string()),
            wasm_fuel: spec.limits.wasm_fuel,
            standby: false,
            config: spec.plugin.config.clone(),
            debug: spec.debug,
            // A profile reports everything beyond the baseline.
            syscalls: if spec.profile {
                Vec::new()
            } else {
                manifest.permissions.syscall_names()
            },
            profile: spec.profile,
            listener_fd: Some(corral_plugin_api::worker_setup::LISTENER_FD),
            recording: corral_plugin_api::wire::Recording {
                inputs: manifest.record,
                ..supervision.recording
            },
            methods: spec
                .plugin
                .manifest
                .methods
                .iter()
                .map(|method| method.name.clone())
                .collect(),
        }
    }

    /// How to spawn a worker run from `spec`.
    pub(crate) fn command(&self, spec: &Spec) -> WorkerCommand {
        let manifest = &spec.plugin.manifest;
        let mut env = vec![(
            OsString::from("CORRAL_PLUGIN"),
            OsString::from(&manifest.name),
        )];
        if let Some(level) = std::env::var_os("CORRAL_LOG") {
            env.push(("CORRAL_LOG".into(), level));
        }
        WorkerCommand {
            kind: manifest.kind,
            fresh_exec: manifest.restart.fresh_exec,
            entry: spec.plugin.entry.clone(),
            sha256: manifest.sha256.clone(),
            dir: spec.plugin.dir.clone(),
            title: format!("corral-worker: {}@{}", manifest.name, manifest.version),
            env,
            setup: WorkerSetup::new(
                &spec.limits,
                self.uid,
                manifest.permissions.network,
                manifest.kind,
            ),
        }
    }
}

impl PluginEvents for PluginHandle {
    fn event(&self, kind: EventKind, detail: String) {
        PluginHandle::event(self, kind, detail);
    }
}

impl Record for PluginHandle {
    fn refused(&self, pid: u32, refused: &Refused, first: bool) {
        {
            let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = refusals
                .entry(refused.syscall.clone())
                .or_insert((refused.tier, 0));
            entry.1 += 1;
        }
        if !first {
            return;
        }
        let detail = match (refused.let_through, refused.tier) {
            (true, _) => format!(
                "profiling: syscall {} made, beyond the baseline: let through (refuse tier: \
                 [permissions] syscalls = [\"{}\"] allows it)",
                refused.described, refused.syscall
            ),
            (false, Tier::Kill) => format!(
                "syscall {} refused with EPERM: in the kill tier, no manifest can allow it",
                refused.described
            ),
            (false, _) => format!(
                "syscall {} refused with EPERM: not in the baseline; [permissions] syscalls = \
                 [\"{}\"] allows it",
                refused.described, refused.syscall
            ),
        };
        warn!(plugin = %self.name, pid, "{detail}");
        self.event(EventKind::Denied, detail);
    }
}
