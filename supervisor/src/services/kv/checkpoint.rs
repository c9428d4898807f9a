//! WAL checkpoints off the write path. SQLite copies a database's WAL
//! back into the database file now and then (a checkpoint), and that is
//! where `synchronous = NORMAL` fsyncs: done by the connection that
//! commits, the unlucky put waits for two fsyncs. Instead each store asks
//! this thread, after a commit, to checkpoint its database on a
//! connection of its own: a `PASSIVE` checkpoint copies what is committed
//! while writers go on appending to the WAL. The writers' own automatic
//! checkpoint stays, far larger, as a backstop should this thread fall
//! behind.

use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tracing::debug;

/// Pages in a WAL past which the committing connection checkpoints
/// itself (SQLite's default is 1,000; this thread normally keeps it far
/// shorter).
pub(super) const BACKSTOP_PAGES: u32 = 20_000;

/// Time the thread lets commits gather before it checkpoints.
const GATHER: Duration = Duration::from_millis(50);

/// Where stores ask for a checkpoint.
#[derive(Debug)]
pub(super) struct Checkpointer {
    queue: Option<mpsc::Sender<Request>>,
}

/// One database to checkpoint, and its store's "asked already" flag.
type Request = (PathBuf, Arc<AtomicBool>);

impl Checkpointer {
    /// Starts the thread; without it (it could not start), writers
    /// checkpoint as SQLite does by default.
    pub(super) fn start() -> Self {
        let (queue, requests) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("corral-kv-checkpoint".into())
            .spawn(move || serve(&requests));
        Self {
            queue: started.ok().map(|_| queue),
        }
    }

    /// Whether checkpoints are this thread's.
    pub(super) fn running(&self) -> bool {
        self.queue.is_some()
    }

    /// Asks for a checkpoint of `path` unless one is pending (`asked`).
    pub(super) fn ask(&self, path: &std::path::Path, asked: &Arc<AtomicBool>) {
        if let Some(queue) = &self.queue
            && !asked.swap(true, Ordering::AcqRel)
        {
            let _ = queue.send((path.to_owned(), asked.clone()));
        }
    }
}

/// Checkpoints what is asked, a gathering at a time, until the storage
/// is dropped.
fn serve(requests: &mpsc::Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        std::thread::sleep(GATHER);
        let mut asked = BTreeMap::from([first]);
        asked.extend(requests.try_iter());
        for (path, flag) in asked {
            // Cleared first: a commit from now on asks again.
            flag.store(false, Ordering::Release);
            if let Err(error) = checkpoint(&path) {
                debug!("checkpoint of {}: {error}", path.display());
            }
        }
    }
}

fn checkpoint(path: &std::path::Path) -> rusqlite::Result<()> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
