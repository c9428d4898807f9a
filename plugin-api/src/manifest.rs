//! `plugin.toml`: the manifest every plugin folder holds, parsed and
//! validated without touching the file system.
//!
//! Every key, with its default:
//!
//! ```toml
//! [plugin]
//! name = "hello"          # 1-64 of a-z 0-9 -, not starting with -
//! version = "1.2.0"       # semver
//! kind = "native"         # native | wasm
//! wasi = false            # wasm only: link WASI preview 1 (wasm32-wasip1)
//! entry = "libhello.so"   # relative to the manifest's folder, no ".."; wasm: *.wasm or *.wat
//! api = 1                 # plugin ABI version
//! requires = ">=0.1"      # supervisor versions this plugin works with (default: any)
//! # sha256: the entry's SHA-256, checked before every load (`corral check` prints it)
//! sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! start = "eager"         # eager | lazy (the first call starts the worker)
//! provides = ["exporter"] # extension points it serves: host apps find plugins by them
//!
//! [[methods]]             # the methods it serves; when listed, others are refused
//! name = "export"
//! description = "Writes the document as PDF"   # one line
//!
//! [config]                # its settings and their defaults, any TOML; corral.toml
//! dpi = 300               # overrides them in [plugins.NAME.config]
//!
//! [dependencies]          # other plugins, by name: semver ranges
//! storage = "^1.2"
//!
//! [permissions]           # default: nothing
//! read = ["data"]         # readable paths (relative to the folder, or absolute)
//! write = ["data/out"]    # readable and writable paths
//! network = false         # sockets and the host network
//! host = ["kv", "publish", "call:storage"]  # host services: log, now, kv, publish, call:DEPENDENCY
//!
//! [events]
//! subscribe = ["orders.*"]  # topics delivered to on_event: exact names, or a prefix ending in *
//!
//! [limits]                # unset ones take the supervisor's defaults
//! memory_mb = 64          # 16 to 1048576
//! call_timeout_ms = 5000  # 1 to 86400000
//! cpu_seconds = 10        # 1 to 4294967296
//! cpu_percent = 50        # 1 to 102400
//! open_files = 64         # 8 to 1048576
//! threads = 16            # 1 to 65536
//! file_size_mb = 64       # 1 to 1073741824
//! wasm_fuel = 0           # wasm only; 0 = off
//! storage_mb = 16         # host key-value storage quota, 1 to 1048576
//!
//! [restart]
//! policy = "always"       # always | on-failure | never
//! give_up_after = 10      # failures in a row before state failed, 1 to 1000 (default: never)
//! backoff_ms = 1000       # delay after the 2nd failure, doubling; 1 to 3600000
//! backoff_max_ms = 60000  # cap of the delay; backoff_ms to 3600000
//! spare = false           # keep a sandboxed spare worker for a fast restart
//!
//! [health]
//! interval_ms = 10000     # period of the health call; 0 = none, else 100 to 3600000
//! timeout_ms = 1000       # deadline of one health call, 1 to 600000
//! failures = 3            # failed checks in a row before a restart, 1 to 100
//! ```
//!
//! Unknown keys are errors. Every error names the file, the line and
//! column, the key and what is expected. [`LimitsTable`] and
//! [`ManifestError::from_toml`] let other corral TOML files (the
//! supervisor's `corral.toml`) share the same checks and messages.

use crate::abi::ABI_VERSION;
use crate::wire::PluginKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Longest method name in `[[methods]]`.
pub const MAX_METHOD_LEN: usize = 128;
/// Longest `[[methods]] description`.
pub const MAX_DESCRIPTION_LEN: usize = 200;
/// Largest `[config]`, as TOML text.
pub const MAX_CONFIG_LEN: usize = 64 * 1024;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Plugin name, unique within a supervisor.
    pub name: String,
    /// Plugin version.
    pub version: semver::Version,
    /// Native library or wasm module.
    pub kind: PluginKind,
    /// A wasm module built for `wasm32-wasip1`: the worker links WASI
    /// preview 1, with the `[permissions]` folders preopened and nothing
    /// else (no environment, no sockets). Off by default; wasm only.
    pub wasi: bool,
    /// The module, relative to the manifest's folder; never absolute and
    /// never leaving the folder. A wasm plugin's ends in `.wasm` or `.wat`,
    /// a native plugin's in neither.
    pub entry: PathBuf,
    /// Plugin ABI version.
    pub api: u32,
    /// `[plugin] requires`: the supervisor versions this plugin works
    /// with; `None` = any.
    pub requires: Option<semver::VersionReq>,
    /// `[plugin] sha256`: lowercase hex SHA-256 of the entry file, checked
    /// before every load.
    pub sha256: Option<String>,
    /// `[plugin] start`: `eager` (at serve time, the default) or `lazy`
    /// (the first call starts the worker).
    pub start: StartMode,
    /// `[plugin] provides`: the extension points the plugin serves
    /// (`"exporter"`, `"spellcheck"`): host apps look plugins up by them.
    pub provides: Vec<String>,
    /// `[[methods]]`: the methods the plugin declares, in file order. When
    /// any are declared, calls of other methods are refused before they
    /// reach the worker.
    pub methods: Vec<Method>,
    /// `[config]`: the plugin's settings with their defaults, delivered to
    /// it at init (`Host::config`); corral.toml overrides them
    /// (`[plugins.NAME.config]`).
    pub config: toml::Table,
    /// `[dependencies]`: other plugins this one needs, by name, with the
    /// versions it works with. Never names the plugin itself.
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// What the plugin may touch (`[permissions]`); nothing by default.
    pub permissions: Permissions,
    /// `[events] subscribe`: topic patterns whose publications the plugin
    /// receives (`on_event`).
    pub subscribe: Vec<String>,
    /// Limits the plugin asks for (`[limits]`); unset ones take the
    /// supervisor's defaults.
    pub limits: Limits,
    /// `[restart]`: what happens when the worker dies or fails to start.
    pub restart: RestartSettings,
    /// `[health]`: the periodic health call.
    pub health: HealthSettings,
}

/// One `[[methods]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The method's name, as callers pass it.
    pub name: String,
    /// One line on what it does (may be empty).
    pub description: String,
}

/// When a plugin's worker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// When the supervisor starts (`start = "eager"`).
    #[default]
    Eager,
    /// On the first call (`start = "lazy"`).
    Lazy,
}

impl StartMode {
    /// The manifest spelling: `eager` or `lazy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eager => "eager",
            Self::Lazy => "lazy",
        }
    }
}

/// Whether a worker that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// After any exit (`policy = "always"`).
    #[default]
    Always,
    /// After an exit that was not clean: a crash, a kill, a non-zero
    /// exit code (`policy = "on-failure"`).
    OnFailure,
    /// Never: the plugin stays down until an admin starts it
    /// (`policy = "never"`).
    Never,
}

impl RestartPolicy {
    /// The manifest spelling: `always`, `on-failure` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::Never => "never",
        }
    }
}

/// `[restart]`: restart policy and backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartSettings {
    /// When to restart.
    pub policy: RestartPolicy,
    /// Give up (state failed) after this many consecutive failed
    /// starts/crashes; `None` = never give up. 1 to 1000.
    pub give_up_after: Option<u32>,
    /// Delay after the 2nd failure; doubles each time (the first restart
    /// is immediate). Default 1000, 1 to 3 600 000.
    pub backoff_ms: u64,
    /// Cap of the delay. Default 60 000, `backoff_ms` to 3 600 000.
    pub backoff_max_ms: u64,
    /// Keep a spare worker, spawned and sandboxed but with no plugin code
    /// loaded, so that a restart only loads the plugin. Default false.
    pub spare: bool,
}

impl Default for RestartSettings {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::Always,
            give_up_after: None,
            backoff_ms: 1_000,
            backoff_max_ms: 60_000,
            spare: false,
        }
    }
}

/// `[health]`: the periodic `health` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Period of the health call; 0 = no health checks. Default 10 000;
    /// 0, or 100 to 3 600 000.
    pub interval_ms: u64,
    /// Deadline of one health call. Default 1000, 1 to 600 000.
    pub timeout_ms: u64,
    /// Consecutive failed checks after which the worker is restarted.
    /// Default 3, 1 to 100.
    pub failures: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            timeout_ms: 1_000,
            failures: 3,
        }
    }
}

/// `[permissions]`: what the plugin may touch beyond its own module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Paths the plugin may read (relative to its folder, or absolute).
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Paths the plugin may read and write.
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// Whether the plugin may use the network (sockets, no network
    /// namespace).
    #[serde(default)]
    pub network: bool,
    /// The host services the plugin may use.
    #[serde(default)]
    pub host: Vec<HostGrant>,
}

