//! Each plugin's key-value storage (host services `kv_*`): one SQLite
//! database per plugin, `STATE_DIR/kv/NAME.db`, table `kv (key, value)`.
//!
//! Every write is one transaction, so a value is the old or the new one
//! after any crash, never half of one, and a batch is applied whole or
//! not at all. WAL mode; `synchronous` is the admin's choice
//! (`storage_sync` in corral.toml):
//! - `NORMAL` (the default): a commit is in the WAL, in the kernel's page
//!   cache, before it is acknowledged, so it survives the worker, the
//!   supervisor or both being killed (kill -9 included); a power loss or
//!   kernel crash can lose the last commits before a checkpoint, never
//!   corrupt the database. Tens of microseconds a put.
//! - `FULL`: the WAL is also fsynced at each commit, so an acknowledged
//!   write survives a power loss too, for the cost of one fsync a
//!   transaction (batches share it).
//!
//! Either way SQLite fsyncs when it copies the WAL back into the
//! database (a checkpoint); a thread of its own does that
//! ([`checkpoint`]), not the put that happens to cross the threshold.
//!
//! Keys and values together stay within the plugin's quota. Blocking;
//! callers use `spawn_blocking`. Operations on one plugin's storage take
//! turns on its connection; plugins do not wait for each other.
//!
//! Longer than most modules because two fifths of it are tests: each
//! guarantee (pages, batches whole or absent, both quotas across a
//! reopening, checkpoints, migration) is tested beside the code that
//! keeps it.

mod checkpoint;
mod migrate;

pub(crate) use migrate::Migrated;

use crate::config::StorageSync;
use checkpoint::Checkpointer;
use corral_plugin_api::kv::{self, KvPage, KvWrite};
use corral_plugin_api::{ErrorKind, RemoteError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KvError {
    #[error("no key {0:?}")]
    NotFound(String),
    #[error("bad key {key:?}: {problem}")]
    BadKey { key: String, problem: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used, {what} needs {needed} more (raise [limits] storage_mb)"
    )]
    Quota {
        what: String,
        used: u64,
        quota: u64,
        needed: u64,
    },
    #[error(
        "storage quota exceeded: {used} of {quota} keys stored, {what} adds {needed} more than that (raise [limits] storage_keys)"
    )]
    Keys {
        what: String,
        used: u64,
        quota: u64,
        needed: u64,
    },
    #[error("storage {}: {source}", path.display())]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("storage {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl From<KvError> for RemoteError {
    fn from(error: KvError) -> Self {
        let kind = match &error {
            KvError::NotFound(_) => ErrorKind::NotFound,
            KvError::BadKey { .. } | KvError::BadRequest(_) => ErrorKind::BadRequest,
            KvError::Quota { .. } | KvError::Keys { .. } => ErrorKind::LimitExceeded,
            KvError::Db { .. } | KvError::Io { .. } => ErrorKind::Unavailable,
        };
        RemoteError::new(kind, error.to_string())
    }
}

/// What a plugin's storage may hold: bytes of keys and values, and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) bytes: u64,
    pub(crate) keys: u64,
}

impl Quota {
    /// No limit (an admin's repair, a migration).
    pub(crate) const NONE: Self = Self {
        bytes: u64::MAX,
        keys: u64::MAX,
    };
}

/// Every plugin's storage, under one root folder.
#[derive(Debug)]
pub(crate) struct Kv {
    root: PathBuf,
    sync: StorageSync,
    checkpointer: Checkpointer,
    /// Each plugin's store, `None` until its first use opens it.
    stores: Mutex<HashMap<String, Arc<Mutex<Option<Store>>>>>,
}

/// One plugin's open database, the bytes it holds (keys and values) and
/// its number of keys.
#[derive(Debug)]
struct Store {
    path: PathBuf,
    db: Connection,
    used: u64,
    keys: u64,
    /// A write was committed since the last request for a checkpoint.
    committed: bool,
    /// A checkpoint was asked for and has not started.
    checkpoint: Arc<AtomicBool>,
}

impl Kv {
    /// The storage under `root`, each database written with `sync`.
    pub(crate) fn new(root: PathBuf, sync: StorageSync) -> Self {
        Self {
            root,
            sync,
            checkpointer: Checkpointer::start(),
            stores: Mutex::default(),
        }
    }

    /// The folder the databases are in.
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Moves the per-key files of earlier versions (`kv/NAME/KEY`) into
    /// each plugin's database, once; says what moved.
    pub(crate) fn migrate(&self) -> Vec<Migrated> {
        migrate::all(self)
    }

