//! `corral.toml`: the supervisor's own settings, read by `corral serve
//! --config FILE`. Every key is optional; flags given on the command line
//! win over the file.
//!
//! ```toml
//! plugin_dirs = ["plugins", "/srv/corral/plugins"]   # plugin folders (or `plugins = [...]`)
//! socket = "/run/corral/corral.sock"
//! socket_mode = "0660"          # octal; default 0600
//! socket_group = "corral"       # group owner of the socket: name or gid
//! allowed_uids = [1000]         # peers that may connect besides root and corral's own uid
//! admin_uids = [1000]           # peers that may also run admin commands
//! state_dir = "/var/lib/corral"
//! strict = false
//! max_plugins = 100             # running workers at most; 0 = no cap
//! worker_uid_base = 200000
//! cgroup = "/sys/fs/cgroup/corral"
//! call_timeout_ms = 30000
//! start_timeout_ms = 10000
//! log_max_mb = 10               # a plugin's log file rotates at this size
//! log_keep = 5                  # rotated log files kept per plugin, 0 to 100
//! record_calls = 8              # a worker's last calls kept for its crash report, 0 to 1000
//! record_bytes = 65536          # their bytes (method and input) in all, 0 to 16777216
//! crash_reports_keep = 100      # crash reports kept, 1 to 100000
//! crash_reports_days = 30       # and for how long, 1 to 3650
//! storage_sync = "normal"       # plugin storage: "normal", or "full" to survive power loss
//! events_keep = 100000          # events the journal keeps, 100 to 10000000
//! events_days = 30              # and for how long, 1 to 3650
//! metrics_addr = "127.0.0.1:9464"  # Prometheus text at http://ADDR/metrics; default off
//! require_signature = false     # corral install: only archives signed by a trusted key
//! trusted_keys = ["3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"]
//!
//! [limits]                      # defaults for every plugin: plugin.toml's [limits]
//! memory_mb = 256
//!
//! [plugins.exporter.config]     # overrides of plugin `exporter`'s [config] defaults
//! dpi = 600
//! ```
//!
//! Relative paths are relative to the file's folder. Unknown keys are
//! errors, and every error names the file, line, column and key and says
//! what is expected, as for `plugin.toml` (the `[limits]` table is checked
//! by the same code).
//!
//! Longer than most modules because a third of it is tests: each key's
//! checks and error wording are tested here, beside the code that reads it.

use crate::config::{CGROUP_AUTO, ServeConfig, StorageSync};
use corral_plugin_api::manifest::{Limits, LimitsTable, ManifestError, check_name};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The settings of a `corral.toml`; `None` (or empty) where the file is
/// silent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Plugin folders (`plugin_dirs`, or `plugins` as a list), resolved
    /// against the file's folder.
    pub plugins: Vec<PathBuf>,
    /// Overrides of plugins' `[config]` defaults, by plugin name
    /// (`[plugins.NAME.config]`).
    pub plugin_config: BTreeMap<String, toml::Table>,
    /// The host socket (`socket`).
    pub socket: Option<PathBuf>,
    /// Mode of the socket file (`socket_mode`, an octal string).
    pub socket_mode: Option<u32>,
    /// Group owner of the socket file (`socket_group`), as a gid.
    pub socket_group: Option<u32>,
    /// Peer uids that may connect besides root and the supervisor's own
    /// uid (`allowed_uids`).
    pub allowed_uids: Vec<u32>,
    /// Peer uids that may run admin commands (`admin_uids`).
    pub admin_uids: Vec<u32>,
    /// Where corral keeps state (`state_dir`).
    pub state_dir: Option<PathBuf>,
    /// Refuse workers with a sandbox layer missing (`strict`).
    pub strict: Option<bool>,
    /// Most workers running at once (`max_plugins`; 0 in the file =
    /// `None`).
    pub max_plugins: Option<usize>,
    /// First worker uid (`worker_uid_base`).
    pub worker_uid_base: Option<u32>,
    /// Delegated cgroup v2 folder (`cgroup`).
    pub cgroup: Option<PathBuf>,
    /// Default call deadline in milliseconds (`call_timeout_ms`, or
    /// `[limits] call_timeout_ms`).
    pub call_timeout_ms: Option<u64>,
    /// Start deadline in milliseconds (`start_timeout_ms`).
    pub start_timeout_ms: Option<u64>,
    /// Size at which a plugin's log file rotates, MiB (`log_max_mb`).
    pub log_max_mb: Option<u64>,
    /// Rotated log files kept per plugin (`log_keep`).
    pub log_keep: Option<u32>,
    /// A worker's last calls kept for its crash report (`record_calls`).
    pub record_calls: Option<u32>,
    /// Their bytes in all (`record_bytes`).
    pub record_bytes: Option<u32>,
    /// Crash reports kept (`crash_reports_keep`).
    pub crash_reports_keep: Option<u32>,
    /// Days a crash report is kept (`crash_reports_days`).
    pub crash_reports_days: Option<u32>,
    /// How plugin storage is flushed (`storage_sync`).
    pub storage_sync: Option<StorageSync>,
    /// Events the journal keeps (`events_keep`).
    pub events_keep: Option<u64>,
    /// Days the journal keeps an event (`events_days`).
    pub events_days: Option<u32>,
    /// Where to serve Prometheus metrics (`metrics_addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `corral install` refuses what no trusted key signed
    /// (`require_signature`).
    pub require_signature: bool,
    /// Public keys (hex) whose signatures `corral install` trusts
    /// (`trusted_keys`).
    pub trusted_keys: Vec<String>,
    /// Defaults for the `[limits]` a plugin leaves unset (`[limits]`);
    /// the call deadline is in `call_timeout_ms`, never here.
    pub limits: Limits,
}

