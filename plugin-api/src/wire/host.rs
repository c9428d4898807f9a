//! The messages between host apps and the supervisor: [`ClientHello`] and
//! [`ServerHello`], then [`Request`]s and their [`Response`]s, and the
//! status rows and events these carry. Field order is the wire format: add
//! new fields at the end of a struct and new variants at the end of an
//! enum, and bump [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION) when a peer
//! of the old version could not read them.
//!
//! Longer than most modules: it is the whole host protocol in one place,
//! every request beside the reply it gets, which is how a client author
//! reads it.

use super::worker::{Fault, Layer, PluginKind};
use crate::error::RemoteError;
use serde::{Deserialize, Serialize};

/// A host app's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Must stay the first field.
    pub protocol: u32,
    /// Free-form client name, for logs (may be left out in JSON).
    #[serde(default)]
    pub client: String,
    /// The client takes a call's reply as a sealed memfd passed with the
    /// frame when it is large (see `SHARED_FLAG`); it may always send
    /// large inputs that way. False when left out (JSON).
    #[serde(default)]
    pub shared_payloads: bool,
}

/// The supervisor's answer to [`ClientHello`]; it closes the connection
/// after it when the protocols differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// Must stay the first field.
    pub protocol: u32,
    /// The supervisor's version.
    pub server: String,
}

/// A host app's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client; the response carries it back.
    pub id: u64,
    /// What to do.
    pub body: RequestBody,
}

/// The method name that runs the plugin's own health check instead of a
/// call (`health` in the ABI); the supervisor uses it for `[health]`.
pub const HEALTH_METHOD: &str = "corral.health";

/// What a host app can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Call `method` of `plugin`.
    Call {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: String,
        /// Opaque input bytes.
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
        /// Deadline for the call in milliseconds; 0 means the supervisor's
        /// default.
        timeout_ms: u32,
    },
    /// Status of every plugin.
    List,
    /// Details of one plugin.
    Inspect {
        /// Plugin name.
        plugin: String,
    },
    /// Send `signal` to the process group of `plugin`'s serving worker;
    /// answered with the plugin's status once it is sent
    /// ([`Reply::Controlled`]). What follows (a restart) is the restart
    /// policy's.
    Kill {
        /// Plugin name.
        plugin: String,
        /// Signal number.
        signal: i32,
    },
    /// The supervisor's events with a sequence number above `after`
    /// (0: every event still kept), oldest first ([`Reply::Events`]).
    Events {
        /// The last sequence number the client has seen.
        after: u64,
    },
    /// An admin action on one plugin; answered with the plugin's status
    /// once the action has settled ([`Reply::Controlled`]).
    Control {
        /// Plugin name.
        plugin: String,
        /// What to do.
        action: Action,
    },
    /// Publish `payload` on `topic` to the plugins and host apps that
    /// subscribed ([`Reply::Published`]).
    Publish {
        /// The topic.
        topic: String,
        /// Opaque payload bytes.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Receive what is published on topics matching `topics` (exact names,
    /// or a prefix ending in `*`): [`Reply::Subscribed`], then one
    /// [`Reply::Message`] per publication, all with this request's id, for
    /// as long as the connection lasts.
    Subscribe {
        /// Topic patterns.
        topics: Vec<String>,
    },
    /// Like [`RequestBody::Events`], then every later event as it happens:
    /// [`Reply::Events`] again and again with this request's id.
    FollowEvents {
        /// The last sequence number the client has seen.
        after: u64,
    },
    /// Inject `fault` into `plugin`'s serving worker; answered with the
    /// plugin's status once it is sent ([`Reply::Controlled`]). Refused
    /// unless the supervisor runs with `--faults`; admin uids only.
    Fault {
        /// Plugin name.
        plugin: String,
        /// What to do to it.
        fault: Fault,
    },
    /// A plugin's log lines (its workers' stdout and stderr and its
    /// `log()` calls), oldest first, in [`Reply::Logs`] chunks; with
    /// `follow`, new lines keep coming as they are written.
    Logs {
        /// Plugin name.
        plugin: String,
        /// Only lines written at or after this time (milliseconds since
        /// the Unix epoch); 0 = all that are kept.
        since_unix_ms: u64,
        /// Keep sending new lines.
        follow: bool,
    },
    /// A direct channel to `plugin`'s serving worker, for calls that do
    /// not cross the supervisor: [`Reply::Direct`] with the channel's
    /// socket attached to the frame (bincode connections that take shared
    /// payloads only), then, once that worker stops serving,
    /// [`Reply::DirectEnded`]. The channel speaks the worker protocol:
    /// [`ToWorker::Call`](super::ToWorker::Call) frames in,
    /// [`FromWorker::Reply`](super::FromWorker::Reply) frames out, and
    /// [`FromWorker::Goodbye`](super::FromWorker::Goodbye) when the worker
    /// is replaced.
    Direct {
        /// Plugin name.
        plugin: String,
    },
    /// Trouble with the worker behind this connection's direct channel to
    /// `plugin` ([`DirectReport`]); answered with the plugin's status once
    /// the supervisor has acted on it. Refused unless this connection
    /// holds a direct channel to the plugin's serving worker.
    DirectReport {
        /// Plugin name.
        plugin: String,
        /// What went wrong.
        report: DirectReport,
    },
    /// The crash reports kept, newest first ([`Reply::Crashes`]); only
    /// `plugin`'s when given. Admin uids only.
    Crashes {
        /// Plugin name, or `None` for every plugin.
        plugin: Option<String>,
    },
    /// One crash report ([`Reply::Crash`]). Admin uids only.
    Crash {
        /// The report's id.
        id: String,
    },
    /// A look at or a repair of `plugin`'s storage while it runs
    /// ([`Reply::Kv`]). Admin uids only.
    Kv {
        /// Plugin name.
        plugin: String,
        /// What to do.
        request: KvRequest,
    },
}