/// A host service a plugin may use: an entry of `[permissions] host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum HostGrant {
    /// `log`: always allowed (stdout and stderr are captured anyway);
    /// accepted for clarity.
    Log,
    /// `now`: always allowed; accepted for clarity.
    Now,
    /// `kv`: the plugin's own key-value storage.
    Kv,
    /// `publish`: publishing on any topic.
    Publish,
    /// `call:PLUGIN`: calls into `PLUGIN`, which must be a dependency.
    Call(String),
}

impl TryFrom<String> for HostGrant {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Ok(match text.as_str() {
            "log" => Self::Log,
            "now" => Self::Now,
            "kv" => Self::Kv,
            "publish" => Self::Publish,
            other => {
                match other.strip_prefix("call:") {
                    Some(plugin) => {
                        check_name(plugin).map_err(|problem| {
                        format!("[permissions] host: {other:?}: `call:` takes a plugin name: {problem}")
                    })?;
                        Self::Call(plugin.to_owned())
                    }
                    None => {
                        return Err(format!(
                            "[permissions] host: unknown host service {other:?}: expected \"log\", \"now\", \"kv\", \"publish\" or \"call:PLUGIN\""
                        ));
                    }
                }
            }
        })
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log => f.write_str("log"),
            Self::Now => f.write_str("now"),
            Self::Kv => f.write_str("kv"),
            Self::Publish => f.write_str("publish"),
            Self::Call(plugin) => write!(f, "call:{plugin}"),
        }
    }
}

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 128;

/// Checks a topic name (1 to 128 of `a-z A-Z 0-9 . _ / -`); with
/// `pattern`, a trailing `*` matches any rest (`orders.*`, `*`).
pub fn check_topic(topic: &str, pattern: bool) -> Result<(), String> {
    let name = match topic.strip_suffix('*') {
        Some(prefix) if pattern => prefix,
        _ => topic,
    };
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(format!("a topic is 1 to {MAX_TOPIC_LEN} characters"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        Some(c) if c == '*' && pattern => Err("`*` may only end a topic pattern".to_owned()),
        Some(c) => Err(format!(
            "{c:?} is not allowed in a topic: use a-z A-Z 0-9 . _ / -{}",
            if pattern { " (and a trailing *)" } else { "" }
        )),
        None => Ok(()),
    }
}

/// Whether topic `pattern` (from [`check_topic`] with `pattern`) matches
/// `topic`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

/// `[limits]`: each `None` takes the supervisor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Data memory (heap) in MiB: `RLIMIT_DATA`.
    pub memory_mb: Option<u64>,
    /// CPU time in seconds over the worker's life: `RLIMIT_CPU`.
    pub cpu_seconds: Option<u64>,
    /// Sustained CPU use, in percent of one core, above which the
    /// supervisor's watchdog kills the worker.
    pub cpu_percent: Option<u64>,
    /// Deadline of one call in milliseconds; a worker that misses it is
    /// killed.
    pub call_timeout_ms: Option<u64>,
    /// Open file descriptors: `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// Threads and processes: `RLIMIT_NPROC` (needs a per-worker uid).
    pub threads: Option<u64>,
    /// Largest file the plugin may write, in MiB: `RLIMIT_FSIZE`.
    pub file_size_mb: Option<u64>,
    /// wasm only: fuel (about one unit per instruction) a call may burn;
    /// `0` or unset = no fuel metering, the deadline alone.
    pub wasm_fuel: Option<u64>,
    /// Quota of the host key-value storage, in MiB (keys and values).
    pub storage_mb: Option<u64>,
}

impl Limits {
    /// Every `[limits]` key with the values it accepts (inclusive), in
    /// the order of the reference.
    pub const RANGES: [(&'static str, u64, u64); 9] = [
        ("memory_mb", 16, 1 << 20),
        ("call_timeout_ms", 1, 24 * 3_600_000),
        ("cpu_seconds", 1, 1 << 32),
        ("cpu_percent", 1, 100 * 1024),
        ("open_files", 8, 1 << 20),
        ("threads", 1, 1 << 16),
        ("file_size_mb", 1, 1 << 30),
        ("wasm_fuel", 0, u64::MAX),
        ("storage_mb", 1, 1 << 20),
    ];
}

/// A `[limits]` table as written, with where each value stands: deserialize
/// it as part of a TOML document, then [`validate`](Self::validate) it
/// against the document's text. Shared by `plugin.toml` and the
/// supervisor's `corral.toml`, so both accept the same keys and ranges.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsTable {
    memory_mb: Option<Spanned<u64>>,
    cpu_seconds: Option<Spanned<u64>>,
    cpu_percent: Option<Spanned<u64>>,
    call_timeout_ms: Option<Spanned<u64>>,
    open_files: Option<Spanned<u64>>,
    threads: Option<Spanned<u64>>,
    file_size_mb: Option<Spanned<u64>>,
    wasm_fuel: Option<Spanned<u64>>,
    storage_mb: Option<Spanned<u64>>,
}

impl LimitsTable {
    /// Checks every value against [`Limits::RANGES`]; `text` is the whole
    /// document this table was read from and `path` its file, for the
    /// error's position.
    pub fn validate(self, path: &Path, text: &str) -> Result<Limits, ManifestError> {
        let range = |value: Option<Spanned<u64>>, key: &str| {
            let (_, min, max) = Limits::RANGES
                .into_iter()
                .find(|(name, _, _)| *name == key)
                .expect("every limit has a range");
            checked(value, "[limits]", key, min..=max, "")
                .map_err(|(span, message)| ManifestError::at(path, text, Some(span), message))
        };
        Ok(Limits {
            memory_mb: range(self.memory_mb, "memory_mb")?,
            cpu_seconds: range(self.cpu_seconds, "cpu_seconds")?,
            cpu_percent: range(self.cpu_percent, "cpu_percent")?,
            call_timeout_ms: range(self.call_timeout_ms, "call_timeout_ms")?,
            open_files: range(self.open_files, "open_files")?,
            threads: range(self.threads, "threads")?,
            file_size_mb: range(self.file_size_mb, "file_size_mb")?,
            wasm_fuel: range(self.wasm_fuel, "wasm_fuel")?,
            storage_mb: range(self.storage_mb, "storage_mb")?,
        })
    }
}

/// `value` when it lies in `range`; otherwise the error `[table] key =
/// value: expected MIN to MAX` (`what` replaces the `MIN to MAX` part when
/// not empty), with the value's span.
fn checked(
    value: Option<Spanned<u64>>,
    table: &str,
    key: &str,
    range: RangeInclusive<u64>,
    what: &str,
) -> Result<Option<u64>, (Range<usize>, String)> {
    match value {
        Some(value) if !range.contains(value.get_ref()) => {
            let expected = if what.is_empty() {
                format!("{} to {}", range.start(), range.end())
            } else {
                what.to_owned()
            };
            Err((
                value.span(),
                format!("{table} {key} = {}: expected {expected}", value.get_ref()),
            ))
        }
        value => Ok(value.map(Spanned::into_inner)),
    }
}

/// A manifest (or another corral TOML file, such as `corral.toml`) that
/// cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ManifestError {
    /// An error about the text at `span` (byte offsets) of `text`, the
    /// contents of `path`.
    pub fn at(path: &Path, text: &str, span: Option<Range<usize>>, message: String) -> Self {
        Self {
            path: path.to_owned(),
            position: span.map(|span| line_column(text, span.start)),
            message,
        }
    }

    /// A TOML syntax or type error in `text` (the contents of `path`),
    /// with the `[table] key` it is about when that can be told.
    pub fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = match error.span().and_then(|span| key_at(text, span.start)) {
            Some(key) if !error.message().contains("unknown field") => {
                format!("{key}: {}", error.message())
            }
            _ => error.message().to_owned(),
        };
        Self::at(path, text, error.span(), message)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    plugin: RawPlugin,
    #[serde(default)]
    dependencies: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    permissions: Permissions,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    limits: LimitsTable,
    #[serde(default)]
    restart: RawRestart,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    methods: Vec<RawMethod>,
    config: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    name: Spanned<String>,
    description: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    version: Spanned<String>,
    kind: PluginKind,
    wasi: Option<Spanned<bool>>,
    entry: Spanned<String>,
    api: Spanned<u32>,
    requires: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    #[serde(default)]
    provides: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    policy: Option<Spanned<String>>,
    give_up_after: Option<Spanned<u64>>,
    backoff_ms: Option<Spanned<u64>>,
    backoff_max_ms: Option<Spanned<u64>>,
    spare: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default)]
    subscribe: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    interval_ms: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    failures: Option<Spanned<u64>>,
}

/// Longest delay `[restart]` and `[health]` accept: one hour.
const MAX_DELAY_MS: u64 = 3_600_000;