    /// Runs `op` on `plugin`'s store, opened on first use. The map is
    /// held only to find the store: a slow open or operation of one
    /// plugin holds up no other.
    fn with<T>(
        &self,
        plugin: &str,
        op: impl FnOnce(&mut Store) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        let slot = self
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(plugin.to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let store = match &mut *slot {
            Some(store) => store,
            empty => empty.insert(Store::open(
                self.root.join(format!("{plugin}.db")),
                self.sync,
                self.checkpointer.running(),
            )?),
        };
        let written = op(store)?;
        if store.committed {
            store.committed = false;
            self.checkpointer.ask(&store.path, &store.checkpoint);
        }
        Ok(written)
    }

    /// The value under `key`.
    pub(crate) fn get(&self, plugin: &str, key: &str) -> Result<Vec<u8>, KvError> {
        self.with(plugin, |store| {
            store
                .db
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .and_then(|mut get| get.query_row([key], |row| row.get(0)).optional())
                .map_err(|source| store.error(source))?
                .ok_or_else(|| KvError::NotFound(key.to_owned()))
        })
    }

    /// Stores `value` under `key` if the quota allows.
    pub(crate) fn put(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota: Quota,
    ) -> Result<(), KvError> {
        self.with(plugin, |store| {
            store.apply(&[KvWrite::Put(key, value)], quota, || {
                format!("storing {key:?}")
            })
        })
    }

    /// Removes `key`.
    pub(crate) fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.with(plugin, |store| {
            let transaction = store.begin()?;
            let size: Option<i64> = transaction
                .prepare_cached(
                    "DELETE FROM kv WHERE key = ?1 RETURNING length(CAST(key AS BLOB)) + length(value)",
                )
                .and_then(|mut delete| delete.query_row([key], |row| row.get(0)).optional())
                .and_then(|size| transaction.commit().map(|()| size))
                .map_err(|source| KvError::Db {
                    path: store.path.clone(),
                    source,
                })?;
            let size = size.ok_or_else(|| KvError::NotFound(key.to_owned()))?;
            store.committed = true;
            store.used = store.used.saturating_sub(bytes(size));
            store.keys = store.keys.saturating_sub(1);
            Ok(())
        })
    }

    /// Applies `writes` together, or none of them.
    pub(crate) fn batch(
        &self,
        plugin: &str,
        writes: &[KvWrite<'_>],
        quota: Quota,
    ) -> Result<(), KvError> {
        self.with(plugin, |store| {
            store.apply(writes, quota, || {
                format!("a batch of {} writes", writes.len())
            })
        })
    }

    /// Every key starting with `prefix`, sorted.
    pub(crate) fn list(&self, plugin: &str, prefix: &str) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        let mut start = String::new();
        loop {
            let page = self.page(plugin, prefix, &start, kv::MAX_PAGE)?;
            keys.extend(page.keys);
            match page.next {
                Some(next) => start = next,
                None => return Ok(keys),
            }
        }
    }

    /// At most `limit` (capped at [`kv::MAX_PAGE`]) of the keys starting
    /// with `prefix`, from `start` on, and where the next page starts.
    pub(crate) fn page(
        &self,
        plugin: &str,
        prefix: &str,
        start: &str,
        limit: u32,
    ) -> Result<KvPage, KvError> {
        if limit == 0 {
            return Err(KvError::BadRequest(
                "a page holds at least one key".to_owned(),
            ));
        }
        let limit = usize::try_from(limit.min(kv::MAX_PAGE)).unwrap_or(usize::MAX);
        let from = start.max(prefix);
        self.with(plugin, |store| {
            let mut keys = Vec::with_capacity(limit.min(64) + 1);
            let mut select = store
                .db
                .prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key")
                .map_err(|source| store.error(source))?;
            let mut rows = select.query([from]).map_err(|source| store.error(source))?;
            while let Some(row) = rows.next().map_err(|source| store.error(source))? {
                let key: String = row.get(0).map_err(|source| store.error(source))?;
                if !key.starts_with(prefix) {
                    break;
                }
                keys.push(key);
                if keys.len() > limit {
                    break;
                }
            }
            let next = (keys.len() > limit).then(|| keys.remove(limit));
            Ok(KvPage { keys, next })
        })
    }
}