/// What an admin does to a plugin's storage ([`RequestBody::Kv`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvRequest {
    /// One page of keys ([`KvAnswer::Page`]).
    List {
        /// Only keys starting with this.
        prefix: String,
        /// From this key on (inclusive); empty = the first.
        start: String,
        /// At most this many (capped at [`MAX_PAGE`](crate::kv::MAX_PAGE)).
        limit: u32,
    },
    /// One value ([`KvAnswer::Value`]), or `not_found`.
    Get {
        /// The key.
        key: String,
    },
    /// Stores a value ([`KvAnswer::Done`]); the plugin's quota does not
    /// bind an admin.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes a key ([`KvAnswer::Done`]), or `not_found`.
    Delete {
        /// The key.
        key: String,
    },
}

/// The answer to a [`KvRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvAnswer {
    /// Keys, and where the next page starts.
    Page(crate::kv::KvPage),
    /// A value.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Done.
    Done,
}

/// An admin action on a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Start the worker (forgiving past failures); answered once it is
    /// ready or has failed to start.
    Start,
    /// Stop the worker; it stays stopped until started.
    Stop,
    /// Stop the worker, then start a new one.
    Restart,
    /// Allow the plugin to run again and start it (persists).
    Enable,
    /// Stop the plugin and keep it from running, across supervisor
    /// restarts, until enabled.
    Disable,
    /// Read the plugin's folder again and start a new generation beside
    /// the serving one; switch when it is ready, keep the old one if not.
    Reload,
}

impl Action {
    /// The action's name, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Reload => "reload",
        }
    }
}

/// The supervisor's response to [`Request`] with the same id. Id 0 carries
/// connection-level errors, after which the supervisor closes the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub reply: Reply,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A call's reply bytes.
    Called(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Status of every plugin.
    Plugins(Vec<PluginInfo>),
    /// The request failed.
    Error(RemoteError),
    /// Details of one plugin.
    Inspected(Box<PluginDetails>),
    /// A plugin's status after an admin action.
    Controlled(Box<PluginInfo>),
    /// Events, oldest first.
    Events(Vec<Event>),
    /// A publication was handed to this many subscribers.
    Published(u32),
    /// A subscription is in place; messages follow.
    Subscribed,
    /// A publication on a subscribed topic.
    Message(Message),
    /// Log lines, oldest first; `done` on the last chunk (never, when
    /// following).
    Logs {
        /// Lines, each `TIME pid=PID TEXT`.
        lines: Vec<String>,
        /// No more chunks follow.
        done: bool,
    },
    /// A direct channel is open (its socket travels with this frame).
    Direct(DirectChannel),
    /// The worker behind a direct channel stopped serving; the channel's
    /// calls that got no reply failed with `error` (`retired`: none did,
    /// a newer generation took over and they may be sent again).
    DirectEnded {
        /// Replaced by a newer generation (hot reload, install).
        retired: bool,
        /// Why the worker stopped, as calls in flight on it fail.
        error: RemoteError,
    },
    /// Crash reports, newest first.
    Crashes(Vec<super::CrashSummary>),
    /// One crash report.
    Crash(Box<super::CrashReport>),
    /// What an admin's storage request found or did.
    Kv(KvAnswer),
}