/// A `corral.toml` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The settings file.
        path: PathBuf,
        /// Why it cannot be read.
        source: io::Error,
    },
    /// A syntax error, an unknown key or a bad value.
    #[error("{}{}: {message}", path.display(), at(*position))]
    Invalid {
        /// The settings file.
        path: PathBuf,
        /// 1-based line and column of the offending text, when known.
        position: Option<(usize, usize)>,
        /// What is wrong and what is expected, naming the key.
        message: String,
    },
}

/// `:LINE:COLUMN`, or nothing.
fn at(position: Option<(usize, usize)>) -> String {
    position.map_or_else(String::new, |(line, column)| format!(":{line}:{column}"))
}

/// corral.toml shares the manifest's TOML checks (`[limits]`, key
/// errors with their line); what they find is a settings error.
impl From<ManifestError> for SettingsError {
    fn from(error: ManifestError) -> Self {
        Self::Invalid {
            path: error.path,
            position: error.position,
            message: error.message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    plugin_dirs: Option<Vec<Spanned<String>>>,
    /// The plugin folders (a list), or settings per plugin (a table).
    plugins: Option<Spanned<toml::Value>>,
    socket: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    socket_group: Option<Spanned<toml::Value>>,
    #[serde(default)]
    allowed_uids: Vec<u32>,
    #[serde(default)]
    admin_uids: Vec<u32>,
    state_dir: Option<Spanned<String>>,
    strict: Option<bool>,
    max_plugins: Option<Spanned<u64>>,
    worker_uid_base: Option<Spanned<u64>>,
    cgroup: Option<Spanned<String>>,
    call_timeout_ms: Option<Spanned<u64>>,
    start_timeout_ms: Option<Spanned<u64>>,
    log_max_mb: Option<Spanned<u64>>,
    log_keep: Option<Spanned<u64>>,
    record_calls: Option<Spanned<u64>>,
    record_bytes: Option<Spanned<u64>>,
    crash_reports_keep: Option<Spanned<u64>>,
    crash_reports_days: Option<Spanned<u64>>,
    storage_sync: Option<Spanned<String>>,
    events_keep: Option<Spanned<u64>>,
    events_days: Option<Spanned<u64>>,
    metrics_addr: Option<Spanned<String>>,
    #[serde(default)]
    require_signature: bool,
    #[serde(default)]
    trusted_keys: Vec<Spanned<String>>,
    #[serde(default)]
    limits: LimitsTable,
}

/// Most workers `max_plugins` may allow.
const MAX_PLUGINS: u64 = 100_000;
/// Highest `worker_uid_base`: room for 65536 plugins below `u32::MAX`.
const MAX_UID_BASE: u64 = u32::MAX as u64 - 65_535;

impl Settings {
    /// Reads and checks the settings file at `path`.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks settings `text`, the contents of `path`: relative paths are
    /// resolved against `path`'s folder, group names looked up.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        let error = |span: Range<usize>, message: String| {
            SettingsError::from(ManifestError::at(path, text, Some(span), message))
        };
        let raw: RawSettings =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(path, text, &e))?;
        let folder = path.parent().unwrap_or(Path::new(""));
        let resolve = |key: &str, value: Spanned<String>| {
            if value.get_ref().is_empty() || value.get_ref().contains('\0') {
                return Err(error(
                    value.span(),
                    format!("{key} = {:?}: expected a path", value.get_ref()),
                ));
            }
            Ok(folder.join(value.into_inner()))
        };
        let number = |key: &str, value: Option<Spanned<u64>>, min: u64, max: u64| match value {
            Some(value) if !(min..=max).contains(value.get_ref()) => Err(error(
                value.span(),
                format!("{key} = {}: expected {min} to {max}", value.get_ref()),
            )),
            value => Ok(value.map(Spanned::into_inner)),
        };

