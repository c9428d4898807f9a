//! The messages between the supervisor and its workers: the supervisor's
//! [`Hello`] and the worker's [`Ready`], then [`ToWorker`] and
//! [`FromWorker`] frames. Field order is the wire format: add new fields at
//! the end of a struct and new variants at the end of an enum, and bump
//! [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION) when a peer of the old
//! version could not read them.

use crate::error::RemoteError;
use serde::{Deserialize, Serialize};

/// What kind of module a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// A shared library exporting the native C ABI.
    Native,
    /// A WebAssembly module.
    Wasm,
    /// A JavaScript module (ES module bundle), run by an embedded engine.
    Js,
}

impl PluginKind {
    /// The kind as plugin.toml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Wasm => "wasm",
            Self::Js => "js",
        }
    }
}

/// The supervisor's first frame to a worker. A memfd travels with it:
/// the worker's [`StatsPage`](super::StatsPage), where it counts the calls
/// of its direct channels for the supervisor to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must stay the first field: read on its own when the rest is foreign.
    pub protocol: u32,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// The kind of module to load.
    pub kind: PluginKind,
    /// Link WASI preview 1 (wasm only), preopening `read` and `write`.
    pub wasi: bool,
    /// The plugin's folder (the worker's working folder): WASI names a
    /// permitted path inside it as the manifest does, relative.
    pub dir: String,
    /// Absolute path of the module to load (for messages, and for loading
    /// when `entry_fd` is `None`).
    pub entry: String,
    /// The module, already opened by the supervisor, at this fd.
    pub entry_fd: Option<i32>,
    /// Largest frame body either side may send.
    pub max_frame: u32,
    /// Absolute paths the plugin may read (Landlock), besides its module.
    pub read: Vec<String>,
    /// Absolute paths the plugin may read and write (Landlock).
    pub write: Vec<String>,
    /// Whether the plugin may create sockets.
    pub network: bool,
    /// The guest memory limit of a wasm plugin, in bytes.
    pub memory_bytes: u64,
    /// A folder (readable and writable by the worker) where a wasm worker
    /// keeps its compiled module between starts.
    pub cache_dir: Option<String>,
    /// wasm only: fuel per call; 0 = no fuel metering.
    pub wasm_fuel: u64,
    /// Start as a spare: apply the sandbox, answer
    /// [`FromWorker::Standby`], and load the plugin only on
    /// [`ToWorker::Activate`].
    pub standby: bool,
    /// The plugin's effective `[config]` as TOML text: the manifest's
    /// defaults with corral.toml's overrides (`Host::config`).
    pub config: String,
    /// Wait for a debugger (`corral serve --debug`): stop with SIGSTOP
    /// once the sandbox is in force, before the plugin is loaded.
    pub debug: bool,
    /// `[permissions] syscalls`: refused syscalls this plugin may make.
    pub syscalls: Vec<String>,
    /// Profile the plugin's syscalls (`corral profile`): whatever the
    /// baseline does not allow is referred to the supervisor, which lets
    /// it through (or refuses a killing one) and records it; nothing kills.
    pub profile: bool,
    /// A socket to hand the seccomp listener to the supervisor on (see
    /// [`crate::seccomp`]); without one, refused syscalls fail with
    /// `EPERM` in the kernel, uncounted.
    pub listener_fd: Option<i32>,
    /// What the worker's flight recorder (in its stats page) keeps of its
    /// last calls, for a crash report.
    pub recording: super::Recording,
    /// The manifest's `[[methods]]` names: when any are declared, a call
    /// of another method on a direct channel is refused, as the supervisor
    /// refuses it on its own channel.
    pub methods: Vec<String>,
}

/// The worker's answer to [`Hello`] once the plugin is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Must stay the first field of the first variant of [`FromWorker`].
    pub protocol: u32,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub version: String,
    /// The sandbox layers the worker applied to itself.
    pub layers: Vec<Layer>,
}

/// One sandbox layer and whether it is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The layer: `seccomp`, `landlock`, `no_new_privs`, ...
    pub name: String,
    /// Whether it is fully in force.
    pub active: bool,
    /// What it does here, or why it is missing.
    pub detail: String,
}

/// A call of a plugin method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Chosen by the supervisor; the reply carries it back.
    pub id: u64,
    /// The plugin method.
    pub method: String,
    /// Opaque input bytes.
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
    /// Time the caller allows for the call, in milliseconds.
    pub deadline_ms: u32,
}

/// A [`ToWorker::Call`] frame to encode from borrowed parts, so that a
/// caller keeps its input (to send again elsewhere) without a copy: it
/// encodes exactly as `ToWorker::Call(Call { .. })` does.
#[derive(Debug, Serialize)]
pub enum CallFrame<'a> {
    /// Must stay variant 0, as [`ToWorker::Call`] is.
    Call {
        /// See [`Call::id`].
        id: u64,
        /// See [`Call::method`].
        method: &'a str,
        /// See [`Call::input`].
        #[serde(with = "serde_bytes")]
        input: &'a [u8],
        /// See [`Call::deadline_ms`].
        deadline_ms: u32,
    },
}

