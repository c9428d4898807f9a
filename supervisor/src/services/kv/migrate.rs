//! Storage of earlier versions: one file per key under `kv/NAME/`, the
//! key percent-encoded in the file name. Moved into `kv/NAME.db` once, at
//! start, before any plugin runs: the files are read, written in one
//! transaction, and deleted after it commits. A crash between the two
//! leaves files whose values the database already holds; the next start
//! imports them again, which changes nothing.

use super::{Kv, KvError, Quota};
use corral_plugin_api::kv::{KvWrite, check_key};
use corral_plugin_api::manifest::check_name;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fs;
use std::path::Path;
use tracing::{info, warn};

/// What moved from one plugin's per-key files into its database.
#[derive(Debug)]
pub(crate) struct Migrated {
    pub(crate) plugin: String,
    /// Keys moved, and their keys' and values' bytes.
    pub(crate) keys: usize,
    pub(crate) bytes: u64,
    /// Files no key of earlier versions gives, left in place.
    pub(crate) left: Vec<String>,
}

impl Migrated {
    /// The event saying so.
    pub(crate) fn describe(&self, root: &Path) -> String {
        let mut text = format!(
            "storage migrated: {} keys ({} bytes) from the per-key files of earlier versions into {}",
            self.keys,
            self.bytes,
            root.join(format!("{}.db", self.plugin)).display()
        );
        if !self.left.is_empty() {
            text.push_str(&format!(
                "; left in {} (not keys): {}",
                root.join(&self.plugin).display(),
                self.left.join(", ")
            ));
        }
        text
    }
}

/// Migrates every plugin folder under the storage root.
pub(super) fn all(kv: &Kv) -> Vec<Migrated> {
    let Ok(entries) = fs::read_dir(&kv.root) else {
        return Vec::new();
    };
    let mut migrated = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) || check_name(&name).is_err() {
            continue;
        }
        match one(kv, &name, &entry.path()) {
            Ok(Some(done)) => {
                info!(plugin = %name, "{}", done.describe(&kv.root));
                migrated.push(done);
            }
            Ok(None) => {}
            Err(error) => warn!(plugin = %name, "storage not migrated, the files stay: {error}"),
        }
    }
    migrated
}

/// Moves `dir`'s files into `plugin`'s database; `None` when there was
/// nothing to move.
fn one(kv: &Kv, plugin: &str, dir: &Path) -> Result<Option<Migrated>, KvError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| KvError::Io { path, source }
    };
    let mut entries = Vec::new();
    let mut left = Vec::new();
    for file in fs::read_dir(dir).map_err(io_error(dir))? {
        let file = file.map_err(io_error(dir))?;
        let name = file.file_name().to_string_lossy().into_owned();
        let path = file.path();
        if name.starts_with(".tmp-") {
            // A put that crashed before its rename: never acknowledged.
            let _ = fs::remove_file(&path);
            continue;
        }
        match key_of(&name) {
            Some(key) if file.file_type().is_ok_and(|kind| kind.is_file()) => {
                let value = fs::read(&path).map_err(io_error(&path))?;
                entries.push((key, value, path));
            }
            _ => left.push(name),
        }
    }
    let writes: Vec<KvWrite<'_>> = entries
        .iter()
        .map(|(key, value, _)| KvWrite::Put(key, value))
        .collect();
    if !writes.is_empty() {
        kv.with(plugin, |store| {
            store.apply(&writes, Quota::NONE, || "migrating".to_owned())
        })?;
    }
    for (_, _, path) in &entries {
        fs::remove_file(path).map_err(io_error(path))?;
    }
    if left.is_empty() {
        fs::remove_dir(dir).map_err(io_error(dir))?;
    }
    Ok((!entries.is_empty()).then(|| Migrated {
        plugin: plugin.to_owned(),
        keys: entries.len(),
        bytes: entries
            .iter()
            .map(|(key, value, _)| (key.len() + value.len()) as u64)
            .sum(),
        left,
    }))
}

/// The key file `name` held: its percent-decoding, when that is a key
/// and earlier versions wrote it under exactly this name.
fn key_of(name: &str) -> Option<String> {
    let key = percent_decode_str(name).decode_utf8().ok()?.into_owned();
    check_key(&key).ok()?;
    // They wrote a leading `.` as `%2E`, and kept a-z A-Z 0-9 _ - . as is.
    let (dot, rest) = match key.strip_prefix('.') {
        Some(rest) => ("%2E", rest),
        None => ("", key.as_str()),
    };
    (format!("{dot}{}", utf8_percent_encode(rest, KEPT)) == name).then_some(key)
}

/// What earlier versions kept as it is in a file name.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');
