//! `corral check PATH`: validates a plugin folder without running
//! anything, and the entry-file hashing the supervisor uses to check a
//! manifest's `sha256` before every load.
//!
//! What is checked: the manifest (every rule of
//! [`Manifest::parse`](corral_plugin_api::manifest::Manifest::parse)); the
//! entry file exists, is a readable regular file and looks like its kind
//! (an ELF file for `native`, a `\0asm` module or UTF-8 `.wat` text for
//! `wasm`); its SHA-256 against `sha256`; the `[permissions]` paths exist;
//! `requires` admits this corral. Dependencies are listed, not resolved:
//! that needs the other plugins.

use crate::process::integrity;
use corral_plugin_api::manifest::Manifest;
use corral_plugin_api::wire::PluginKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The manifest file in every plugin folder.
const MANIFEST: &str = "plugin.toml";

/// The version of this corral, which `requires` is checked against.
pub const CORRAL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `corral check` found: the plugin as far as it could be read, and
/// every problem. Serialized as `corral check --json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No problems: the supervisor would load this plugin.
    pub valid: bool,
    /// Each problem, a message naming the file and, when known, the line
    /// and key.
    pub problems: Vec<String>,
    /// The manifest file.
    pub manifest: PathBuf,
    /// `[plugin] name`, when the manifest could be read.
    pub name: Option<String>,
    /// `[plugin] version`.
    pub version: Option<String>,
    /// `native` or `wasm`.
    pub kind: Option<&'static str>,
    /// `[plugin] wasi`.
    pub wasi: bool,
    /// `[plugin] entry`, as written.
    pub entry: Option<PathBuf>,
    /// The entry file's path (the plugin folder joined with `entry`).
    pub entry_path: Option<PathBuf>,
    /// The entry file's SHA-256 (lowercase hex), when it could be read:
    /// what `[plugin] sha256` should say.
    pub sha256: Option<String>,
    /// `[plugin] sha256`, when set.
    pub manifest_sha256: Option<String>,
    /// `[plugin] requires`, when set.
    pub requires: Option<String>,
    /// The version of the corral that checked, which `requires` must admit.
    pub corral_version: &'static str,
    /// `[plugin] start`: `eager` or `lazy`.
    pub start: Option<&'static str>,
    /// `[dependencies]`: name → semver range.
    pub dependencies: BTreeMap<String, String>,
    /// `[permissions] read`, as written.
    pub read: Vec<PathBuf>,
    /// `[permissions] write`, as written.
    pub write: Vec<PathBuf>,
    /// `[permissions] network`.
    pub network: bool,
    /// `[permissions] syscalls`: what it may make beyond the seccomp
    /// baseline.
    pub syscalls: Vec<String>,
}

/// `PATH` is neither a plugin folder nor a file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct CheckError {
    path: PathBuf,
    source: io::Error,
}

/// Checks the plugin folder (or the `plugin.toml`) at `path` without
/// running it. `Err` only when `path` does not exist at all; everything
/// wrong with the plugin is in the report's `problems`.
pub fn check(path: &Path) -> Result<Report, CheckError> {
    let metadata = std::fs::metadata(path).map_err(|source| CheckError {
        path: path.to_owned(),
        source,
    })?;
    let (dir, manifest_path) = if metadata.is_dir() {
        (path.to_owned(), path.join(MANIFEST))
    } else {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (dir.to_owned(), path.to_owned())
    };
    let mut report = Report {
        manifest: manifest_path.clone(),
        corral_version: CORRAL_VERSION,
        ..Report::default()
    };
    match std::fs::read_to_string(&manifest_path) {
        Err(error) => report.problems.push(format!(
            "{}: {}",
            manifest_path.display(),
            if error.kind() == io::ErrorKind::NotFound {
                "no plugin.toml here: is this a plugin folder?".to_owned()
            } else {
                error.to_string()
            }
        )),
        Ok(text) => match Manifest::parse(&text, &manifest_path) {
            Err(error) => report.problems.push(error.to_string()),
            Ok(manifest) => check_manifest(&manifest, &dir, &manifest_path, &mut report),
        },
    }
    report.valid = report.problems.is_empty();
    Ok(report)
}

