//! Each plugin's key-value storage (host services `kv_*`): one file per
//! key under `STATE_DIR/kv/PLUGIN/`, written crash-safely (a temporary
//! file, fsync, rename over the old one, fsync of the folder), so a value
//! is either the old or the new one after a crash, never half of one.
//! Keys and values together stay within the plugin's quota.
//!
//! File names are the keys with every byte outside `a-z A-Z 0-9 _ - .`
//! (and a leading `.`) written as `%XX`: readable for an admin, and no key
//! can name a path outside the folder. Blocking; callers use
//! `spawn_blocking`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Longest file name a key may take once escaped (a temporary file adds
/// [`TEMP_PREFIX`], within `NAME_MAX`).
const MAX_NAME: usize = 250;
/// Temporary files start with this (no escaped key does: `.` is escaped
/// first).
const TEMP_PREFIX: &str = ".tmp-";

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KvError {
    #[error("no key {0:?}")]
    NotFound(String),
    #[error("bad key {key:?}: {problem}")]
    BadKey { key: String, problem: &'static str },
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used, storing {key:?} needs {needed} more (raise [limits] storage_mb)"
    )]
    Quota {
        key: String,
        used: u64,
        quota: u64,
        needed: u64,
    },
    #[error("storage {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Every plugin's storage, under one root folder.
#[derive(Debug)]
pub(crate) struct Kv {
    root: PathBuf,
    plugins: Mutex<HashMap<String, Arc<Mutex<Store>>>>,
}

/// One plugin's folder and the bytes it holds (keys and values), counted
/// once when first used. Operations on one plugin's storage take turns.
#[derive(Debug)]
struct Store {
    dir: PathBuf,
    used: Option<u64>,
}

impl Kv {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            plugins: Mutex::default(),
        }
    }

    fn store(&self, plugin: &str) -> Arc<Mutex<Store>> {
        let mut plugins = self.plugins.lock().unwrap_or_else(PoisonError::into_inner);
        plugins
            .entry(plugin.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Store {
                    dir: self.root.join(plugin),
                    used: None,
                }))
            })
            .clone()
    }

    /// The value under `key`.
    pub(crate) fn get(&self, plugin: &str, key: &str) -> Result<Vec<u8>, KvError> {
        let path = self.root.join(plugin).join(file_name(key)?);
        match fs::read(&path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(KvError::NotFound(key.to_owned()))
            }
            other => other.map_err(|source| KvError::Io { path, source }),
        }
    }

    /// Stores `value` under `key` if the quota allows.
    pub(crate) fn put(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota: u64,
    ) -> Result<(), KvError> {
        let name = file_name(key)?;
        let store = self.store(plugin);
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let used = store.used()?;
        let path = store.dir.join(&name);
        let old = entry_size(key, fs::metadata(&path).ok().map(|m| m.len()));
        let new = entry_size(key, Some(len(value)));
        let after = used - old + new;
        if after > quota && new > old {
            return Err(KvError::Quota {
                key: key.to_owned(),
                used,
                quota,
                needed: after - quota,
            });
        }
        let temp = store.dir.join(format!("{TEMP_PREFIX}{name}"));
        write_durably(&store.dir, &temp, &path, value)?;
        store.used = Some(after);
        Ok(())
    }

    /// Removes `key`.
    pub(crate) fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        let name = file_name(key)?;
        let store = self.store(plugin);
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let used = store.used()?;
        let path = store.dir.join(name);
        let size = match fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(KvError::NotFound(key.to_owned()));
            }
            Err(source) => return Err(KvError::Io { path, source }),
        };
        fs::remove_file(&path).map_err(|source| KvError::Io {
            path: path.clone(),
            source,
        })?;
        sync_dir(&store.dir)?;
        store.used = Some(used.saturating_sub(entry_size(key, Some(size))));
        Ok(())
    }

    /// The keys starting with `prefix`, sorted.
    pub(crate) fn list(&self, plugin: &str, prefix: &str) -> Result<Vec<String>, KvError> {
        let dir = self.root.join(plugin);
        let mut keys: Vec<String> = entries(&dir)?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

impl Store {
    /// Bytes used, counted (and crash leftovers removed) on first use.
    fn used(&mut self) -> Result<u64, KvError> {
        if let Some(used) = self.used {
            return Ok(used);
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| KvError::Io {
                path: self.dir.clone(),
                source,
            })?;
        let used = entries(&self.dir)?
            .iter()
            .map(|(key, size)| entry_size(key, Some(*size)))
            .sum();
        self.used = Some(used);
        Ok(used)
    }
}

/// The keys in `dir` and their value sizes; removes temporary files a
/// crash left behind. A missing folder holds nothing.
fn entries(dir: &Path) -> Result<Vec<(String, u64)>, KvError> {
    let io_error = |source| KvError::Io {
        path: dir.to_owned(),
        source,
    };
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(error)),
    };
    let mut found = Vec::new();
    for entry in read {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        if let Some(key) = key_of(&name) {
            found.push((key, entry.metadata().map_err(io_error)?.len()));
        }
    }
    Ok(found)
}