impl Manifest {
    /// Parses and validates manifest `text`; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let error = |span: Range<usize>, message: String| {
            ManifestError::at(path, text, Some(span), message)
        };
        let spanned = |(span, message): (Range<usize>, String)| error(span, message);
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(path, text, &e))?;
        let plugin = raw.plugin;

        let name = plugin.name.get_ref();
        if let Err(problem) = check_name(name) {
            return Err(error(
                plugin.name.span(),
                format!("[plugin] name = {name:?}: {problem}"),
            ));
        }
        let version = semver::Version::parse(plugin.version.get_ref()).map_err(|e| {
            error(
                plugin.version.span(),
                format!(
                    "[plugin] version = {:?}: not a semver version like \"1.2.0\": {e}",
                    plugin.version.get_ref()
                ),
            )
        })?;
        let kind = plugin.kind;
        let entry = check_entry(plugin.entry.get_ref(), kind).map_err(|problem| {
            error(
                plugin.entry.span(),
                format!("[plugin] entry = {:?}: {problem}", plugin.entry.get_ref()),
            )
        })?;
        let api = *plugin.api.get_ref();
        if api != ABI_VERSION {
            return Err(error(
                plugin.api.span(),
                format!("[plugin] api = {api}: this corral speaks plugin ABI {ABI_VERSION}"),
            ));
        }
        let wasi = match plugin.wasi {
            Some(wasi) if *wasi.get_ref() && kind != PluginKind::Wasm => {
                return Err(error(
                    wasi.span(),
                    "[plugin] wasi = true: WASI is for wasm plugins; set kind = \"wasm\" or remove `wasi`"
                        .to_owned(),
                ));
            }
            wasi => wasi.is_some_and(|wasi| *wasi.get_ref()),
        };
        let requires = plugin
            .requires
            .map(|requires| {
                parse_range(requires.get_ref()).map_err(|e| {
                    error(
                        requires.span(),
                        format!(
                            "[plugin] requires = {:?}: not a semver range of corral versions like \">=0.1\": {e}",
                            requires.get_ref()
                        ),
                    )
                })
            })
            .transpose()?;
        let sha256 = plugin
            .sha256
            .map(|sha256| {
                check_sha256(sha256.get_ref()).ok_or_else(|| {
                    error(
                        sha256.span(),
                        format!(
                            "[plugin] sha256 = {:?}: expected 64 hex digits, the SHA-256 of the entry file (`corral check` prints it)",
                            sha256.get_ref()
                        ),
                    )
                })
            })
            .transpose()?;
        let start = match plugin.start {
            None => StartMode::default(),
            Some(start) => match start.get_ref().as_str() {
                "eager" => StartMode::Eager,
                "lazy" => StartMode::Lazy,
                other => {
                    return Err(error(
                        start.span(),
                        format!("[plugin] start = {other:?}: expected \"eager\" or \"lazy\""),
                    ));
                }
            },
        };

        let mut dependencies = BTreeMap::new();
        for (dependency, range) in raw.dependencies {
            let (dependency_span, dependency) = (dependency.span(), dependency.into_inner());
            if let Err(problem) = check_name(&dependency) {
                return Err(error(
                    dependency_span,
                    format!(
                        "[dependencies] {dependency} = {:?}: the name of a plugin: {problem}",
                        range.get_ref()
                    ),
                ));
            }
            if dependency == *name {
                return Err(error(
                    dependency_span,
                    format!(
                        "[dependencies] {dependency} = {:?}: a plugin cannot depend on itself",
                        range.get_ref()
                    ),
                ));
            }
            let req = parse_range(range.get_ref()).map_err(|e| {
                error(
                    range.span(),
                    format!(
                        "[dependencies] {dependency} = {:?}: not a semver range like \"^1.2\": {e}",
                        range.get_ref()
                    ),
                )
            })?;
            dependencies.insert(dependency, req);
        }

        let undeclared = raw.permissions.host.iter().find_map(|grant| match grant {
            HostGrant::Call(target) if !dependencies.contains_key(target) => Some((grant, target)),
            _ => None,
        });
        if let Some((grant, target)) = undeclared {
            let quoted = format!("\"{grant}\"");
            let span = text.find(&quoted).map(|at| at..at + quoted.len());
            return Err(ManifestError::at(
                path,
                text,
                span,
                format!(
                    "[permissions] host: {quoted}: `{target}` is not in [dependencies]; add `{target} = \"VERSION RANGE\"` there"
                ),
            ));
        }
        let mut subscribe = Vec::new();
        for topic in raw.events.subscribe {
            if let Err(problem) = check_topic(topic.get_ref(), true) {
                return Err(error(
                    topic.span(),
                    format!("[events] subscribe: {:?}: {problem}", topic.get_ref()),
                ));
            }
            subscribe.push(topic.into_inner());
        }

        let provides = extension_points(plugin.provides).map_err(spanned)?;
        let methods = methods(raw.methods).map_err(spanned)?;
        let (config_span, config) = raw
            .config
            .map_or((0..0, toml::Table::new()), |c| (c.span(), c.into_inner()));
        let rendered = toml::to_string(&config).map_or(0, |text| text.len());
        if rendered > MAX_CONFIG_LEN {
            return Err(error(
                config_span,
                format!(
                    "[config]: {rendered} bytes as TOML, over the {MAX_CONFIG_LEN} corral passes to a plugin; keep large data in files under [permissions] read"
                ),
            ));
        }

        let limits = raw.limits.validate(path, text)?;
        let restart = restart_settings(raw.restart).map_err(spanned)?;
        let health = health_settings(raw.health).map_err(spanned)?;
        Ok(Self {
            name: name.clone(),
            version,
            kind,
            wasi,
            entry,
            api,
            requires,
            sha256,
            start,
            provides,
            methods,
            config,
            dependencies,
            permissions: raw.permissions,
            subscribe,
            limits,
            restart,
            health,
        })
    }
}

fn extension_points(raw: Vec<Spanned<String>>) -> Result<Vec<String>, (Range<usize>, String)> {
    let mut provides: Vec<String> = Vec::new();
    for point in raw {
        let (span, point) = (point.span(), point.into_inner());
        if let Err(problem) = check_name(&point) {
            return Err((span, format!("[plugin] provides: {point:?}: {problem}")));
        }
        if provides.contains(&point) {
            return Err((
                span,
                format!("[plugin] provides: {point:?} is listed twice"),
            ));
        }
        provides.push(point);
    }
    Ok(provides)
}

fn methods(raw: Vec<RawMethod>) -> Result<Vec<Method>, (Range<usize>, String)> {
    let mut methods: Vec<Method> = Vec::new();
    for method in raw {
        let (span, name) = (method.name.span(), method.name.into_inner());
        if let Err(problem) = check_method(&name) {
            return Err((span, format!("[[methods]] name = {name:?}: {problem}")));
        }
        if methods.iter().any(|m| m.name == name) {
            return Err((span, format!("[[methods]] name = {name:?}: declared twice")));
        }
        let description = match method.description {
            None => String::new(),
            Some(description) => {
                let (span, description) = (description.span(), description.into_inner());
                if description.contains(['\n', '\r']) || description.len() > MAX_DESCRIPTION_LEN {
                    return Err((
                        span,
                        format!(
                            "[[methods]] description of {name:?}: expected one line of at most {MAX_DESCRIPTION_LEN} bytes"
                        ),
                    ));
                }
                description
            }
        };
        methods.push(Method { name, description });
    }
    Ok(methods)
}

/// Checks a method name a plugin declares: 1 to 128 bytes, no spaces or
/// control characters, not starting with `@` (reserved for corral's own
/// calls, such as events).
pub fn check_method(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_METHOD_LEN {
        return Err(format!("expected 1 to {MAX_METHOD_LEN} bytes"));
    }
    if name.starts_with('@') {
        return Err("names starting with '@' are reserved for corral".to_owned());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("no spaces or control characters".to_owned());
    }
    Ok(())
}

