//! `plugin.toml`: the manifest every plugin folder holds, parsed and
//! validated without touching the file system.
//!
//! Every key, with its default:
//!
//! ```toml
//! [plugin]
//! name = "hello"          # 1-64 of a-z 0-9 -, not starting with -
//! version = "1.2.0"       # semver
//! kind = "native"         # native | wasm | js
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
//! syscalls = ["inotify_init1"]  # refused syscalls to allow (see `seccomp`); never the kill tier
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
//! storage_keys = 1000000  # and the keys it may hold, 1 to 4294967296
//!
//! [restart]
//! policy = "always"       # always | on-failure | never
//! give_up_after = 10      # failures in a row before state failed, 1 to 1000 (default: never)
//! backoff_ms = 1000       # delay after the 2nd failure, doubling; 1 to 3600000
//! backoff_max_ms = 60000  # cap of the delay; backoff_ms to 3600000
//! spare = false           # keep a sandboxed spare worker for a fast restart
//! fresh_exec = false      # exec each worker afresh instead of forking the zygote
//!
//! [health]
//! interval_ms = 10000     # period of the health call; 0 = none, else 100 to 3600000
//! timeout_ms = 1000       # deadline of one health call, 1 to 600000
//! failures = 3            # failed checks in a row before a restart, 1 to 100
//!
//! [debug]
//! record = true           # keep the last calls' inputs for crash reports
//! ```
//!
//! Unknown keys are errors. Every error names the file, the line and
//! column, the key and what is expected. [`LimitsTable`] and
//! [`ManifestError::from_toml`] let other corral TOML files (the
//! supervisor's `corral.toml`) share the same checks and messages.

mod dependencies;
mod error;
mod limits;
mod methods;
mod names;
mod permissions;
#[cfg(test)]
mod properties;
mod settings;

pub use error::ManifestError;
pub use limits::{Limits, LimitsTable};
pub use methods::{MAX_DESCRIPTION_LEN, Method, check_declared};
pub use names::{
    MAX_METHOD_LEN, MAX_NAME_LEN, MAX_TOPIC_LEN, NameError, check_method, check_name, check_topic,
    topic_matches,
};
pub use permissions::{HostGrant, PermissionError, Permissions, Syscall};
pub use settings::{HealthSettings, RestartPolicy, RestartSettings, StartMode};

use crate::abi::ABI_VERSION;
use crate::wire::PluginKind;
use dependencies::{dependency_ranges, parse_range};
use methods::{RawMethod, extension_points, methods};
use names::{check_entry, subscriptions};
use serde::Deserialize;
use settings::{RawHealth, RawRestart, health_settings, restart_settings, spawn_mode};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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
    /// `[debug] record`: the worker records its last calls, inputs
    /// included, for crash reports (off for plugins whose inputs are
    /// secret).
    pub record: bool,
}

/// `plugin.toml` as written, values with their spans, before the checks.
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
    debug: RawDebug,
    #[serde(default)]
    methods: Vec<RawMethod>,
    config: Option<Spanned<toml::Table>>,
}

/// `[debug]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDebug {
    record: Option<bool>,
}

/// `[plugin]` as written.
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

/// `[events]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default)]
    subscribe: Vec<Spanned<String>>,
}

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
        let start = spawn_mode(plugin.start).map_err(spanned)?;

        let dependencies = dependency_ranges(raw.dependencies, name).map_err(spanned)?;

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
        let subscribe = subscriptions(raw.events.subscribe).map_err(spanned)?;

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
            record: raw.debug.record.unwrap_or(true),
        })
    }
}

/// `text` in lower case when it is 64 hex digits.
fn check_sha256(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal good manifest; the tests of every file of this module use
    /// it and the helpers below.
    pub(super) const GOOD: &str = r#"
[plugin]
name = "hello"
version = "1.2.0"
kind = "native"
entry = "libhello.so"
api = 1
"#;

    pub(super) fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/hello/plugin.toml"))
    }

    pub(super) fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Asserts that `text` is refused with `expected` in the message, at
    /// `line` (1-based) of the manifest.
    #[track_caller]
    pub(super) fn refused_at(text: &str, line: usize, expected: &str) {
        let message = error(text);
        assert!(message.contains(expected), "{text}\n=> {message}");
        let prefix = format!("plugins/hello/plugin.toml:{line}:");
        assert!(message.starts_with(&prefix), "{text}\n=> {message}");
    }

    /// The TOML example of this module's documentation.
    fn documented_example() -> String {
        let source = include_str!("mod.rs");
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
                fresh_exec: false,
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
    fn config_holds_any_toml_up_to_64_kib() {
        let text = format!(
            "{GOOD}provides = [\"exporter\", \"preview\"]\n\n\
             [[methods]]\nname = \"export\"\ndescription = \"Writes PDF\"\n\n\
             [[methods]]\nname = \"page.count\"\n\n\
             [config]\ndpi = 300\n[config.paper]\nsize = \"a4\"\n"
        );
        let manifest = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(manifest.config["dpi"].as_integer(), Some(300));
        assert_eq!(manifest.config["paper"]["size"].as_str(), Some("a4"));
        let plain = parse(GOOD).unwrap();
        assert!(plain.config.is_empty());
        let huge = format!("{GOOD}\n[config]\nblob = \"{}\"\n", "x".repeat(70_000));
        refused_at(&huge, 9, "over the 65536 corral passes to a plugin");
    }
}