        let (listed, plugin_config) = match raw.plugins {
            None => (None, BTreeMap::new()),
            Some(plugins) => {
                let span = plugins.span();
                match plugins.into_inner() {
                    toml::Value::Array(dirs) => {
                        let dirs = dirs
                            .into_iter()
                            .map(|dir| match dir {
                                toml::Value::String(dir) => {
                                    resolve("plugins", Spanned::new(span.clone(), dir))
                                }
                                _ => Err(error(
                                    span.clone(),
                                    "plugins: expected a list of plugin folders, or [plugins.NAME] tables".to_owned(),
                                )),
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        (Some(dirs), BTreeMap::new())
                    }
                    toml::Value::Table(each) => (
                        None,
                        plugin_settings(each).map_err(|message| error(span, message))?,
                    ),
                    _ => {
                        return Err(error(
                            span,
                            "plugins: expected a list of plugin folders, or [plugins.NAME] tables"
                                .to_owned(),
                        ));
                    }
                }
            }
        };
        let plugins = match (raw.plugin_dirs, listed) {
            (Some(dirs), Some(_)) => {
                let span = dirs.first().map_or(0..0, Spanned::span);
                return Err(error(
                    span,
                    "plugin_dirs and plugins = [...] both list plugin folders; keep plugin_dirs"
                        .to_owned(),
                ));
            }
            (Some(dirs), None) => dirs
                .into_iter()
                .map(|dir| resolve("plugin_dirs", dir))
                .collect::<Result<_, _>>()?,
            (None, listed) => listed.unwrap_or_default(),
        };
        let socket = raw.socket.map(|p| resolve("socket", p)).transpose()?;
        let state_dir = raw.state_dir.map(|p| resolve("state_dir", p)).transpose()?;
        let cgroup = match raw.cgroup {
            Some(auto) if auto.get_ref() == CGROUP_AUTO => Some(PathBuf::from(auto.into_inner())),
            cgroup => cgroup.map(|p| resolve("cgroup", p)).transpose()?,
        };
        let socket_mode = raw
            .socket_mode
            .map(|mode| {
                parse_mode(mode.get_ref()).ok_or_else(|| {
                    error(
                        mode.span(),
                        format!(
                            "socket_mode = {:?}: expected an octal mode from \"0000\" to \"0777\", like \"0660\"",
                            mode.get_ref()
                        ),
                    )
                })
            })
            .transpose()?;
        let socket_group = match raw.socket_group {
            None => None,
            Some(group) => {
                let gid = match group.get_ref() {
                    toml::Value::String(name) => group_id(name)
                        .map_err(|problem| format!("socket_group = {name:?}: {problem}")),
                    toml::Value::Integer(gid) => u32::try_from(*gid).map_err(|_| {
                        format!("socket_group = {gid}: expected a group name or a gid")
                    }),
                    _ => Err(format!(
                        "socket_group = {}: expected a group name or a gid",
                        text.get(group.span()).unwrap_or("?")
                    )),
                };
                Some(gid.map_err(|message| error(group.span(), message))?)
            }
        };
        let max_plugins = number("max_plugins", raw.max_plugins, 0, MAX_PLUGINS)?
            .filter(|max| *max > 0)
            .map(|max| usize::try_from(max).expect("at most 100000"));
        let worker_uid_base = number("worker_uid_base", raw.worker_uid_base, 1, MAX_UID_BASE)?
            .map(|base| u32::try_from(base).expect("below u32::MAX"));
        let start_timeout_ms = number("start_timeout_ms", raw.start_timeout_ms, 1, 3_600_000)?;
        let log_max_mb = number("log_max_mb", raw.log_max_mb, 1, 1024)?;
        let log_keep = number("log_keep", raw.log_keep, 0, 100)?
            .map(|keep| u32::try_from(keep).expect("at most 100"));
        let small = |n: u64| u32::try_from(n).expect("checked against a u32 range");
        let record_calls = number("record_calls", raw.record_calls, 0, 1000)?.map(small);
        let record_bytes = number("record_bytes", raw.record_bytes, 0, 16 << 20)?.map(small);
        let crash_reports_keep =
            number("crash_reports_keep", raw.crash_reports_keep, 1, 100_000)?.map(small);
        let crash_reports_days =
            number("crash_reports_days", raw.crash_reports_days, 1, 3650)?.map(small);
        let storage_sync = match raw.storage_sync {
            None => None,
            Some(sync) => Some(match sync.get_ref().as_str() {
                "normal" => StorageSync::Normal,
                "full" => StorageSync::Full,
                other => {
                    return Err(error(
                        sync.span(),
                        format!("storage_sync = {other:?}: expected \"normal\" or \"full\""),
                    ));
                }
            }),
        };
        let events_keep = number("events_keep", raw.events_keep, 100, 10_000_000)?;
        let events_days = number("events_days", raw.events_days, 1, 3650)?.map(small);
        let metrics_addr = match raw.metrics_addr {
            None => None,
            Some(addr) => Some(addr.get_ref().parse().map_err(|_| {
                error(
                    addr.span(),
                    format!(
                        "metrics_addr = {:?}: expected an address and port like \"127.0.0.1:9464\"",
                        addr.get_ref()
                    ),
                )
            })?),
        };
        let call_timeout_span = raw.call_timeout_ms.as_ref().map(Spanned::span);
        let (_, min, max) = Limits::RANGES
            .into_iter()
            .find(|(key, _, _)| *key == "call_timeout_ms")
            .expect("call_timeout_ms has a range");
        let call_timeout_ms = number("call_timeout_ms", raw.call_timeout_ms, min, max)?;
        let mut limits = raw.limits.validate(path, text)?;
        let call_timeout_ms = match (call_timeout_ms, limits.call_timeout_ms.take()) {
            (Some(top), Some(table)) if top != table => {
                return Err(error(
                    call_timeout_span.expect("call_timeout_ms was set"),
                    format!(
                        "call_timeout_ms = {top}: [limits] call_timeout_ms = {table} says otherwise; keep one of them"
                    ),
                ));
            }
            (top, table) => top.or(table),
        };
        let trusted_keys = raw
            .trusted_keys
            .into_iter()
            .map(|key| {
                crate::config::keys::check_public_key(key.get_ref())
                    .map_err(|e| error(key.span(), format!("trusted_keys: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.require_signature && trusted_keys.is_empty() {
            return Err(error(
                0..0,
                "require_signature = true needs trusted_keys: the public keys (`corral keygen` writes NAME.pub) whose signatures to accept".to_owned(),
            ));
        }
        Ok(Self {
            plugins,
            plugin_config,
            require_signature: raw.require_signature,
            trusted_keys,
            socket,
            socket_mode,
            socket_group,
            allowed_uids: raw.allowed_uids,
            admin_uids: raw.admin_uids,
            state_dir,
            strict: raw.strict,
            max_plugins,
            worker_uid_base,
            cgroup,
            call_timeout_ms,
            start_timeout_ms,
            log_max_mb,
            log_keep,
            record_calls,
            record_bytes,
            crash_reports_keep,
            crash_reports_days,
            storage_sync,
            events_keep,
            events_days,
            metrics_addr,
            limits,
        })
    }

    /// Puts what the file says into `config`, except the plugin folders
    /// and the socket, which [`ServeConfig::new`] takes.
    pub fn apply(&self, config: &mut ServeConfig) {
        if let Some(mode) = self.socket_mode {
            config.socket_mode = mode;
        }
        config.socket_group = self.socket_group.or(config.socket_group);
        config.allowed_uids.clone_from(&self.allowed_uids);
        config.admin_uids.clone_from(&self.admin_uids);
        if self.state_dir.is_some() {
            config.state_dir.clone_from(&self.state_dir);
        }
        if let Some(strict) = self.strict {
            config.strict = strict;
        }
        config.max_plugins = self.max_plugins.or(config.max_plugins);
        if let Some(base) = self.worker_uid_base {
            config.worker_uid_base = base;
        }
        if self.cgroup.is_some() {
            config.cgroup.clone_from(&self.cgroup);
        }
        if let Some(ms) = self.call_timeout_ms {
            config.call_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.start_timeout_ms {
            config.start_timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = self.log_max_mb {
            config.log_max_bytes = mb * 1024 * 1024;
        }
        if let Some(keep) = self.log_keep {
            config.log_keep = keep;
        }
        if let Some(calls) = self.record_calls {
            config.recording.calls = calls;
        }
        if let Some(bytes) = self.record_bytes {
            config.recording.bytes = bytes;
        }
        if let Some(keep) = self.crash_reports_keep {
            config.crash_reports_keep = keep;
        }
        if let Some(sync) = self.storage_sync {
            config.storage_sync = sync;
        }
        if let Some(keep) = self.events_keep {
            config.events_keep = keep;
        }
        if let Some(days) = self.events_days {
            config.events_max_age = Duration::from_secs(u64::from(days) * 86_400);
        }
        if let Some(days) = self.crash_reports_days {
            config.crash_reports_max_age = Duration::from_secs(u64::from(days) * 86_400);
        }
        config.metrics_addr = self.metrics_addr.or(config.metrics_addr);
        config.default_limits = self.limits.clone();
        config.plugin_config.clone_from(&self.plugin_config);
    }
}

/// The `[plugins.NAME]` tables: each may hold a `config` table.
fn plugin_settings(each: toml::Table) -> Result<BTreeMap<String, toml::Table>, String> {
    let mut overrides = BTreeMap::new();
    for (name, settings) in each {
        check_name(&name)
            .map_err(|problem| format!("[plugins.{name}]: a plugin name: {problem}"))?;
        let toml::Value::Table(settings) = settings else {
            return Err(format!(
                "plugins.{name}: expected a table like [plugins.{name}.config]"
            ));
        };
        for (key, value) in settings {
            match (key.as_str(), value) {
                ("config", toml::Value::Table(config)) => {
                    overrides.insert(name.clone(), config);
                }
                ("config", _) => {
                    return Err(format!(
                        "[plugins.{name}] config: expected a table, [plugins.{name}.config]"
                    ));
                }
                (other, _) => {
                    return Err(format!(
                        "[plugins.{name}] {other}: unknown key; expected `config`"
                    ));
                }
            }
        }
    }
    Ok(overrides)
}

/// `"0660"` (or `"660"`) as a mode; `None` unless 3 or 4 octal digits up
/// to 0777.
fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
}

/// The gid of group `name`.
#[cfg(target_os = "linux")]
fn group_id(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err("no such group on this system (give a group name or a gid)".to_owned()),
        Err(errno) => Err(format!("cannot look the group up: {errno}")),
    }
}

#[cfg(not(target_os = "linux"))]
fn group_id(_name: &str) -> Result<u32, String> {
    Err("group names are looked up on Linux only; give a gid".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("/etc/corral/corral.toml")).map_err(|e| e.to_string())
    }

    #[track_caller]
    fn refused(text: &str, expected: &str) {
        let message = parse(text).unwrap_err();
        assert!(
            message.starts_with("/etc/corral/corral.toml:") && message.contains(expected),
            "{text}\n=> {message}"
        );
    }

    /// The TOML example of this module's documentation.
    fn documented_example() -> String {
        include_str!("settings.rs")
            .lines()
            .map_while(|line| line.strip_prefix("//!"))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .skip_while(|line| *line != "```toml")
            .skip(1)
            .take_while(|line| *line != "```")
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn an_empty_file_says_nothing() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn the_documented_example_parses_with_every_key() {
        let text = documented_example().replace("\"corral\"", "\"root\"");
        let settings = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            settings,
            Settings {
                plugins: vec![
                    PathBuf::from("/etc/corral/plugins"),
                    PathBuf::from("/srv/corral/plugins")
                ],
                plugin_config: BTreeMap::from([(
                    "exporter".to_owned(),
                    toml::from_str("dpi = 600").unwrap()
                )]),
                socket: Some(PathBuf::from("/run/corral/corral.sock")),
                socket_mode: Some(0o660),
                socket_group: Some(0),
                allowed_uids: vec![1000],
                admin_uids: vec![1000],
                state_dir: Some(PathBuf::from("/var/lib/corral")),
                strict: Some(false),
                max_plugins: Some(100),
                worker_uid_base: Some(200_000),
                cgroup: Some(PathBuf::from("/sys/fs/cgroup/corral")),
                call_timeout_ms: Some(30_000),
                start_timeout_ms: Some(10_000),
                log_max_mb: Some(10),
                log_keep: Some(5),
                record_calls: Some(8),
                record_bytes: Some(65536),
                crash_reports_keep: Some(100),
                crash_reports_days: Some(30),
                storage_sync: Some(StorageSync::Normal),
                events_keep: Some(100_000),
                events_days: Some(30),
                metrics_addr: Some("127.0.0.1:9464".parse().unwrap()),
                require_signature: false,
                trusted_keys: vec![
                    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c".into()
                ],
                limits: Limits {
                    memory_mb: Some(256),
                    ..Limits::default()
                },
            }
        );
    }

    #[test]
    fn plugin_folders_come_from_plugin_dirs_or_a_plugins_list() {
        let listed = parse("plugins = [\"a\"]").unwrap();
        let dirs = parse("plugin_dirs = [\"a\"]\n[plugins.x.config]\nk = 1").unwrap();
        assert_eq!(listed.plugins, dirs.plugins);
        assert!(listed.plugin_config.is_empty());
        assert_eq!(dirs.plugin_config["x"], toml::from_str("k = 1").unwrap());
        let both = parse("plugin_dirs = [\"a\"]\nplugins = [\"b\"]").unwrap_err();
        assert!(both.to_string().contains("keep plugin_dirs"), "{both}");
    }

    #[test]
    fn per_plugin_tables_are_checked() {
        for (text, expected) in [
            (
                "[plugins.x]\nenabled = true",
                "[plugins.x] enabled: unknown key",
            ),
            (
                "[plugins.x]\nconfig = 3",
                "[plugins.x] config: expected a table",
            ),
            ("[plugins.X.config]\nk = 1", "[plugins.X]: a plugin name"),
            ("plugins = 3", "expected a list of plugin folders"),
            ("plugins = [3]", "expected a list of plugin folders"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let settings = Settings::parse(
            "plugins = [\"p\", \"/abs\"]\nsocket = \"run/c.sock\"\nstate_dir = \"state\"\n",
            Path::new("conf/corral.toml"),
        )
        .unwrap();
        assert_eq!(
            settings.plugins,
            [PathBuf::from("conf/p"), PathBuf::from("/abs")]
        );
        assert_eq!(settings.socket, Some(PathBuf::from("conf/run/c.sock")));
        assert_eq!(settings.state_dir, Some(PathBuf::from("conf/state")));
        let bare = Settings::parse("plugins = [\"p\"]\n", Path::new("corral.toml")).unwrap();
        assert_eq!(bare.plugins, [PathBuf::from("p")]);
    }

    #[test]
    fn unknown_keys_are_refused_with_file_line_and_key() {
        let message = parse("strict = true\nplugin_folders = [\"p\"]\n").unwrap_err();
        assert!(
            message.starts_with("/etc/corral/corral.toml:2:1: unknown field `plugin_folders`"),
            "{message}"
        );
        refused("[limits]\nmemroy_mb = 1\n", "unknown field `memroy_mb`");
        refused("[server]\n", "unknown field `server`");
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_expected() {
        let cases = [
            (
                "socket_mode = \"0888\"",
                "1:15: socket_mode = \"0888\": expected an octal mode",
            ),
            (
                "socket_mode = \"1777\"",
                "socket_mode = \"1777\": expected an octal mode",
            ),
            ("socket_mode = \"rw\"", "socket_mode = \"rw\": expected"),
            ("socket_mode = 660", "socket_mode: invalid type"),
            (
                "socket_group = \"no-such-group-x\"",
                "socket_group = \"no-such-group-x\": no such group",
            ),
            (
                "socket_group = -1",
                "1:16: socket_group = -1: expected a group name or a gid",
            ),
            (
                "socket_group = [1]",
                "socket_group = [1]: expected a group name or a gid",
            ),
            ("allowed_uids = [-1]", "allowed_uids: invalid value"),
            ("admin_uids = \"1000\"", "admin_uids: invalid type"),
            (
                "plugins = \"p\"",
                "plugins: expected a list of plugin folders",
            ),
            ("plugin_dirs = \"p\"", "plugin_dirs: invalid type"),
            ("plugins = [\"\"]", "plugins = \"\": expected a path"),
            ("strict = \"yes\"", "strict: invalid type"),
            (
                "max_plugins = 100001",
                "max_plugins = 100001: expected 0 to 100000",
            ),
            ("worker_uid_base = 0", "worker_uid_base = 0: expected 1 to"),
            (
                "call_timeout_ms = 0",
                "call_timeout_ms = 0: expected 1 to 86400000",
            ),
            (
                "start_timeout_ms = 0",
                "start_timeout_ms = 0: expected 1 to 3600000",
            ),
            (
                "[limits]\nmemory_mb = 1",
                "2:13: [limits] memory_mb = 1: expected 16 to",
            ),
            (
                "call_timeout_ms = 5\n[limits]\ncall_timeout_ms = 6",
                "1:19: call_timeout_ms = 5: [limits] call_timeout_ms = 6 says otherwise",
            ),
            ("socket = ", "1:10:"),
            (
                "storage_sync = \"always\"",
                "1:16: storage_sync = \"always\": expected \"normal\" or \"full\"",
            ),
        ];
        for (text, expected) in cases {
            refused(text, expected);
        }
    }

    #[test]
    fn values_are_read() {
        let settings = parse(
            "socket_mode = \"660\"\nsocket_group = 42\nmax_plugins = 0\n[limits]\ncall_timeout_ms = 250\nthreads = 8\n",
        )
        .unwrap();
        assert_eq!(settings.socket_mode, Some(0o660));
        assert_eq!(settings.socket_group, Some(42));
        assert_eq!(settings.max_plugins, None, "0 = no cap");
        assert_eq!(settings.call_timeout_ms, Some(250));
        assert_eq!(settings.limits.call_timeout_ms, None);
        assert_eq!(settings.limits.threads, Some(8));
        let same = parse("call_timeout_ms = 7\n[limits]\ncall_timeout_ms = 7\n").unwrap();
        assert_eq!(same.call_timeout_ms, Some(7));
    }

    #[test]
    fn apply_fills_a_serve_config() {
        let settings = parse(
            "socket_mode = \"0640\"\nallowed_uids = [7]\nadmin_uids = [8]\nstrict = true\nmax_plugins = 3\nworker_uid_base = 1000\ncall_timeout_ms = 100\nstart_timeout_ms = 200\ncgroup = \"cg\"\n[limits]\nmemory_mb = 32\n",
        )
        .unwrap();
        let mut config = ServeConfig::new(vec![], PathBuf::from("s"), PathBuf::from("w"));
        settings.apply(&mut config);
        assert_eq!(config.socket_mode, 0o640);
        assert_eq!(config.allowed_uids, [7]);
        assert_eq!(config.admin_uids, [8]);
        assert!(config.strict);
        assert_eq!(config.max_plugins, Some(3));
        assert_eq!(config.worker_uid_base, 1000);
        assert_eq!(config.call_timeout, Duration::from_millis(100));
        assert_eq!(config.start_timeout, Duration::from_millis(200));
        assert_eq!(config.cgroup, Some(PathBuf::from("/etc/corral/cg")));
        assert_eq!(config.default_limits.memory_mb, Some(32));

        let mut untouched = ServeConfig::new(vec![], PathBuf::from("s"), PathBuf::from("w"));
        Settings::default().apply(&mut untouched);
        assert_eq!(untouched.socket_mode, 0o600);
        assert_eq!(untouched.call_timeout, Duration::from_secs(30));
        assert_eq!(untouched.max_plugins, None);
    }
}