fn check_manifest(manifest: &Manifest, dir: &Path, manifest_path: &Path, report: &mut Report) {
    report.name = Some(manifest.name.clone());
    report.version = Some(manifest.version.to_string());
    report.kind = Some(manifest.kind.as_str());
    report.wasi = manifest.wasi;
    report.entry = Some(manifest.entry.clone());
    report.manifest_sha256.clone_from(&manifest.sha256);
    report.requires = manifest.requires.as_ref().map(ToString::to_string);
    report.start = Some(manifest.start.as_str());
    report.dependencies = manifest
        .dependencies
        .iter()
        .map(|(name, range)| (name.clone(), range.to_string()))
        .collect();
    report.read.clone_from(&manifest.permissions.read);
    report.write.clone_from(&manifest.permissions.write);
    report.network = manifest.permissions.network;
    report.syscalls = manifest.permissions.syscall_names();

    let manifest_name = manifest_path
        .file_name()
        .map_or_else(|| MANIFEST.into(), |name| name.to_string_lossy());
    let entry_path = dir.join(&manifest.entry);
    report.entry_path = Some(entry_path.clone());
    match check_entry(&entry_path, &manifest.entry, manifest.kind) {
        Err(problem) => report.problems.push(problem),
        Ok(sha256) => {
            if let Some(expected) = &manifest.sha256
                && *expected != sha256
            {
                report.problems.push(format!(
                    "{}: {}",
                    manifest_path.display(),
                    integrity::mismatch(&manifest_name, expected, &manifest.entry, &sha256)
                ));
            }
            report.sha256 = Some(sha256);
        }
    }

    let permissions = [
        ("read", &manifest.permissions.read),
        ("write", &manifest.permissions.write),
    ];
    for (key, paths) in permissions {
        for path in paths {
            let full = dir.join(path);
            if let Err(error) = std::fs::metadata(&full) {
                report.problems.push(format!(
                    "{}: [permissions] {key}: {}: {error} (a permitted path must exist when the worker starts)",
                    manifest_path.display(),
                    full.display()
                ));
            }
        }
    }

    if let Some(requires) = &manifest.requires {
        let corral = semver::Version::parse(CORRAL_VERSION).expect("corral's version is semver");
        if !requires.matches(&corral) {
            report.problems.push(format!(
                "{}: [plugin] requires = \"{requires}\": this corral is {corral}",
                manifest_path.display()
            ));
        }
    }
}

/// Checks that the entry at `path` (`entry` as the manifest writes it) is
/// a readable regular file that looks like `kind`; returns its SHA-256.
fn check_entry(path: &Path, entry: &Path, kind: PluginKind) -> Result<String, String> {
    let name = |problem: String| format!("entry {}: {problem}", entry.display());
    let metadata = std::fs::metadata(path).map_err(|error| {
        let hint = match std::fs::read_link(path) {
            Ok(target) => format!(
                " (a symlink to {}, which does not exist: build the plugin first)",
                target.display()
            ),
            Err(_) => String::new(),
        };
        name(format!("{}: {error}{hint}", path.display()))
    })?;
    if !metadata.is_file() {
        let what = if metadata.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(name(format!("{} is {what}", path.display())));
    }
    let mut file = File::open(path)
        .map_err(|error| name(format!("cannot read {}: {error}", path.display())))?;
    let mut head = Vec::with_capacity(4);
    (&mut file)
        .take(4)
        .read_to_end(&mut head)
        .map_err(|error| name(format!("cannot read {}: {error}", path.display())))?;
    let elf = head == b"\x7fELF";
    let wasm = head == b"\0asm";
    let wat = entry
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("wat"));
    let hex_head = || {
        head.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match kind {
        PluginKind::Native if !elf => {
            let looks = if wasm {
                "a wasm module: set kind = \"wasm\"".to_owned()
            } else {
                format!(
                    "starts with [{}], not \\x7fELF: expected a shared library (a cdylib built for Linux)",
                    hex_head()
                )
            };
            return Err(name(format!("not an ELF shared library: {looks}")));
        }
        PluginKind::Wasm if wat => {
            let mut text = Vec::new();
            File::open(path)
                .and_then(|mut file| file.read_to_end(&mut text))
                .map_err(|error| name(format!("cannot read {}: {error}", path.display())))?;
            if let Err(error) = std::str::from_utf8(&text) {
                return Err(name(format!(
                    "not WebAssembly text: not UTF-8 at byte {}",
                    error.valid_up_to()
                )));
            }
        }
        PluginKind::Js => {
            let mut source = Vec::new();
            File::open(path)
                .and_then(|mut file| file.read_to_end(&mut source))
                .map_err(|error| name(format!("cannot read {}: {error}", path.display())))?;
            if elf || wasm || std::str::from_utf8(&source).is_err() {
                return Err(name(format!(
                    "not a JavaScript module: starts with [{}], not UTF-8 text (name the bundle your build makes, e.g. dist/plugin.js)",
                    hex_head()
                )));
            }
        }
        PluginKind::Wasm if !wasm => {
            let looks = if elf {
                "an ELF file: set kind = \"native\"".to_owned()
            } else {
                format!("starts with [{}], not \\0asm", hex_head())
            };
            return Err(name(format!("not a wasm module: {looks}")));
        }
        _ => {}
    }
    integrity::file_sha256(&file)
        .map_err(|error| name(format!("cannot read {}: {error}", path.display())))
}