/// What a host app reports about the worker behind its direct channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectReport {
    /// It sent what the protocol forbids (`why`): the supervisor kills it.
    Broken {
        /// What it sent.
        why: String,
    },
    /// A call got no reply within the plugin's deadline: the supervisor
    /// pings the worker and kills it when it does not answer at once, as
    /// it kills a worker that misses a relayed call's deadline.
    Overdue,
}

/// A direct channel to a worker ([`RequestBody::Direct`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectChannel {
    /// The worker's pid.
    pub pid: u32,
    /// The plugin's deadline for one call, in milliseconds: a worker busy
    /// with a call for longer is killed.
    pub deadline_ms: u64,
    /// Largest frame body the worker accepts.
    pub max_frame: u32,
}

/// A publication, as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The topic it was published on.
    pub topic: String,
    /// Who published it: a plugin's name, or empty for a host app.
    pub from: String,
    /// Opaque payload bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Something that happened to a plugin, as `corral events` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event, from 1.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The plugin (empty for the supervisor itself).
    pub plugin: String,
    /// The plugin's generation then.
    pub generation: u64,
    /// What kind of thing happened.
    pub kind: EventKind,
    /// What happened, for people.
    pub detail: String,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The plugin's state changed (`detail`: `ready -> backoff`).
    State,
    /// A worker ended (`detail`: how, with the exit cause: crashes,
    /// limits hit, seccomp violations, stops).
    Exit,
    /// A new generation took over (hot reload).
    Reload,
    /// A reload failed; the old generation kept serving.
    ReloadFailed,
    /// A health check failed.
    Health,
    /// An admin action or signal.
    Admin,
    /// A client was refused for its uid, or a plugin asked for a host
    /// service its manifest does not grant.
    Denied,
    /// A plugin hit a limit that does not end its worker (its storage
    /// quota). Limits that end a worker are [`EventKind::Exit`]s.
    Limit,
}

impl EventKind {
    /// The kind's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Exit => "exit",
            Self::Reload => "reload",
            Self::ReloadFailed => "reload_failed",
            Self::Health => "health",
            Self::Admin => "admin",
            Self::Denied => "denied",
            Self::Limit => "limit",
        }
    }

    /// The kind named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::State,
            Self::Exit,
            Self::Reload,
            Self::ReloadFailed,
            Self::Health,
            Self::Admin,
            Self::Denied,
            Self::Limit,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// Where a plugin is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// Known and not running yet: waiting for its dependencies, for a
    /// worker slot (`max_plugins`), or for its first call (`start =
    /// "lazy"`).
    Installed,
    /// A worker is being started.
    Starting,
    /// The worker is serving calls.
    Ready,
    /// Ready, but failing its health checks.
    Unhealthy,
    /// The worker exited; waiting before the next start.
    Backoff,
    /// Failing again and again (5 failures in 5 minutes); still retried,
    /// at the backoff cap.
    Crashloop,
    /// The worker is being stopped.
    Stopping,
    /// No worker runs and none will be started.
    Stopped,
    /// The plugin cannot run (for example a bad manifest).
    Failed,
    /// Kept from running by an admin (`corral disable`).
    Disabled,
}

impl PluginState {
    /// The state's name, as shown by `corral ps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Unhealthy => "unhealthy",
            Self::Backoff => "backoff",
            Self::Crashloop => "crashloop",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }
}