fn restart_settings(raw: RawRestart) -> Result<RestartSettings, (Range<usize>, String)> {
    let defaults = RestartSettings::default();
    let policy = match raw.policy {
        None => defaults.policy,
        Some(policy) => match policy.get_ref().as_str() {
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            "never" => RestartPolicy::Never,
            other => {
                return Err((
                    policy.span(),
                    format!(
                        "[restart] policy = {other:?}: expected \"always\", \"on-failure\" or \"never\""
                    ),
                ));
            }
        },
    };
    let give_up_after = checked(
        raw.give_up_after,
        "[restart]",
        "give_up_after",
        1..=1000,
        "",
    )?
    .map(|n| u32::try_from(n).expect("at most 1000"));
    let backoff_span = raw.backoff_ms.as_ref().map(Spanned::span);
    let backoff_ms = checked(
        raw.backoff_ms,
        "[restart]",
        "backoff_ms",
        1..=MAX_DELAY_MS,
        "",
    )?
    .unwrap_or(defaults.backoff_ms);
    let backoff_max_ms = match raw.backoff_max_ms {
        Some(max) if *max.get_ref() < backoff_ms => {
            return Err((
                max.span(),
                format!(
                    "[restart] backoff_max_ms = {}: expected at least backoff_ms ({backoff_ms})",
                    max.get_ref()
                ),
            ));
        }
        max => checked(max, "[restart]", "backoff_max_ms", 1..=MAX_DELAY_MS, "")?
            .unwrap_or(defaults.backoff_max_ms),
    };
    if backoff_max_ms < backoff_ms {
        // Only a backoff_ms above the default cap gets here.
        let span = backoff_span.expect("backoff_ms was set");
        return Err((
            span,
            format!(
                "[restart] backoff_ms = {backoff_ms}: expected at most backoff_max_ms ({backoff_max_ms}); raise backoff_max_ms too"
            ),
        ));
    }
    Ok(RestartSettings {
        policy,
        give_up_after,
        backoff_ms,
        backoff_max_ms,
        spare: raw.spare.unwrap_or(defaults.spare),
    })
}

fn health_settings(raw: RawHealth) -> Result<HealthSettings, (Range<usize>, String)> {
    let defaults = HealthSettings::default();
    let interval_ms = match raw.interval_ms {
        Some(interval) if *interval.get_ref() == 0 => 0,
        interval => checked(
            interval,
            "[health]",
            "interval_ms",
            100..=MAX_DELAY_MS,
            "0 (no health checks) or 100 to 3600000",
        )?
        .unwrap_or(defaults.interval_ms),
    };
    let timeout_ms = checked(raw.timeout_ms, "[health]", "timeout_ms", 1..=600_000, "")?
        .unwrap_or(defaults.timeout_ms);
    let failures = checked(raw.failures, "[health]", "failures", 1..=100, "")?
        .map_or(defaults.failures, |n| {
            u32::try_from(n).expect("at most 100")
        });
    Ok(HealthSettings {
        interval_ms,
        timeout_ms,
        failures,
    })
}

/// Checks a plugin name: 1 to 64 of `a-z`, `0-9` and `-`, not starting
/// with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and '-', not starting with '-'"
        ))
    }
}

/// `text` as a semver range; an empty one is refused (semver would read
/// it as "any", which nobody writes on purpose).
fn parse_range(text: &str) -> Result<semver::VersionReq, String> {
    if text.trim().is_empty() {
        return Err("empty (write \"*\" for any version)".to_owned());
    }
    semver::VersionReq::parse(text).map_err(|e| e.to_string())
}

/// `text` in lower case when it is 64 hex digits.
fn check_sha256(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

fn check_entry(entry: &str, kind: PluginKind) -> Result<PathBuf, String> {
    let path = Path::new(entry);
    if entry.is_empty() || entry.contains('\0') {
        return Err("expected a file name relative to the plugin folder".to_owned());
    }
    let mut normal = false;
    for component in path.components() {
        match component {
            Component::Normal(_) => normal = true,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the plugin folder, not absolute".to_owned());
            }
            Component::ParentDir => {
                return Err("must stay inside the plugin folder (no \"..\")".to_owned());
            }
        }
    }
    if !normal || entry.ends_with('/') {
        return Err("expected a file name relative to the plugin folder".to_owned());
    }
    let module = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("wasm") || extension.eq_ignore_ascii_case("wat")
        });
    match kind {
        PluginKind::Wasm if !module => {
            Err("kind = \"wasm\" needs a .wasm or .wat module".to_owned())
        }
        PluginKind::Native if module => Err(
            "a wasm module, but kind = \"native\": set kind = \"wasm\", or name the native library"
                .to_owned(),
        ),
        _ => Ok(path.to_owned()),
    }
}