impl Report {
    /// The human report `corral check` prints: the plugin, its entry and
    /// hash, its dependencies, then `ok` or each problem.
    pub fn text(&self) -> String {
        let mut out = String::new();
        match (&self.name, &self.version, self.kind) {
            (Some(name), Some(version), Some(kind)) => {
                out += &format!(
                    "{name} {version} ({kind}{})\n",
                    if self.wasi { ", wasi" } else { "" }
                );
            }
            _ => out += &format!("{}\n", self.manifest.display()),
        }
        let row = |out: &mut String, key: &str, value: &str| {
            *out += &format!("  {key:<13} {value}\n");
        };
        if let Some(entry) = &self.entry {
            row(&mut out, "entry", &entry.display().to_string());
        }
        if let Some(sha256) = &self.sha256 {
            out += &format!("  sha256 = \"{sha256}\"\n");
        }
        if let Some(requires) = &self.requires {
            row(
                &mut out,
                "requires",
                &format!("{requires} (this corral: {})", self.corral_version),
            );
        }
        if self.name.is_some() {
            let dependencies = if self.dependencies.is_empty() {
                "(none)".to_owned()
            } else {
                self.dependencies
                    .iter()
                    .map(|(name, range)| format!("{name} {range}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            row(&mut out, "dependencies", &dependencies);
            if !self.syscalls.is_empty() {
                row(
                    &mut out,
                    "syscalls",
                    &format!("the seccomp baseline + {}", self.syscalls.join(", ")),
                );
            }
        }
        if self.problems.is_empty() {
            out += "ok\n";
        } else {
            for problem in &self.problems {
                out += &format!("problem: {problem}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn folder(manifest_extra: &str, entry: &str, contents: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let kind = if entry.ends_with(".wasm") || entry.ends_with(".wat") {
            "wasm"
        } else {
            "native"
        };
        fs::write(
            dir.path().join(MANIFEST),
            format!(
                "[plugin]\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"{kind}\"\nentry = \"{entry}\"\napi = 1\n{manifest_extra}"
            ),
        )
        .unwrap();
        fs::write(dir.path().join(entry), contents).unwrap();
        dir
    }

    fn problems(dir: &Path) -> String {
        let report = check(dir).unwrap();
        assert_eq!(report.valid, report.problems.is_empty());
        report.problems.join("\n")
    }

    #[test]
    fn a_good_native_plugin_is_valid_with_its_hash() {
        let dir = folder("", "libp.so", b"\x7fELF and the rest");
        let report = check(dir.path()).unwrap();
        assert!(report.valid, "{:?}", report.problems);
        assert_eq!(report.name.as_deref(), Some("p"));
        let sha256 =
            integrity::file_sha256(&File::open(dir.path().join("libp.so")).unwrap()).unwrap();
        assert_eq!(report.sha256.as_deref(), Some(sha256.as_str()));
        let text = report.text();
        assert!(text.starts_with("p 1.0.0 (native)\n"), "{text}");
        assert!(
            text.contains(&format!("  sha256 = \"{sha256}\"\n")),
            "{text}"
        );
        assert!(text.ends_with("ok\n"), "{text}");
        // The manifest file itself works as PATH too.
        assert!(check(&dir.path().join(MANIFEST)).unwrap().valid);
    }

    #[test]
    fn sha256_mismatch_shows_both_hashes() {
        let dir = folder(
            &format!("sha256 = \"{}\"\n", "A".repeat(64)),
            "libp.so",
            b"\x7fELF",
        );
        let actual =
            integrity::file_sha256(&File::open(dir.path().join("libp.so")).unwrap()).unwrap();
        let found = problems(dir.path());
        assert!(
            found.ends_with(&format!(
                "plugin.toml: sha256 mismatch: plugin.toml says {}, libp.so is {actual}",
                "a".repeat(64)
            )),
            "{found}"
        );
        let matching = folder(
            "sha256 = \"2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824\"\n",
            "libp.so",
            b"hello",
        );
        assert!(!problems(matching.path()).contains("sha256"));
    }

    #[test]
    fn entries_must_look_like_their_kind() {
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "libp.so",
                b"MZ\x90\x00",
                "entry libp.so: not an ELF shared library: starts with [4d 5a 90 00]",
            ),
            (
                "libp.so",
                b"\0asm\x01",
                "not an ELF shared library: a wasm module: set kind = \"wasm\"",
            ),
            ("libp.so", b"", "starts with [], not \\x7fELF"),
            (
                "p.wasm",
                b"\x7fELF",
                "entry p.wasm: not a wasm module: an ELF file: set kind = \"native\"",
            ),
            (
                "p.wasm",
                b"(module)",
                "not a wasm module: starts with [28 6d 6f 64], not \\0asm",
            ),
            (
                "p.wat",
                b"(module \xff)",
                "entry p.wat: not WebAssembly text: not UTF-8 at byte 8",
            ),
        ];
        for (entry, contents, expected) in cases {
            let dir = folder("", entry, contents);
            let problems = problems(dir.path());
            assert!(problems.contains(expected), "{entry}: {problems}");
        }
        for (entry, contents) in [("p.wasm", &b"\0asm\x01\0\0\0"[..]), ("p.wat", b"(module)")] {
            let dir = folder("", entry, contents);
            assert_eq!(problems(dir.path()), "", "{entry}");
        }
    }

    #[test]
    fn missing_or_odd_entries_name_the_path() {
        let dir = folder("", "libp.so", b"\x7fELF");
        fs::remove_file(dir.path().join("libp.so")).unwrap();
        let problems_text = problems(dir.path());
        let path = dir.path().join("libp.so");
        assert!(
            problems_text.contains(&format!("entry libp.so: {}: No such file", path.display())),
            "{problems_text}"
        );
        std::os::unix::fs::symlink("../target/release/libp.so", &path).unwrap();
        assert!(problems(dir.path()).contains("build the plugin first"));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(
            problems(dir.path())
                .contains(&format!("entry libp.so: {} is a folder", path.display()))
        );
    }

    #[test]
    fn permissions_must_exist_and_requires_must_admit_this_corral() {
        let dir = folder(
            "requires = \">=1000\"\n[permissions]\nread = [\"data\"]\nwrite = [\"/nonexistent/corral\"]\n",
            "libp.so",
            b"\x7fELF",
        );
        let problems = problems(dir.path());
        assert!(
            problems.contains(&format!(
                "[permissions] read: {}: No such file",
                dir.path().join("data").display()
            )),
            "{problems}"
        );
        assert!(
            problems.contains("[permissions] write: /nonexistent/corral"),
            "{problems}"
        );
        assert!(
            problems.contains(&format!(
                "[plugin] requires = \">=1000\": this corral is {CORRAL_VERSION}"
            )),
            "{problems}"
        );
        fs::create_dir(dir.path().join("data")).unwrap();
        let dir = folder(
            &format!(
                "requires = \"={CORRAL_VERSION}\"\n[permissions]\nread = [\"libp.so\"]\n[dependencies]\nstore = \"^1\"\n"
            ),
            "libp.so",
            b"\x7fELF",
        );
        let report = check(dir.path()).unwrap();
        assert!(report.valid, "{:?}", report.problems);
        assert!(
            report.text().contains("  dependencies  store ^1\n"),
            "{}",
            report.text()
        );
    }

    #[test]
    fn bad_or_missing_manifests_are_problems_and_a_missing_path_an_error() {
        let dir = folder("colour = 1\n", "libp.so", b"\x7fELF");
        let report = check(dir.path()).unwrap();
        assert!(!report.valid);
        assert!(report.problems[0].contains("plugin.toml:7:1: unknown field `colour`"));
        assert!(report.text().ends_with("unknown field `colour`, expected one of `name`, `version`, `kind`, `wasi`, `entry`, `api`, `requires`, `sha256`, `start`, `provides`\n"), "{}", report.text());
        let empty = tempfile::tempdir().unwrap();
        assert!(problems(empty.path()).contains("no plugin.toml here"));
        assert!(check(&empty.path().join("nothing")).is_err());
    }
}