/// Where a payload lies in its sender's arena (see `wire::Arena`): on
/// direct channels only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The segment, numbered from 0 in the order they were sent.
    pub segment: u32,
    /// The first byte's offset in the segment.
    pub offset: u64,
    /// The payload's length in bytes.
    pub len: u64,
}

/// Frames from the supervisor to a worker, after [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Call a plugin method; answered by [`FromWorker::Reply`].
    Call(Call),
    /// Liveness check; answered by [`FromWorker::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Release the plugin and exit 0.
    Shutdown,
    /// The answer to [`FromWorker::HostCall`] with the same id.
    HostReply {
        /// The host call's id.
        id: u64,
        /// What the service returned.
        outcome: Outcome,
    },
    /// A spare (see [`FromWorker::Standby`]) is to load its plugin now;
    /// answered like a [`Hello`]: `Ready` or `Failed`.
    Activate,
    /// A fault a test asked for (`corral serve --faults`); not answered.
    Fault(Fault),
    /// A direct channel to a host app: its socket travels with this
    /// frame. The worker serves [`ToWorker::Call`] frames from it next to
    /// this channel's, replies on it, and says [`FromWorker::Goodbye`] on
    /// it before it exits after [`ToWorker::Shutdown`].
    Attach,
    /// On a direct channel: a call whose input is a slot of the host
    /// app's arena (`call.input` is empty); the slot's segment fd travels
    /// with the first frame that names it.
    CallIn {
        /// The call.
        call: Call,
        /// Its input.
        slot: Slot,
    },
    /// On a direct channel: the host app is done with these replies (see
    /// [`FromWorker::ReplyIn`]); their slots may be reused.
    Release {
        /// The replies' slots.
        slots: Vec<Slot>,
    },
}

/// A fault a test injects into a worker, to see what the supervisor and
/// the host app do (only when the supervisor runs with `--faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The worker aborts (SIGABRT) when its next call arrives, that call
    /// in flight.
    CrashOnNextCall,
    /// The worker allocates and touches memory until its memory limit
    /// refuses more, and dies of it.
    FillMemory,
}

/// A plugin's request for a host service (`kv_get:KEY`, `publish:TOPIC`,
/// `call:PLUGIN/METHOD`, ...), made while it serves call `call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCall {
    /// The [`Call`] the plugin is serving (0: none, e.g. during `init`):
    /// its deadline bounds the service, and it tells the supervisor who
    /// called whom.
    pub call: u64,
    /// Chosen by the worker; the [`ToWorker::HostReply`] carries it back.
    pub id: u64,
    /// The service and its argument, `NAME:ARG`.
    pub op: String,
    /// The service's input bytes (a value to store, a payload).
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
}

/// The result of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The reply bytes.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Why the call failed.
    Err(RemoteError),
}

/// Frames from a worker to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The plugin is loaded; the first frame on success.
    Ready(Ready),
    /// The worker cannot start; the first frame on failure, then it exits.
    Failed {
        /// Why, for the supervisor's status and log.
        message: String,
    },
    /// The result of [`ToWorker::Call`] with the same id.
    Reply {
        /// The call's id.
        id: u64,
        /// What the plugin returned.
        outcome: Outcome,
    },
    /// Answer to [`ToWorker::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The seccomp filter caught a forbidden syscall; the worker dies by
    /// SIGSYS right after sending this. Written from a signal handler by
    /// [`violation_frame`](super::violation_frame): keep it variant 4 with
    /// one `u32` field.
    Violation {
        /// The syscall number.
        syscall: u32,
    },
    /// The plugin asks for a host service; answered by
    /// [`ToWorker::HostReply`].
    HostCall(HostCall),
    /// A spare's answer to a [`Hello`] with `standby` set: the sandbox is
    /// in force and no plugin code is loaded; [`ToWorker::Activate`] next.
    Standby,
    /// The last frame on a direct channel of a worker that is shutting
    /// down: every call read from the channel has been answered, and
    /// nothing more is read, so calls without a reply may be sent again
    /// (to the worker that replaced this one).
    Goodbye,
    /// On a direct channel: the successful reply to a call, in a slot of
    /// the worker's arena, lent to the host app until it says
    /// [`ToWorker::Release`].
    ReplyIn {
        /// The call's id.
        id: u64,
        /// The reply.
        slot: Slot,
    },
}

impl FromWorker {
    /// The variant's name, for messages that must not dump a whole frame.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ready(_) => "Ready",
            Self::Failed { .. } => "Failed",
            Self::Reply { .. } => "Reply",
            Self::Pong { .. } => "Pong",
            Self::Violation { .. } => "Violation",
            Self::HostCall(_) => "HostCall",
            Self::Standby => "Standby",
            Self::Goodbye => "Goodbye",
            Self::ReplyIn { .. } => "ReplyIn",
        }
    }
}