impl Store {
    /// Opens (or makes) the database at `path`, counting what it holds.
    fn open(path: PathBuf, sync: StorageSync, checkpointed: bool) -> Result<Self, KvError> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| KvError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let opened = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|db| {
            db.pragma_update(None, "journal_mode", "WAL")?;
            db.pragma_update(
                None,
                "synchronous",
                match sync {
                    StorageSync::Normal => "NORMAL",
                    StorageSync::Full => "FULL",
                },
            )?;
            if checkpointed {
                db.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
            }
            // Someone reading it with the sqlite3 shell holds it briefly.
            db.busy_timeout(Duration::from_secs(2))?;
            db.execute_batch(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)",
            )?;
            let (used, keys): (i64, i64) = db.query_row(
                "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0), COUNT(*) FROM kv",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok((db, bytes(used), bytes(keys)))
        });
        match opened {
            Ok((db, used, keys)) => Ok(Self {
                path,
                db,
                used,
                keys,
                committed: false,
                checkpoint: Arc::default(),
            }),
            Err(source) => Err(KvError::Db { path, source }),
        }
    }

    fn error(&self, source: rusqlite::Error) -> KvError {
        KvError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// A write transaction, taken at once.
    fn begin(&mut self) -> Result<rusqlite::Transaction<'_>, KvError> {
        let path = &self.path;
        self.db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| KvError::Db {
                path: path.clone(),
                source,
            })
    }

    /// Applies `writes` in one transaction, unless a key is bad or the
    /// result would grow past `quota` (shrinking is always allowed);
    /// `what` names the writes in the quota's error.
    fn apply(
        &mut self,
        writes: &[KvWrite<'_>],
        quota: Quota,
        what: impl FnOnce() -> String,
    ) -> Result<(), KvError> {
        for write in writes {
            let key = write.key();
            kv::check_key(key).map_err(|problem| KvError::BadKey {
                key: key.to_owned(),
                problem,
            })?;
        }
        let (used, keys) = (self.used, self.keys);
        let path = self.path.clone();
        let db_error = |source| KvError::Db {
            path: path.clone(),
            source,
        };
        let transaction = self.begin()?;
        let (mut after, mut keys_after) = (used, keys);
        {
            let mut size = transaction
                .prepare_cached("SELECT length(value) FROM kv WHERE key = ?1")
                .map_err(db_error)?;
            let mut put = transaction
                .prepare_cached(
                    "INSERT INTO kv (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .map_err(db_error)?;
            let mut delete = transaction
                .prepare_cached("DELETE FROM kv WHERE key = ?1")
                .map_err(db_error)?;
            for write in writes {
                let key = write.key();
                let old: Option<i64> = size
                    .query_row([key], |row| row.get(0))
                    .optional()
                    .map_err(db_error)?;
                if let Some(old) = old {
                    after = after.saturating_sub(len(key.as_bytes()) + bytes(old));
                    keys_after = keys_after.saturating_sub(1);
                }
                match write {
                    KvWrite::Put(key, value) => {
                        put.execute(params![key, value]).map_err(db_error)?;
                        after += len(key.as_bytes()) + len(value);
                        keys_after += 1;
                    }
                    KvWrite::Delete(key) => {
                        delete.execute([key]).map_err(db_error)?;
                    }
                }
            }
        }
        // Dropping the transaction rolls it back.
        if after > quota.bytes && after > used {
            return Err(KvError::Quota {
                what: what(),
                used,
                quota: quota.bytes,
                needed: after - quota.bytes,
            });
        }
        if keys_after > quota.keys && keys_after > keys {
            return Err(KvError::Keys {
                what: what(),
                used: keys,
                quota: quota.keys,
                needed: keys_after - quota.keys,
            });
        }
        transaction.commit().map_err(db_error)?;
        self.committed = true;
        self.used = after;
        self.keys = keys_after;
        Ok(())
    }
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// A size SQLite counted (never negative).
fn bytes(size: i64) -> u64 {
    u64::try_from(size).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_quota(bytes: u64) -> Quota {
        Quota {
            bytes,
            keys: u64::MAX,
        }
    }

    fn kv() -> (tempfile::TempDir, Kv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::new(dir.path().join("kv"), StorageSync::Normal);
        (dir, kv)
    }

    #[test]
    fn put_get_list_delete() {
        let (dir, kv) = kv();
        assert!(matches!(kv.get("p", "a"), Err(KvError::NotFound(_))));
        kv.put("p", "a", b"1", bytes_quota(1000)).unwrap();
        kv.put("p", "b/c", b"22", bytes_quota(1000)).unwrap();
        kv.put("p", ".hidden ü", b"", bytes_quota(1000)).unwrap();
        kv.put("p", "../escape", b"x", bytes_quota(1000)).unwrap();
        kv.put("q", "a", b"other plugin", bytes_quota(1000))
            .unwrap();
        assert_eq!(kv.get("p", "a").unwrap(), b"1");
        assert_eq!(kv.get("p", ".hidden ü").unwrap(), b"");
        assert_eq!(
            kv.list("p", "").unwrap(),
            ["../escape", ".hidden ü", "a", "b/c"]
        );
        assert_eq!(kv.list("p", "b").unwrap(), ["b/c"]);
        kv.put("p", "a", b"replaced", bytes_quota(1000)).unwrap();
        assert_eq!(kv.get("p", "a").unwrap(), b"replaced");
        kv.delete("p", "a").unwrap();
        assert!(matches!(kv.delete("p", "a"), Err(KvError::NotFound(_))));
        assert_eq!(kv.get("q", "a").unwrap(), b"other plugin");
        assert_eq!(kv.list("none", "").unwrap(), Vec::<String>::new());
        for key in ["", "a\nb", &"k".repeat(kv::MAX_KEY + 1)] {
            assert!(matches!(
                kv.put("p", key, b"x", bytes_quota(1000)),
                Err(KvError::BadKey { .. })
            ));
        }
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("kv"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".db"))
            .collect();
        files.sort();
        assert_eq!(files, ["none.db", "p.db", "q.db"]);
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn pages_follow_the_prefix_start_and_limit() {
        let (_dir, kv) = kv();
        for key in ["a", "u/1", "u/2", "u/3", "u/4", "v"] {
            kv.put("p", key, b"", bytes_quota(1000)).unwrap();
        }
        let page = |prefix, start, limit| {
            let page = kv.page("p", prefix, start, limit).unwrap();
            (page.keys, page.next)
        };
        assert_eq!(
            page("u/", "", 3),
            (
                vec!["u/1".into(), "u/2".into(), "u/3".into()],
                Some("u/4".into())
            )
        );
        assert_eq!(page("u/", "u/4", 3), (vec!["u/4".into()], None));
        assert_eq!(page("u/", "u/9", 3), (vec![], None));
        assert_eq!(page("u/", "a", 1), (vec!["u/1".into()], Some("u/2".into())));
        assert_eq!(page("", "", 100).0.len(), 6);
        assert_eq!(
            page("u/", "", 4),
            (
                vec!["u/1".into(), "u/2".into(), "u/3".into(), "u/4".into()],
                None
            )
        );
        assert!(matches!(
            kv.page("p", "", "", 0),
            Err(KvError::BadRequest(_))
        ));
    }

    #[test]
    fn a_batch_is_applied_whole_or_not_at_all() {
        let (_dir, kv) = kv();
        kv.put("p", "keep", b"old", bytes_quota(100)).unwrap();
        kv.batch(
            "p",
            &[
                KvWrite::Put("a", b"1"),
                KvWrite::Put("b", b"2"),
                KvWrite::Delete("keep"),
                KvWrite::Delete("missing"),
                KvWrite::Put("a", b"11"),
            ],
            bytes_quota(100),
        )
        .unwrap();
        assert_eq!(kv.list("p", "").unwrap(), ["a", "b"]);
        assert_eq!(kv.get("p", "a").unwrap(), b"11");
        let bad_key = kv.batch(
            "p",
            &[KvWrite::Delete("a"), KvWrite::Put("x\ty", b"")],
            bytes_quota(100),
        );
        assert!(matches!(bad_key, Err(KvError::BadKey { .. })));
        let over = kv
            .batch(
                "p",
                &[KvWrite::Delete("a"), KvWrite::Put("big", &[0; 200])],
                bytes_quota(100),
            )
            .unwrap_err();
        assert!(
            over.to_string().contains("a batch of 2 writes needs"),
            "{over}"
        );
        assert_eq!(kv.list("p", "").unwrap(), ["a", "b"]);
        assert_eq!(kv.get("p", "a").unwrap(), b"11");
        // Growing then shrinking within one batch counts the end result.
        kv.batch(
            "p",
            &[KvWrite::Put("t", &[0; 200]), KvWrite::Delete("t")],
            bytes_quota(100),
        )
        .unwrap();
    }

    #[test]
    fn quota_counts_keys_and_values_and_survives_reopening() {
        let (dir, kv) = kv();
        kv.put("p", "k1", &[0; 40], bytes_quota(100)).unwrap(); // 42
        kv.put("p", "k2", &[0; 40], bytes_quota(100)).unwrap(); // 84
        let error = kv.put("p", "k3", &[0; 40], bytes_quota(100)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "storage quota exceeded: 84 of 100 bytes used, storing \"k3\" needs 26 more (raise [limits] storage_mb)"
        );
        // Shrinking an entry is always allowed; growing one counts the difference.
        kv.put("p", "k1", &[0; 10], bytes_quota(100)).unwrap(); // 54
        kv.put("p", "k3", &[0; 40], bytes_quota(100)).unwrap(); // 96
        kv.delete("p", "k2").unwrap(); // 54
        kv.put("p", "ü", &[0; 2], bytes_quota(100)).unwrap(); // 58: keys count in bytes
        drop(kv);
        let again = Kv::new(dir.path().join("kv"), StorageSync::Full);
        assert!(again.put("p", "k4", &[0; 41], bytes_quota(100)).is_err());
        again.put("p", "k4", &[0; 40], bytes_quota(100)).unwrap();
    }

    #[test]
    fn committed_writes_are_checkpointed_off_the_write_path() {
        let (dir, kv) = kv();
        let db = dir.path().join("kv/p.db");
        kv.put("p", "first", b"", Quota::NONE).unwrap();
        let empty = std::fs::metadata(&db).unwrap().len();
        // Far fewer pages than the writers' own backstop checkpoint.
        let value = [7; 2000];
        for i in 0..300 {
            kv.put("p", &format!("k{i}"), &value, Quota::NONE).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&db).unwrap().len() < 300 * 2000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes (from {empty}): no checkpoint",
                std::fs::metadata(&db).unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kv.get("p", "k299").unwrap(), value);
    }

    #[test]
    fn the_number_of_keys_has_a_quota_too() {
        let (dir, kv) = kv();
        let quota = Quota {
            bytes: 1000,
            keys: 2,
        };
        kv.put("p", "a", b"", quota).unwrap();
        kv.put("p", "b", b"", quota).unwrap();
        kv.put("p", "b", b"replaced", quota).unwrap();
        let error = kv.put("p", "c", b"", quota).unwrap_err();
        assert_eq!(
            error.to_string(),
            "storage quota exceeded: 2 of 2 keys stored, storing \"c\" adds 1 more than that (raise [limits] storage_keys)"
        );
        kv.batch("p", &[KvWrite::Delete("a"), KvWrite::Put("c", b"")], quota)
            .unwrap();
        drop(kv);
        let again = Kv::new(dir.path().join("kv"), StorageSync::Normal);
        assert!(matches!(
            again.put("p", "d", b"", quota),
            Err(KvError::Keys { .. })
        ));
        again.delete("p", "b").unwrap();
        again.put("p", "d", b"", quota).unwrap();
    }

    #[test]
    fn per_key_files_of_earlier_versions_move_in_once() {
        let (dir, kv) = kv();
        let old = dir.path().join("kv/p");
        std::fs::create_dir_all(&old).unwrap();
        for (name, value) in [
            ("plain", "1"),
            ("a%20b", "space"),
            ("%2Ehidden", "dot"),
            ("%C3%BC%2F..", "ü/.."),
            (".tmp-plain", "a crashed put"),
        ] {
            std::fs::write(old.join(name), value).unwrap();
        }
        kv.put("p", "plain", b"already in the database", bytes_quota(1000))
            .unwrap();
        let migrated = kv.migrate();
        assert_eq!(migrated.len(), 1);
        assert_eq!((migrated[0].plugin.as_str(), migrated[0].keys), ("p", 4));
        assert!(
            migrated[0]
                .describe(kv.root())
                .starts_with("storage migrated: 4 keys (34 bytes)")
        );
        assert_eq!(
            kv.list("p", "").unwrap(),
            [".hidden", "a b", "plain", "ü/.."]
        );
        assert_eq!(kv.get("p", "plain").unwrap(), b"1");
        assert_eq!(kv.get("p", "ü/..").unwrap(), b"\xc3\xbc/..");
        assert!(!old.exists());
        assert!(kv.migrate().is_empty());

        // A name no key gives stays, and says so.
        let odd = dir.path().join("kv/q");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::write(odd.join("k"), "v").unwrap();
        std::fs::write(odd.join("%zz"), "?").unwrap();
        let migrated = kv.migrate();
        assert!(
            migrated[0].describe(kv.root()).ends_with("(not keys): %zz"),
            "{migrated:?}"
        );
        assert_eq!(kv.get("q", "k").unwrap(), b"v");
        assert!(odd.join("%zz").exists() && !odd.join("k").exists());
    }
}