/// Why a worker process ended, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCause {
    /// Exit code 0.
    Clean,
    /// A non-zero exit code.
    ExitCode,
    /// A signal nobody in corral sent (abort, segfault, `kill` by hand).
    Signal,
    /// The seccomp filter killed it (SIGSYS) for a forbidden syscall.
    Seccomp,
    /// `RLIMIT_CPU` ran out (SIGXCPU), or the watchdog saw sustained CPU
    /// use over `cpu_percent`.
    CpuLimit,
    /// The watchdog saw more threads than the `threads` limit.
    ThreadLimit,
    /// The kernel's OOM killer, at the cgroup's `memory.max`.
    OutOfMemory,
    /// `RLIMIT_FSIZE` was exceeded (SIGXFSZ).
    FileSizeLimit,
    /// The supervisor killed it: a call missed the plugin's deadline.
    CallDeadline,
    /// The supervisor killed it: it sent a bad frame or closed its channel.
    ProtocolViolation,
    /// The supervisor killed it: no `Ready` within the start deadline.
    StartDeadline,
    /// The supervisor killed it: its sandbox was not in force.
    Sandbox,
    /// The supervisor stopped it (shutdown, an admin, a hot reload).
    Stopped,
    /// The supervisor killed it: it failed `[health] failures` health
    /// checks in a row.
    Unhealthy,
}

impl ExitCause {
    /// The cause's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::ExitCode => "exit_code",
            Self::Signal => "signal",
            Self::Seccomp => "seccomp",
            Self::CpuLimit => "cpu_limit",
            Self::ThreadLimit => "thread_limit",
            Self::OutOfMemory => "out_of_memory",
            Self::FileSizeLimit => "file_size_limit",
            Self::CallDeadline => "call_deadline",
            Self::ProtocolViolation => "protocol_violation",
            Self::StartDeadline => "start_deadline",
            Self::Sandbox => "sandbox",
            Self::Stopped => "stopped",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// When the supervisor saw it, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Exit code, if the worker exited.
    pub code: Option<i32>,
    /// Signal number, if a signal killed it.
    pub signal: Option<i32>,
    /// The classified cause.
    pub cause: ExitCause,
    /// One line for people: `killed by SIGKILL`, `exited with code 3: ...`.
    pub description: String,
    /// The worker's last lines of stdout/stderr.
    pub output: Vec<String>,
}

/// The limits a worker runs under: the manifest's `[limits]` filled in
/// with the supervisor's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    /// `RLIMIT_DATA`, bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_CPU`, seconds; `None` = unlimited.
    pub cpu_seconds: Option<u64>,
    /// Sustained CPU use (percent of one core) above which the watchdog
    /// kills the worker; `None` = no watchdog.
    pub cpu_percent: Option<u64>,
    /// A call's deadline; a worker that misses it is killed.
    pub call_timeout_ms: u64,
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// Threads the worker may run.
    pub threads: u64,
    /// `RLIMIT_FSIZE`, bytes.
    pub file_size_bytes: u64,
    /// wasm only: fuel per call; 0 = none.
    pub wasm_fuel: u64,
    /// Quota of the host key-value storage (keys and values), bytes.
    pub storage_bytes: u64,
    /// Most keys the host key-value storage holds.
    pub storage_keys: u64,
}

/// Everything `corral inspect` shows about one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDetails {
    /// The status row.
    pub info: PluginInfo,
    /// The manifest file.
    pub manifest: String,
    /// Native or wasm.
    pub kind: PluginKind,
    /// The module, resolved.
    pub entry: String,
    /// `[permissions] read`, resolved.
    pub read: Vec<String>,
    /// `[permissions] write`, resolved.
    pub write: Vec<String>,
    /// `[permissions] network`.
    pub network: bool,
    /// The limits in force.
    pub limits: EffectiveLimits,
    /// The sandbox layers of the current (or last) worker.
    pub layers: Vec<Layer>,
    /// Recent exits, newest last.
    pub exits: Vec<ExitInfo>,
    /// `[permissions] host`: the host services it may use.
    pub host: Vec<String>,
    /// `[events] subscribe`: the topics it receives.
    pub subscribe: Vec<String>,
    /// `[[methods]]`: the declared methods, as (name, description).
    pub methods: Vec<(String, String)>,
    /// The effective `[config]` as TOML text: the manifest's defaults with
    /// corral.toml's overrides.
    pub config: String,
    /// `[permissions] syscalls`: what it may make beyond the baseline.
    pub syscalls: Vec<String>,
    /// Syscalls its workers were refused since the supervisor started (or,
    /// when profiling, made beyond the baseline), by name, most first.
    pub refused: Vec<Refusal>,
}