/// The `[table] key` whose value stands at `offset`, if the line there is
/// a `key = value` line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    Some(format!("{table} {}", key.trim()).trim_start().to_owned())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plugin]
name = "hello"
version = "1.2.0"
kind = "native"
entry = "libhello.so"
api = 1
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/hello/plugin.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Asserts that `text` is refused with `expected` in the message, at
    /// `line` (1-based) of the manifest.
    #[track_caller]
    fn refused_at(text: &str, line: usize, expected: &str) {
        let message = error(text);
        assert!(message.contains(expected), "{text}\n=> {message}");
        let prefix = format!("plugins/hello/plugin.toml:{line}:");
        assert!(message.starts_with(&prefix), "{text}\n=> {message}");
    }

    /// The TOML example of this module's documentation.
    fn documented_example() -> String {
        let source = include_str!("manifest.rs");
        let mut lines = source
            .lines()
            .map_while(|line| line.strip_prefix("//!"))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .skip_while(|line| *line != "```toml")
            .skip(1);
        let mut toml = String::new();
        for line in lines.by_ref().take_while(|line| *line != "```") {
            toml.push_str(line);
            toml.push('\n');
        }
        toml
    }

    #[test]
    fn parses_a_good_manifest() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.version, semver::Version::new(1, 2, 0));
        assert_eq!(manifest.kind, PluginKind::Native);
        assert_eq!(manifest.entry, Path::new("libhello.so"));
    }

    #[test]
    fn unset_keys_take_their_defaults() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.requires, None);
        assert_eq!(manifest.sha256, None);
        assert_eq!(manifest.start, StartMode::Eager);
        assert!(manifest.dependencies.is_empty());
        assert_eq!(manifest.limits, Limits::default());
        assert_eq!(manifest.restart, RestartSettings::default());
        assert_eq!(manifest.restart.policy, RestartPolicy::Always);
        assert_eq!(manifest.restart.give_up_after, None);
        assert_eq!(manifest.restart.backoff_ms, 1_000);
        assert_eq!(manifest.restart.backoff_max_ms, 60_000);
        assert_eq!(manifest.health, HealthSettings::default());
        assert_eq!(manifest.health.interval_ms, 10_000);
        assert_eq!(manifest.health.timeout_ms, 1_000);
        assert_eq!(manifest.health.failures, 3);
        // Empty tables are the same as none.
        let empty = format!("{GOOD}[dependencies]\n[restart]\n[health]\n[limits]\n[permissions]\n");
        assert_eq!(parse(&empty).unwrap(), manifest);
    }

    #[test]
    fn the_documented_example_parses_with_every_key() {
        let text = documented_example();
        let manifest = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(manifest.name, "hello");
        assert_eq!(
            manifest.requires,
            Some(semver::VersionReq::parse(">=0.1").unwrap())
        );
        assert_eq!(
            manifest.sha256.as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(manifest.start, StartMode::Eager);
        assert_eq!(
            manifest.dependencies,
            BTreeMap::from([(
                "storage".to_owned(),
                semver::VersionReq::parse("^1.2").unwrap()
            )])
        );
        assert_eq!(manifest.permissions.write, [PathBuf::from("data/out")]);
        assert_eq!(manifest.limits.threads, Some(16));
        assert_eq!(manifest.limits.wasm_fuel, Some(0));
        assert_eq!(
            manifest.restart,
            RestartSettings {
                policy: RestartPolicy::Always,
                give_up_after: Some(10),
                backoff_ms: 1_000,
                backoff_max_ms: 60_000,
                spare: false,
            }
        );
        assert_eq!(manifest.health, HealthSettings::default());
        // Every key of every table is in the example.
        for (key, _, _) in Limits::RANGES {
            assert!(text.contains(&format!("\n{key} = ")), "{key}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("api = 1", "api = 1\ncolour = \"red\"");
        let message = error(&text);
        assert!(
            message.starts_with("plugins/hello/plugin.toml:8:1: "),
            "{message}"
        );
        assert!(message.contains("unknown field `colour`"), "{message}");
    }

    #[test]
    fn unknown_table_is_refused() {
        let message = error(&format!("{GOOD}\n[extras]\nx = 1\n"));
        assert!(message.contains("unknown field `extras`"), "{message}");
    }

    #[test]
    fn unknown_keys_in_restart_and_health_are_refused() {
        refused_at(
            &format!("{GOOD}[restart]\nretries = 3\n"),
            9,
            "unknown field `retries`",
        );
        refused_at(
            &format!("{GOOD}[health]\nperiod_ms = 3\n"),
            9,
            "unknown field `period_ms`",
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let cases = [
            (
                "name = \"hello\"",
                "name = \"Hello!\"",
                "[plugin] name = \"Hello!\": expected",
            ),
            ("name = \"hello\"", "name = \"\"", "[plugin] name = \"\""),
            (
                "version = \"1.2.0\"",
                "version = \"1.x\"",
                "not a semver version",
            ),
            (
                "entry = \"libhello.so\"",
                "entry = \"../evil.so\"",
                "no \"..\"",
            ),
            (
                "entry = \"libhello.so\"",
                "entry = \"/lib/evil.so\"",
                "not absolute",
            ),
            (
                "entry = \"libhello.so\"",
                "entry = \"\"",
                "expected a file name",
            ),
            ("api = 1", "api = 2", "speaks plugin ABI 1"),
            (
                "kind = \"native\"",
                "kind = \"python\"",
                "unknown variant `python`",
            ),
            (
                "api = 1",
                "api = -1",
                "[plugin] api: invalid value: integer `-1`",
            ),
            (
                "api = 1",
                "api = 1\nwasi = true",
                "WASI is for wasm plugins",
            ),
            (
                "api = 1",
                "api = 1\nwasi = 1",
                "[plugin] wasi: invalid type",
            ),
        ];
        for (from, to, expected) in cases {
            let message = error(&GOOD.replace(from, to));
            assert!(message.contains(expected), "{to}: {message}");
            assert!(
                message.starts_with("plugins/hello/plugin.toml:"),
                "{to}: {message}"
            );
        }
    }

    #[test]
    fn host_services_and_subscriptions() {
        let text = format!(
            "{GOOD}\n[dependencies]\nstorage = \"^1\"\n\n[permissions]\nhost = [\"kv\", \"publish\", \"call:storage\", \"log\"]\n\n[events]\nsubscribe = [\"orders.*\", \"ticks\"]\n"
        );
        let manifest = Manifest::parse(&text, Path::new("p/plugin.toml")).unwrap();
        assert_eq!(
            manifest.permissions.host,
            [
                HostGrant::Kv,
                HostGrant::Publish,
                HostGrant::Call("storage".into()),
                HostGrant::Log
            ]
        );
        assert_eq!(manifest.subscribe, ["orders.*", "ticks"]);
        assert!(topic_matches("orders.*", "orders.new"));
        assert!(!topic_matches("orders.*", "order"));
        assert!(topic_matches("ticks", "ticks") && !topic_matches("ticks", "ticks2"));

        let message = error(&format!(
            "{GOOD}\n[permissions]\nhost = [\"call:storage\"]\n"
        ));
        assert!(
            message.contains(
                ":10:9: [permissions] host: \"call:storage\": `storage` is not in [dependencies]"
            ),
            "{message}"
        );
        let message = error(&format!("{GOOD}\n[permissions]\nhost = [\"files\"]\n"));
        assert!(
            message.contains("unknown host service \"files\"") && message.contains(":10:"),
            "{message}"
        );
        for (topic, problem) in [
            ("a b", "' ' is not allowed"),
            ("a*b", "`*` may only end"),
            ("", "1 to 128"),
        ] {
            let message = error(&format!("{GOOD}\n[events]\nsubscribe = [{topic:?}]\n"));
            assert!(
                message.contains("[events] subscribe") && message.contains(problem),
                "{topic:?}: {message}"
            );
        }
        assert!(check_topic("orders.*", false).is_err());
        assert!(check_topic(&"x".repeat(129), false).is_err());
    }

    #[test]
    fn error_points_at_the_bad_line() {
        let message = error(&GOOD.replace("1.2.0", "banana"));
        assert!(
            message.starts_with("plugins/hello/plugin.toml:4:11: "),
            "{message}"
        );
    }

    #[test]
    fn missing_keys_and_syntax_errors_are_reported() {
        assert!(error("[plugin]\nname = \"x\"\n").contains("missing field"));
        assert!(error("[plugin\n").starts_with("plugins/hello/plugin.toml:1:"));
    }

    #[test]
    fn wasi_is_opt_in_for_wasm() {
        assert!(!parse(GOOD).unwrap().wasi);
        let wasm = GOOD
            .replace("kind = \"native\"", "kind = \"wasm\"\nwasi = true")
            .replace("libhello.so", "hello.wasm");
        assert!(parse(&wasm).unwrap().wasi);
    }

    #[test]
    fn kind_and_entry_must_agree() {
        let wasm = |entry: &str| {
            GOOD.replace("kind = \"native\"", "kind = \"wasm\"")
                .replace("libhello.so", entry)
        };
        for good in ["hello.wasm", "echo.wat", "lib/HELLO.WASM"] {
            assert_eq!(parse(&wasm(good)).unwrap().entry, Path::new(good));
        }
        refused_at(
            &wasm("libhello.so"),
            6,
            "[plugin] entry = \"libhello.so\": kind = \"wasm\" needs a .wasm or .wat module",
        );
        refused_at(&wasm("hello"), 6, "needs a .wasm or .wat module");
        for module in ["hello.wasm", "echo.wat"] {
            refused_at(
                &GOOD.replace("libhello.so", module),
                6,
                &format!("[plugin] entry = \"{module}\": a wasm module, but kind = \"native\""),
            );
        }
        // A native library may have any other name.
        for native in ["libhello.so", "libhello.so.1", "hello.plugin", "bin/hello"] {
            assert!(
                parse(&GOOD.replace("libhello.so", native)).is_ok(),
                "{native}"
            );
        }
    }

    #[test]
    fn requires_is_a_semver_range() {
        let text = GOOD.replace("api = 1", "api = 1\nrequires = \">=0.1, <2\"");
        assert_eq!(
            parse(&text).unwrap().requires,
            Some(semver::VersionReq::parse(">=0.1, <2").unwrap())
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = \"newest\""),
            8,
            "[plugin] requires = \"newest\": not a semver range",
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = \"\""),
            8,
            "[plugin] requires = \"\": not a semver range",
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = 1"),
            8,
            "[plugin] requires: invalid type",
        );
    }

    #[test]
    fn sha256_is_64_hex_digits_stored_in_lower_case() {
        let hash = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
        let text = GOOD.replace("api = 1", &format!("api = 1\nsha256 = \"{hash}\""));
        assert_eq!(
            parse(&text).unwrap().sha256,
            Some(hash.to_ascii_lowercase())
        );
        for bad in [&hash[1..], &format!("{hash}0"), &hash.replace('C', "g"), ""] {
            refused_at(
                &GOOD.replace("api = 1", &format!("api = 1\nsha256 = \"{bad}\"")),
                8,
                &format!("[plugin] sha256 = \"{bad}\": expected 64 hex digits"),
            );
        }
    }

    #[test]
    fn start_is_eager_or_lazy() {
        let with = |start: &str| GOOD.replace("api = 1", &format!("api = 1\nstart = \"{start}\""));
        assert_eq!(parse(&with("eager")).unwrap().start, StartMode::Eager);
        assert_eq!(parse(&with("lazy")).unwrap().start, StartMode::Lazy);
        refused_at(
            &with("later"),
            8,
            "[plugin] start = \"later\": expected \"eager\" or \"lazy\"",
        );
    }

    #[test]
    fn dependencies_are_plugin_names_with_semver_ranges() {
        let text = format!("{GOOD}\n[dependencies]\nstorage = \"^1.2\"\nlog-sink = \"*\"\n");
        let manifest = parse(&text).unwrap();
        assert_eq!(
            manifest.dependencies,
            BTreeMap::from([
                ("log-sink".to_owned(), semver::VersionReq::STAR),
                (
                    "storage".to_owned(),
                    semver::VersionReq::parse("^1.2").unwrap()
                ),
            ])
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = \"^x\"\n"),
            10,
            "[dependencies] storage = \"^x\": not a semver range like \"^1.2\"",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = \"\"\n"),
            10,
            "[dependencies] storage = \"\": not a semver range",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nStorage = \"^1\"\n"),
            10,
            "[dependencies] Storage = \"^1\": the name of a plugin: expected 1 to 64",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\n\"-x\" = \"^1\"\n"),
            10,
            "[dependencies] -x = \"^1\": the name of a plugin",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nhello = \"^1\"\n"),
            10,
            "[dependencies] hello = \"^1\": a plugin cannot depend on itself",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = 1\n"),
            10,
            "[dependencies] storage: invalid type",
        );
    }

    #[test]
    fn restart_settings() {
        let text = format!(
            "{GOOD}\n[restart]\npolicy = \"on-failure\"\ngive_up_after = 5\nbackoff_ms = 200\nbackoff_max_ms = 800\nspare = true\n"
        );
        assert_eq!(
            parse(&text).unwrap().restart,
            RestartSettings {
                policy: RestartPolicy::OnFailure,
                give_up_after: Some(5),
                backoff_ms: 200,
                backoff_max_ms: 800,
                spare: true,
            }
        );
        let never = format!("{GOOD}\n[restart]\npolicy = \"never\"\n");
        assert_eq!(parse(&never).unwrap().restart.policy, RestartPolicy::Never);
        let restart = |body: &str| format!("{GOOD}\n[restart]\n{body}\n");
        let cases = [
            (
                "policy = \"sometimes\"",
                "[restart] policy = \"sometimes\": expected \"always\", \"on-failure\" or \"never\"",
            ),
            (
                "give_up_after = 0",
                "[restart] give_up_after = 0: expected 1 to 1000",
            ),
            ("give_up_after = 1001", "expected 1 to 1000"),
            (
                "backoff_ms = 0",
                "[restart] backoff_ms = 0: expected 1 to 3600000",
            ),
            ("backoff_max_ms = 3600001", "expected 1 to 3600000"),
            (
                "backoff_ms = 500\nbackoff_max_ms = 499",
                "[restart] backoff_max_ms = 499: expected at least backoff_ms (500)",
            ),
            (
                "backoff_ms = 120000",
                "[restart] backoff_ms = 120000: expected at most backoff_max_ms (60000)",
            ),
            ("backoff_ms = -1", "[restart] backoff_ms: invalid value"),
        ];
        for (body, expected) in cases {
            // The key at fault is on the last line.
            refused_at(&restart(body), 9 + body.lines().count(), expected);
        }
        // The cap may be raised together with the delay.
        let slow = restart("backoff_ms = 120000\nbackoff_max_ms = 600000");
        assert_eq!(parse(&slow).unwrap().restart.backoff_max_ms, 600_000);
    }

    #[test]
    fn health_settings() {
        let text = format!("{GOOD}\n[health]\ninterval_ms = 500\ntimeout_ms = 50\nfailures = 1\n");
        assert_eq!(
            parse(&text).unwrap().health,
            HealthSettings {
                interval_ms: 500,
                timeout_ms: 50,
                failures: 1,
            }
        );
        let off = format!("{GOOD}\n[health]\ninterval_ms = 0\n");
        assert_eq!(parse(&off).unwrap().health.interval_ms, 0);
        let health = |body: &str| format!("{GOOD}\n[health]\n{body}\n");
        let cases = [
            (
                "interval_ms = 99",
                "[health] interval_ms = 99: expected 0 (no health checks) or 100 to 3600000",
            ),
            (
                "interval_ms = 3600001",
                "expected 0 (no health checks) or 100",
            ),
            (
                "timeout_ms = 0",
                "[health] timeout_ms = 0: expected 1 to 600000",
            ),
            ("timeout_ms = 600001", "expected 1 to 600000"),
            ("failures = 0", "[health] failures = 0: expected 1 to 100"),
            ("failures = 101", "expected 1 to 100"),
            ("failures = \"3\"", "[health] failures: invalid type"),
        ];
        for (body, expected) in cases {
            refused_at(&health(body), 10, expected);
        }
    }

    #[test]
    fn permissions_and_limits() {
        let text = format!(
            "{GOOD}\n[permissions]\nread = [\"data\"]\nnetwork = true\n\n[limits]\nmemory_mb = 64\ncall_timeout_ms = 250\n"
        );
        let manifest = parse(&text).unwrap();
        assert_eq!(manifest.permissions.read, [PathBuf::from("data")]);
        assert!(manifest.permissions.network);
        assert_eq!(manifest.limits.memory_mb, Some(64));
        assert_eq!(manifest.limits.call_timeout_ms, Some(250));
        assert_eq!(manifest.limits.open_files, None);
        assert_eq!(parse(GOOD).unwrap().permissions, Permissions::default());

        let message = error(&format!("{GOOD}\n[limits]\nmemory_mb = 1\n"));
        assert!(
            message.contains(":10:13: [limits] memory_mb = 1: expected 16 to"),
            "{message}"
        );
        let message = error(&format!("{GOOD}\n[limits]\nmemroy_mb = 64\n"));
        assert!(message.contains("unknown field `memroy_mb`"), "{message}");
        let message = error(&format!("{GOOD}\n[permissions]\nnetwork = \"yes\"\n"));
        assert!(
            message.contains("[permissions] network: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn every_limit_is_range_checked() {
        for (key, min, max) in Limits::RANGES {
            let with = |value: u64| format!("{GOOD}\n[limits]\n{key} = {value}\n");
            assert!(parse(&with(min)).is_ok(), "{key} = {min}");
            if max <= i64::MAX as u64 {
                assert!(parse(&with(max)).is_ok(), "{key} = {max}");
                if max < i64::MAX as u64 {
                    refused_at(
                        &with(max + 1),
                        10,
                        &format!("[limits] {key} = {}: expected {min} to {max}", max + 1),
                    );
                }
            }
            if min > 0 {
                refused_at(
                    &with(min - 1),
                    10,
                    &format!("[limits] {key} = {}: expected {min} to {max}", min - 1),
                );
            }
        }
    }

    #[test]
    fn limits_table_is_usable_from_other_documents() {
        #[derive(Deserialize)]
        struct Settings {
            limits: LimitsTable,
        }
        let path = Path::new("corral.toml");
        let text = "[limits]\nthreads = 8\nopen_files = 4\n";
        let settings: Settings = toml::from_str(text).unwrap();
        let message = settings
            .limits
            .validate(path, text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "corral.toml:3:14: [limits] open_files = 4: expected 8 to 1048576"
        );
        let text = "[limits]\nthreads = 8\n";
        let settings: Settings = toml::from_str(text).unwrap();
        assert_eq!(
            settings.limits.validate(path, text).unwrap().threads,
            Some(8)
        );
        let text = "[limits]\nthraeds = 8\n";
        let error = toml::from_str::<Settings>(text).map(|_| ()).unwrap_err();
        let message = ManifestError::from_toml(path, text, &error).to_string();
        assert!(
            message.starts_with("corral.toml:2:1: unknown field `thraeds`"),
            "{message}"
        );
    }

    #[test]
    fn columns_count_characters() {
        let text = GOOD.replace("name = \"hello\"", "name = \"héllo\"\n# ünïcödé\nx = 1");
        let message = error(&text);
        assert!(
            message.starts_with("plugins/hello/plugin.toml:5:1: unknown field `x`"),
            "{message}"
        );
        assert_eq!(line_column("aé=", 3), (1, 3));
        assert_eq!(line_column("aé=", 2), (1, 2), "inside a character");
        assert_eq!(line_column("a\nb", 99), (2, 2));
    }

    #[test]
    fn extension_points_methods_and_config() {
        let text = format!(
            "{GOOD}provides = [\"exporter\", \"preview\"]\n\n\
             [[methods]]\nname = \"export\"\ndescription = \"Writes PDF\"\n\n\
             [[methods]]\nname = \"page.count\"\n\n\
             [config]\ndpi = 300\n[config.paper]\nsize = \"a4\"\n"
        );
        let manifest = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(manifest.provides, ["exporter", "preview"]);
        assert_eq!(
            manifest.methods,
            [
                Method {
                    name: "export".into(),
                    description: "Writes PDF".into()
                },
                Method {
                    name: "page.count".into(),
                    description: String::new()
                }
            ]
        );
        assert_eq!(manifest.config["dpi"].as_integer(), Some(300));
        assert_eq!(manifest.config["paper"]["size"].as_str(), Some("a4"));
        let plain = parse(GOOD).unwrap();
        assert!(plain.provides.is_empty() && plain.methods.is_empty() && plain.config.is_empty());
    }

    #[test]
    fn bad_extension_points_and_methods_are_refused() {
        let provides = |list: &str| format!("{GOOD}provides = {list}\n");
        refused_at(
            &provides("[\"Exporter\"]"),
            8,
            "[plugin] provides: \"Exporter\": expected 1 to 64",
        );
        refused_at(&provides("[\"a\", \"a\"]"), 8, "\"a\" is listed twice");
        let method = |body: &str| format!("{GOOD}\n[[methods]]\n{body}\n");
        refused_at(&method("name = \"@event:x\""), 10, "reserved for corral");
        refused_at(&method("name = \"\""), 10, "expected 1 to 128 bytes");
        refused_at(&method("name = \"two words\""), 10, "no spaces");
        refused_at(
            &method("name = \"a\"\ndescription = \"one\\ntwo\""),
            11,
            "expected one line",
        );
        refused_at(
            &method("name = \"a\"\nsummary = \"x\""),
            11,
            "unknown field `summary`",
        );
        let twice = format!("{GOOD}\n[[methods]]\nname = \"a\"\n[[methods]]\nname = \"a\"\n");
        refused_at(&twice, 12, "[[methods]] name = \"a\": declared twice");
        let huge = format!("{GOOD}\n[config]\nblob = \"{}\"\n", "x".repeat(70_000));
        refused_at(&huge, 9, "over the 65536 corral passes to a plugin");
    }

    #[test]
    fn names() {
        for good in ["a", "hello-world", "x2", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "ä", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    /// Property tests: the parser round-trips every valid manifest, never
    /// panics, and refuses every unknown key by name.
    mod properties {
        use super::*;
        use proptest::collection::{btree_map, vec};
        use proptest::option;
        use proptest::prelude::*;
        use std::fmt::Write as _;

        const PATH: &str = "plugins/p/plugin.toml";

        fn name() -> impl Strategy<Value = String> {
            "[a-z0-9][a-z0-9-]{0,63}"
        }

        fn version() -> impl Strategy<Value = semver::Version> {
            (
                0..1000u64,
                0..1000u64,
                0..1000u64,
                option::of("[a-z]{1,5}(\\.[1-9][0-9]{0,2})?"),
                option::of("[a-z0-9]{1,6}"),
            )
                .prop_map(|(major, minor, patch, pre, build)| {
                    let mut text = format!("{major}.{minor}.{patch}");
                    if let Some(pre) = pre {
                        text = format!("{text}-{pre}");
                    }
                    if let Some(build) = build {
                        text = format!("{text}+{build}");
                    }
                    semver::Version::parse(&text).expect("generated a valid version")
                })
        }

        fn range() -> impl Strategy<Value = semver::VersionReq> {
            let comparator = (
                prop_oneof![
                    Just(""),
                    Just("^"),
                    Just("~"),
                    Just("="),
                    Just(">"),
                    Just(">="),
                    Just("<"),
                    Just("<=")
                ],
                0..100u64,
                option::of((0..100u64, option::of(0..100u64))),
            )
                .prop_map(|(op, major, rest)| match rest {
                    None => format!("{op}{major}"),
                    Some((minor, None)) => format!("{op}{major}.{minor}"),
                    Some((minor, Some(patch))) => format!("{op}{major}.{minor}.{patch}"),
                });
            prop_oneof![
                1 => Just("*".to_owned()),
                8 => vec(comparator, 1..3).prop_map(|comparators| comparators.join(", ")),
            ]
            .prop_map(|text| semver::VersionReq::parse(&text).expect("generated a valid range"))
        }

        fn kind_entry_wasi() -> impl Strategy<Value = (PluginKind, PathBuf, bool)> {
            prop_oneof![
                "[a-z][a-z0-9_]{0,10}(/[a-z][a-z0-9_]{0,8}){0,2}\\.so(\\.[0-9])?"
                    .prop_map(|entry| (PluginKind::Native, PathBuf::from(entry), false)),
                ("[a-z][a-z0-9_]{0,10}\\.(wasm|wat|WASM)", any::<bool>())
                    .prop_map(|(entry, wasi)| (PluginKind::Wasm, PathBuf::from(entry), wasi)),
            ]
        }

        fn permissions() -> impl Strategy<Value = Permissions> {
            let path = "/?[a-z]{1,8}(/[a-z0-9.]{1,8}){0,2}".prop_map(PathBuf::from);
            let grant = prop_oneof![
                Just(HostGrant::Log),
                Just(HostGrant::Now),
                Just(HostGrant::Kv),
                Just(HostGrant::Publish),
            ];
            (
                vec(path.clone(), 0..3),
                vec(path, 0..3),
                any::<bool>(),
                vec(grant, 0..3),
            )
                .prop_map(|(read, write, network, host)| Permissions {
                    read,
                    write,
                    network,
                    host,
                })
        }

        fn limits() -> impl Strategy<Value = Limits> {
            let limit = |key: &str| {
                let (_, min, max) = Limits::RANGES
                    .into_iter()
                    .find(|(name, _, _)| *name == key)
                    .expect("a limit");
                // TOML integers are i64.
                option::of(min..=max.min(i64::MAX as u64))
            };
            (
                limit("memory_mb"),
                limit("cpu_seconds"),
                limit("cpu_percent"),
                limit("call_timeout_ms"),
                limit("open_files"),
                limit("threads"),
                limit("file_size_mb"),
                limit("wasm_fuel"),
                limit("storage_mb"),
            )
                .prop_map(
                    |(
                        memory_mb,
                        cpu_seconds,
                        cpu_percent,
                        call_timeout_ms,
                        open_files,
                        threads,
                        file_size_mb,
                        wasm_fuel,
                        storage_mb,
                    )| Limits {
                        memory_mb,
                        cpu_seconds,
                        cpu_percent,
                        call_timeout_ms,
                        open_files,
                        threads,
                        file_size_mb,
                        wasm_fuel,
                        storage_mb,
                    },
                )
        }

        fn restart() -> impl Strategy<Value = RestartSettings> {
            let policy = prop_oneof![
                Just(RestartPolicy::Always),
                Just(RestartPolicy::OnFailure),
                Just(RestartPolicy::Never)
            ];
            (
                policy,
                option::of(1..=1000u32),
                1..=MAX_DELAY_MS,
                any::<bool>(),
            )
                .prop_flat_map(|(policy, give_up_after, backoff_ms, spare)| {
                    (backoff_ms..=MAX_DELAY_MS).prop_map(move |backoff_max_ms| RestartSettings {
                        policy,
                        give_up_after,
                        backoff_ms,
                        backoff_max_ms,
                        spare,
                    })
                })
        }

        fn health() -> impl Strategy<Value = HealthSettings> {
            (
                prop_oneof![Just(0), 100..=MAX_DELAY_MS],
                1..=600_000u64,
                1..=100u32,
            )
                .prop_map(|(interval_ms, timeout_ms, failures)| HealthSettings {
                    interval_ms,
                    timeout_ms,
                    failures,
                })
        }

        fn manifest() -> impl Strategy<Value = Manifest> {
            let plugin = (
                name(),
                version(),
                kind_entry_wasi(),
                option::of(range()),
                option::of("[0-9a-f]{64}"),
                prop_oneof![Just(StartMode::Eager), Just(StartMode::Lazy)],
            );
            let dependencies = btree_map(name(), range(), 0..4);
            let topic = "[a-z][a-z0-9._/-]{0,12}\\*?";
            (
                plugin,
                dependencies,
                permissions(),
                vec(topic, 0..3),
                limits(),
                restart(),
                health(),
            )
                .prop_map(
                    |(
                        (name, version, (kind, entry, wasi), requires, sha256, start),
                        mut dependencies,
                        permissions,
                        subscribe,
                        limits,
                        restart,
                        health,
                    )| {
                        dependencies.remove(&name);
                        Manifest {
                            name,
                            version,
                            kind,
                            wasi,
                            entry,
                            api: ABI_VERSION,
                            requires,
                            sha256,
                            start,
                            provides: Vec::new(),
                            methods: Vec::new(),
                            config: toml::Table::new(),
                            dependencies,
                            permissions,
                            subscribe,
                            limits,
                            restart,
                            health,
                        }
                    },
                )
        }

        /// `manifest` as TOML. `explicit` writes every key, defaults
        /// included (and every table); otherwise keys holding their
        /// default are left out. `upper` writes the hash in upper case.
        fn render(manifest: &Manifest, explicit: bool, upper: bool) -> String {
            let mut out = String::new();
            let key = |out: &mut String, key: &str, value: String, default: bool| {
                if explicit || !default {
                    writeln!(out, "{key} = {value}").expect("write to a string");
                }
            };
            let quote = |text: &str| format!("{text:?}");
            let paths = |paths: &[PathBuf]| {
                let quoted: Vec<String> = paths
                    .iter()
                    .map(|p| format!("{:?}", p.display().to_string()))
                    .collect();
                format!("[{}]", quoted.join(", "))
            };
            out.push_str("[plugin]\n");
            key(&mut out, "name", quote(&manifest.name), false);
            key(
                &mut out,
                "version",
                quote(&manifest.version.to_string()),
                false,
            );
            let kind = match manifest.kind {
                PluginKind::Native => "native",
                PluginKind::Wasm => "wasm",
            };
            key(&mut out, "kind", quote(kind), false);
            // `wasi = false` is only allowed to be explicit for wasm.
            let wasi_default = !manifest.wasi && manifest.kind == PluginKind::Native;
            key(
                &mut out,
                "wasi",
                manifest.wasi.to_string(),
                wasi_default || !manifest.wasi && !explicit,
            );
            key(
                &mut out,
                "entry",
                quote(&manifest.entry.display().to_string()),
                false,
            );
            key(&mut out, "api", manifest.api.to_string(), false);
            if let Some(requires) = &manifest.requires {
                key(&mut out, "requires", quote(&requires.to_string()), false);
            }
            if let Some(sha256) = &manifest.sha256 {
                let sha256 = if upper {
                    sha256.to_ascii_uppercase()
                } else {
                    sha256.clone()
                };
                key(&mut out, "sha256", quote(&sha256), false);
            }
            key(
                &mut out,
                "start",
                quote(manifest.start.as_str()),
                manifest.start == StartMode::default(),
            );

            if explicit || !manifest.dependencies.is_empty() {
                out.push_str("\n[dependencies]\n");
            }
            for (name, range) in &manifest.dependencies {
                key(&mut out, name, quote(&range.to_string()), false);
            }

            let permissions = &manifest.permissions;
            if explicit || *permissions != Permissions::default() {
                out.push_str("\n[permissions]\n");
            }
            key(
                &mut out,
                "read",
                paths(&permissions.read),
                permissions.read.is_empty(),
            );
            key(
                &mut out,
                "write",
                paths(&permissions.write),
                permissions.write.is_empty(),
            );
            key(
                &mut out,
                "network",
                permissions.network.to_string(),
                !permissions.network,
            );
            let grants: Vec<String> = permissions
                .host
                .iter()
                .map(|grant| quote(&grant.to_string()))
                .collect();
            key(
                &mut out,
                "host",
                format!("[{}]", grants.join(", ")),
                permissions.host.is_empty(),
            );

            if explicit || !manifest.subscribe.is_empty() {
                out.push_str("\n[events]\n");
            }
            let topics: Vec<String> = manifest.subscribe.iter().map(|t| quote(t)).collect();
            key(
                &mut out,
                "subscribe",
                format!("[{}]", topics.join(", ")),
                manifest.subscribe.is_empty(),
            );

            let limits = &manifest.limits;
            if explicit || *limits != Limits::default() {
                out.push_str("\n[limits]\n");
            }
            for (name, value) in [
                ("memory_mb", limits.memory_mb),
                ("cpu_seconds", limits.cpu_seconds),
                ("cpu_percent", limits.cpu_percent),
                ("call_timeout_ms", limits.call_timeout_ms),
                ("open_files", limits.open_files),
                ("threads", limits.threads),
                ("file_size_mb", limits.file_size_mb),
                ("wasm_fuel", limits.wasm_fuel),
                ("storage_mb", limits.storage_mb),
            ] {
                if let Some(value) = value {
                    key(&mut out, name, value.to_string(), false);
                }
            }

            let restart = &manifest.restart;
            let defaults = RestartSettings::default();
            if explicit || *restart != defaults {
                out.push_str("\n[restart]\n");
            }
            key(
                &mut out,
                "policy",
                quote(restart.policy.as_str()),
                restart.policy == defaults.policy,
            );
            if let Some(give_up_after) = restart.give_up_after {
                key(&mut out, "give_up_after", give_up_after.to_string(), false);
            }
            key(
                &mut out,
                "backoff_ms",
                restart.backoff_ms.to_string(),
                restart.backoff_ms == defaults.backoff_ms,
            );
            key(
                &mut out,
                "backoff_max_ms",
                restart.backoff_max_ms.to_string(),
                restart.backoff_max_ms == defaults.backoff_max_ms,
            );
            key(
                &mut out,
                "spare",
                restart.spare.to_string(),
                restart.spare == defaults.spare,
            );

            let health = &manifest.health;
            let defaults = HealthSettings::default();
            if explicit || *health != defaults {
                out.push_str("\n[health]\n");
            }
            key(
                &mut out,
                "interval_ms",
                health.interval_ms.to_string(),
                health.interval_ms == defaults.interval_ms,
            );
            key(
                &mut out,
                "timeout_ms",
                health.timeout_ms.to_string(),
                health.timeout_ms == defaults.timeout_ms,
            );
            key(
                &mut out,
                "failures",
                health.failures.to_string(),
                health.failures == defaults.failures,
            );
            out
        }

        /// The keys each table (`""` = the top level) accepts.
        fn known_keys(table: &str) -> &'static [&'static str] {
            match table {
                "" => &[
                    "plugin",
                    "dependencies",
                    "permissions",
                    "events",
                    "limits",
                    "restart",
                    "health",
                ],
                "plugin" => &[
                    "name", "version", "kind", "wasi", "entry", "api", "requires", "sha256",
                    "start",
                ],
                "permissions" => &["read", "write", "network", "host"],
                "events" => &["subscribe"],
                "limits" => &[
                    "memory_mb",
                    "cpu_seconds",
                    "cpu_percent",
                    "call_timeout_ms",
                    "open_files",
                    "threads",
                    "file_size_mb",
                    "wasm_fuel",
                    "storage_mb",
                ],
                "restart" => &[
                    "policy",
                    "give_up_after",
                    "backoff_ms",
                    "backoff_max_ms",
                    "spare",
                ],
                "health" => &["interval_ms", "timeout_ms", "failures"],
                other => panic!("no table {other}"),
            }
        }

        /// Something shaped like TOML, to get past the tokenizer more
        /// often than random text does.
        fn tomlish() -> impl Strategy<Value = String> {
            let line = prop_oneof![
                "\\[(plugin|limits|restart|health|dependencies|permissions|[a-z]{1,6})\\]",
                "[a-z_\"-]{1,12} = (\"[^\"\\n]{0,12}\"|-?[0-9]{1,20}|true|false|\\[[0-9, \"a-z]{0,12}\\]|\\{[a-z =0-9]{0,10}\\}|[0-9.eE+-]{1,8})",
                "[^\\n]{0,20}",
            ];
            vec(line, 0..16).prop_map(|lines| lines.join("\n"))
        }

        fn assert_no_panic(text: &str) -> Result<(), TestCaseError> {
            if let Err(error) = Manifest::parse(text, Path::new(PATH)) {
                let message = error.to_string();
                prop_assert!(message.starts_with(PATH), "{}", message);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn valid_manifests_round_trip(
                manifest in manifest(),
                explicit in any::<bool>(),
                upper in any::<bool>(),
            ) {
                let text = render(&manifest, explicit, upper);
                let parsed = Manifest::parse(&text, Path::new(PATH));
                prop_assert_eq!(parsed.as_ref(), Ok(&manifest), "{}", text);
            }

            #[test]
            fn any_text_is_parsed_or_refused_never_a_panic(text in any::<String>()) {
                assert_no_panic(&text)?;
            }

            #[test]
            fn any_bytes_are_parsed_or_refused_never_a_panic(bytes in vec(any::<u8>(), 0..512)) {
                assert_no_panic(&String::from_utf8_lossy(&bytes))?;
            }

            #[test]
            fn toml_like_text_is_parsed_or_refused_never_a_panic(text in tomlish()) {
                assert_no_panic(&text)?;
            }

            #[test]
            fn damaged_manifests_are_parsed_or_refused_never_a_panic(
                manifest in manifest(),
                cuts in vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<char>()), 1..4),
            ) {
                let mut text: Vec<char> = render(&manifest, true, false).chars().collect();
                for (at, len, insert) in cuts {
                    let at = at.index(text.len() + 1);
                    let end = (at + len.index(4)).min(text.len());
                    text.splice(at..end, [insert]);
                }
                assert_no_panic(&text.into_iter().collect::<String>())?;
            }

            #[test]
            fn an_unknown_key_is_refused_by_name(
                manifest in manifest(),
                table in prop::sample::select(vec!["", "plugin", "permissions", "limits", "restart", "health"]),
                unknown in "[a-z][a-z0-9_]{0,15}",
                rename in any::<bool>(),
                which in any::<prop::sample::Index>(),
            ) {
                prop_assume!(!known_keys(table).contains(&unknown.as_str()));
                let text = render(&manifest, true, false);
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                let header = if table.is_empty() {
                    None
                } else {
                    let header = format!("[{table}]");
                    Some(lines.iter().position(|line| *line == header).expect("explicit rendering has every table"))
                };
                let first = header.map_or(0, |h| h + 1);
                let keys: Vec<usize> = (first..lines.len())
                    .take_while(|i| !lines[*i].starts_with('['))
                    .filter(|i| lines[*i].contains(" = "))
                    .collect();
                let line = if rename && !keys.is_empty() && !table.is_empty() {
                    let at = keys[which.index(keys.len())];
                    let (_, value) = lines[at].split_once(" = ").expect("a key line");
                    lines[at] = format!("{unknown} = {value}");
                    at
                } else {
                    lines.insert(first, format!("{unknown} = 1"));
                    first
                };
                let text = lines.join("\n");
                let error = Manifest::parse(&text, Path::new(PATH))
                    .expect_err("an unknown key is refused")
                    .to_string();
                let unknown_field = format!("unknown field `{unknown}`");
                prop_assert!(error.contains(&unknown_field), "{}\n=> {}", text, error);
                let prefix = format!("{PATH}:{}:1: ", line + 1);
                prop_assert!(error.starts_with(&prefix), "{}\n=> {}", text, error);
            }
        }
    }
}
