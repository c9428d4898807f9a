//! `plugin.toml`: the manifest every plugin folder holds, parsed and
//! validated without touching the file system.
//!
//! ```toml
//! [plugin]
//! name = "hello"          # [a-z0-9-]{1,64}, starting with a letter or digit
//! version = "1.2.0"       # semver
//! kind = "native"         # native | wasm
//! wasi = false            # wasm only: link WASI preview 1 (wasm32-wasip1)
//! entry = "libhello.so"   # relative to the manifest's folder, no ".."
//! api = 1                 # plugin ABI version
//! ```
//!
//! Unknown keys are errors. Every error names the file, the line and
//! column, the key and what is expected.

use crate::abi::ABI_VERSION;
use crate::wire::PluginKind;
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// never leaving the folder.
    pub entry: PathBuf,
    /// Plugin ABI version.
    pub api: u32,
    /// What the plugin may touch (`[permissions]`); nothing by default.
    pub permissions: Permissions,
    /// Limits the plugin asks for (`[limits]`); unset ones take the
    /// supervisor's defaults.
    pub limits: Limits,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<Spanned<u64>>,
    cpu_seconds: Option<Spanned<u64>>,
    cpu_percent: Option<Spanned<u64>>,
    call_timeout_ms: Option<Spanned<u64>>,
    open_files: Option<Spanned<u64>>,
    threads: Option<Spanned<u64>>,
    file_size_mb: Option<Spanned<u64>>,
    wasm_fuel: Option<Spanned<u64>>,
}

/// A manifest that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what is expected.
    pub message: String,
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
    permissions: Permissions,
    limits: Option<RawLimits>,
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
}

impl Manifest {
    /// Parses and validates manifest `text`; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let error = |span: Option<Range<usize>>, message: String| ManifestError {
            path: path.to_owned(),
            position: span.map(|span| line_column(text, span.start)),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = match e.span().and_then(|span| key_at(text, span.start)) {
                Some(key) if !e.message().contains("unknown field") => {
                    format!("{key}: {}", e.message())
                }
                _ => e.message().to_owned(),
            };
            error(e.span(), message)
        })?;
        let plugin = raw.plugin;

        let name = plugin.name.get_ref();
        if let Err(problem) = check_name(name) {
            return Err(error(
                Some(plugin.name.span()),
                format!("[plugin] name = {name:?}: {problem}"),
            ));
        }
        let version = semver::Version::parse(plugin.version.get_ref()).map_err(|e| {
            error(
                Some(plugin.version.span()),
                format!(
                    "[plugin] version = {:?}: not a semver version like \"1.2.0\": {e}",
                    plugin.version.get_ref()
                ),
            )
        })?;
        let entry = check_entry(plugin.entry.get_ref()).map_err(|problem| {
            error(
                Some(plugin.entry.span()),
                format!("[plugin] entry = {:?}: {problem}", plugin.entry.get_ref()),
            )
        })?;
        let api = *plugin.api.get_ref();
        if api != ABI_VERSION {
            return Err(error(
                Some(plugin.api.span()),
                format!("[plugin] api = {api}: this corral speaks plugin ABI {ABI_VERSION}"),
            ));
        }
        let wasi = plugin.wasi.as_ref().is_some_and(|wasi| *wasi.get_ref());
        if wasi && plugin.kind != PluginKind::Wasm {
            return Err(error(
                plugin.wasi.map(|wasi| wasi.span()),
                "[plugin] wasi = true: WASI is for wasm plugins; set kind = \"wasm\" or remove `wasi`"
                    .to_owned(),
            ));
        }
        let limits = match raw.limits {
            Some(limits) => {
                let range = |value: Option<Spanned<u64>>, key: &str, min: u64, max: u64| match value
                {
                    Some(value) if !(min..=max).contains(value.get_ref()) => Err(error(
                        Some(value.span()),
                        format!(
                            "[limits] {key} = {}: expected {min} to {max}",
                            value.get_ref()
                        ),
                    )),
                    value => Ok(value.map(Spanned::into_inner)),
                };
                Limits {
                    memory_mb: range(limits.memory_mb, "memory_mb", 16, 1 << 20)?,
                    cpu_seconds: range(limits.cpu_seconds, "cpu_seconds", 1, 1 << 32)?,
                    cpu_percent: range(limits.cpu_percent, "cpu_percent", 1, 100 * 1024)?,
                    call_timeout_ms: range(
                        limits.call_timeout_ms,
                        "call_timeout_ms",
                        1,
                        24 * 3_600_000,
                    )?,
                    open_files: range(limits.open_files, "open_files", 8, 1 << 20)?,
                    threads: range(limits.threads, "threads", 1, 1 << 16)?,
                    file_size_mb: range(limits.file_size_mb, "file_size_mb", 1, 1 << 30)?,
                    wasm_fuel: range(limits.wasm_fuel, "wasm_fuel", 0, u64::MAX)?,
                }
            }
            None => Limits::default(),
        };
        Ok(Self {
            name: name.clone(),
            version,
            kind: plugin.kind,
            wasi,
            entry,
            api,
            permissions: raw.permissions,
            limits,
        })
    }
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

fn check_entry(entry: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(entry);
    if entry.is_empty() || entry.contains('\0') {
        return Err("expected a file name relative to the plugin folder");
    }
    let mut normal = false;
    for component in path.components() {
        match component {
            Component::Normal(_) => normal = true,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the plugin folder, not absolute");
            }
            Component::ParentDir => return Err("must stay inside the plugin folder (no \"..\")"),
        }
    }
    if normal {
        Ok(path.to_owned())
    } else {
        Err("expected a file name relative to the plugin folder")
    }
}

/// The `[table] key` whose value stands at `offset`, if the line there is
/// a `key = value` line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    Some(format!("{table} {}", key.trim()).trim_start().to_owned())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |newline| before.len() - newline - 1)
        + 1;
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

    #[test]
    fn parses_a_good_manifest() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.version, semver::Version::new(1, 2, 0));
        assert_eq!(manifest.kind, PluginKind::Native);
        assert_eq!(manifest.entry, Path::new("libhello.so"));
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
        let wasm = GOOD.replace("kind = \"native\"", "kind = \"wasm\"\nwasi = true");
        assert!(parse(&wasm).unwrap().wasi);
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
    fn names() {
        for good in ["a", "hello-world", "x2", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "ä", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