/// What an entry counts against the quota: its key and its value.
fn entry_size(key: &str, value: Option<u64>) -> u64 {
    value.map_or(0, |value| len(key.as_bytes()) + value)
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Writes `value` to `temp`, flushes it to disk, renames it to `path`
/// and flushes the folder.
fn write_durably(dir: &Path, temp: &Path, path: &Path, value: &[u8]) -> Result<(), KvError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| KvError::Io { path, source }
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)
        .map_err(io_error(temp))?;
    let written = file.write_all(value).and_then(|()| file.sync_all());
    drop(file);
    if let Err(error) = written.and_then(|()| fs::rename(temp, path)) {
        let _ = fs::remove_file(temp);
        return Err(io_error(path)(error));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), KvError> {
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| KvError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// The file name of `key`, or why it cannot be a key.
fn file_name(key: &str) -> Result<String, KvError> {
    let bad = |problem| KvError::BadKey {
        key: key.to_owned(),
        problem,
    };
    if key.is_empty() {
        return Err(bad("a key is not empty"));
    }
    if key.chars().any(char::is_control) {
        return Err(bad("a key has no control characters (newlines, tabs, ...)"));
    }
    // A leading `.` is escaped too: no key names a hidden file (or `.`,
    // `..`).
    let (dot, rest) = match key.strip_prefix('.') {
        Some(rest) => ("%2E", rest),
        None => ("", key),
    };
    let name = format!("{dot}{}", utf8_percent_encode(rest, KEPT));
    if name.len() > MAX_NAME {
        return Err(bad(
            "a key is at most 250 bytes once escaped (a byte outside a-z A-Z 0-9 _ - . takes 3)",
        ));
    }
    Ok(name)
}

/// The key a file name stands for; `None` for a name no key produces.
fn key_of(name: &str) -> Option<String> {
    let key = percent_decode_str(name).decode_utf8().ok()?.into_owned();
    (file_name(&key).ok()? == name).then_some(key)
}

/// What a key keeps as it is in its file name: a-z A-Z 0-9 `_` `-` `.`.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> (tempfile::TempDir, Kv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::new(dir.path().join("kv"));
        (dir, kv)
    }

    #[test]
    fn put_get_list_delete() {
        let (_dir, kv) = kv();
        assert!(matches!(kv.get("p", "a"), Err(KvError::NotFound(_))));
        kv.put("p", "a", b"1", 1000).unwrap();
        kv.put("p", "b/c", b"22", 1000).unwrap();
        kv.put("p", ".hidden ü", b"", 1000).unwrap();
        kv.put("q", "a", b"other plugin", 1000).unwrap();
        assert_eq!(kv.get("p", "a").unwrap(), b"1");
        assert_eq!(kv.get("p", ".hidden ü").unwrap(), b"");
        assert_eq!(kv.list("p", "").unwrap(), [".hidden ü", "a", "b/c"]);
        assert_eq!(kv.list("p", "b").unwrap(), ["b/c"]);
        kv.put("p", "a", b"replaced", 1000).unwrap();
        assert_eq!(kv.get("p", "a").unwrap(), b"replaced");
        kv.delete("p", "a").unwrap();
        assert!(matches!(kv.delete("p", "a"), Err(KvError::NotFound(_))));
        assert_eq!(kv.get("q", "a").unwrap(), b"other plugin");
        assert_eq!(kv.list("none", "").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn keys_cannot_leave_the_folder() {
        let (dir, kv) = kv();
        for key in ["../escape", "/etc/passwd", "..", "."] {
            kv.put("p", key, b"x", 1000).unwrap();
            assert_eq!(kv.get("p", key).unwrap(), b"x");
        }
        let names: Vec<String> = fs::read_dir(dir.path().join("kv/p"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4);
        assert!(
            names
                .iter()
                .all(|n| !n.contains('/') && n != ".." && n != ".")
        );
        assert!(!dir.path().join("escape").exists());
        for key in ["", "a\nb", &"é".repeat(100)] {
            assert!(matches!(
                kv.put("p", key, b"x", 1000),
                Err(KvError::BadKey { .. })
            ));
        }
    }

    #[test]
    fn quota_counts_keys_and_values_and_survives_reopening() {
        let (dir, kv) = kv();
        kv.put("p", "k1", &[0; 40], 100).unwrap(); // 42
        kv.put("p", "k2", &[0; 40], 100).unwrap(); // 84
        let error = kv.put("p", "k3", &[0; 40], 100).unwrap_err();
        assert!(
            error.to_string().contains("84 of 100 bytes used")
                && error.to_string().contains("26 more"),
            "{error}"
        );
        // Shrinking an entry is always allowed; growing one counts the difference.
        kv.put("p", "k1", &[0; 10], 100).unwrap(); // 54
        kv.put("p", "k3", &[0; 40], 100).unwrap(); // 96
        kv.delete("p", "k2").unwrap(); // 54
        // A new supervisor counts what is on disk, ignoring crash leftovers.
        fs::write(dir.path().join("kv/p/.tmp-k9"), [0; 500]).unwrap();
        let again = Kv::new(dir.path().join("kv"));
        assert!(again.put("p", "k4", &[0; 47], 100).is_err());
        again.put("p", "k4", &[0; 44], 100).unwrap();
        assert!(!dir.path().join("kv/p/.tmp-k9").exists());
    }

    #[test]
    fn file_names_round_trip() {
        for key in ["a", "A.b_c-d", ".x", "a b", "ü/..", "%41"] {
            assert_eq!(key_of(&file_name(key).unwrap()).as_deref(), Some(key));
        }
        assert_eq!(file_name("a b").unwrap(), "a%20b");
        assert_eq!(file_name(".x").unwrap(), "%2Ex");
        assert_eq!(key_of("%zz"), None);
        assert_eq!(key_of("%41"), None); // "A" is written plain
    }
}