/// A syscall the seccomp policy stopped, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The syscall's name (`number N` for one this architecture does not
    /// name).
    pub syscall: String,
    /// Its tier: `refuse` (the worker got `EPERM`), or `kill` (profiling
    /// only: outside it, the worker dies of it).
    pub tier: crate::seccomp::Tier,
    /// How many times.
    pub count: u64,
}

/// One plugin's status, as `corral ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Plugin name (the folder name when the manifest could not be read).
    pub name: String,
    /// Plugin version from the manifest, if it could be read.
    pub version: Option<String>,
    /// The plugin's folder.
    pub dir: String,
    /// Lifecycle state.
    pub state: PluginState,
    /// The current worker's process id.
    pub pid: Option<u32>,
    /// Milliseconds the current worker has been ready.
    pub uptime_ms: Option<u64>,
    /// Microseconds the current worker took from spawn to Ready (as the
    /// supervisor measured it: fork or exec, sandbox, loading the plugin,
    /// `init`).
    pub start_us: Option<u64>,
    /// How many times a worker was started again after the first.
    pub restarts: u32,
    /// The serving worker's generation: 1 for the first, one more for each
    /// hot reload.
    pub generation: u64,
    /// The serving worker's resident memory, sampled every 250 ms.
    pub rss_bytes: Option<u64>,
    /// The serving worker's CPU use over the last 2 s, in percent of one
    /// core (known 2 s after it got ready).
    pub cpu_percent: Option<u32>,
    /// The plugin's memory limit (`memory_mb`, effective).
    pub memory_limit_bytes: Option<u64>,
    /// How the last worker ended.
    pub last_exit: Option<ExitInfo>,
    /// The latest error (bad manifest, failed start, ...).
    pub error: Option<String>,
    /// Calls since the supervisor started (all generations), host apps'
    /// and other plugins' alike.
    pub calls: u64,
    /// Of those, the failed ones by [`ErrorKind`](crate::ErrorKind) name,
    /// only kinds seen.
    pub errors: Vec<(String, u64)>,
    /// Calls in flight now.
    pub in_flight: u64,
    /// Median call latency in microseconds, as seen by the supervisor
    /// (within 10%); `None` before the first call.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile call latency in microseconds (within 10%).
    pub latency_p99_us: Option<u64>,
    /// The spare worker standing by (`[restart] spare`), if one is.
    pub spare_pid: Option<u32>,
    /// `[plugin] provides`: the extension points it serves.
    pub provides: Vec<String>,
    /// How the current worker was started.
    pub spawn_mode: Option<SpawnMode>,
}

/// How a worker process was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnMode {
    /// Forked from the pre-initialized zygote of its worker binary.
    Zygote,
    /// Executed afresh (`[restart] fresh_exec`, or no zygote available).
    Exec,
}

impl SpawnMode {
    /// `zygote` or `exec`, as `corral ps` and `--json` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zygote => "zygote",
            Self::Exec => "exec",
        }
    }
}

impl PluginInfo {
    /// A plugin in `state` of which nothing else is known (no worker, no
    /// calls yet): the start of every status row.
    pub fn new(name: impl Into<String>, dir: impl Into<String>, state: PluginState) -> Self {
        Self {
            name: name.into(),
            version: None,
            dir: dir.into(),
            state,
            pid: None,
            uptime_ms: None,
            start_us: None,
            restarts: 0,
            generation: 0,
            rss_bytes: None,
            cpu_percent: None,
            memory_limit_bytes: None,
            last_exit: None,
            error: None,
            calls: 0,
            errors: Vec::new(),
            in_flight: 0,
            latency_p50_us: None,
            latency_p99_us: None,
            spare_pid: None,
            provides: Vec::new(),
            spawn_mode: None,
        }
    }
}
