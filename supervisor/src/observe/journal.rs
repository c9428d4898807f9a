//! The event journal: every event the supervisor records, kept in SQLite
//! under the state folder (`events.db`), so that `corral events` reads
//! across restarts.
//!
//! Events reach it off the call path: [`Journal::append`] only queues;
//! one thread writes what queued in one transaction, so a burst costs one
//! commit, not one per event. WAL mode with `synchronous = NORMAL`: a
//! commit is durable when the supervisor is killed (the WAL is in the
//! page cache and the kernel keeps it), and a power loss can lose the
//! last commits but never corrupt the file; an fsync per batch
//! (`FULL`) would buy surviving power loss at a cost events do not need.
//! Retention: past `keep` events or `max_age`, the oldest go.

use corral_plugin_api::wire::{Event, EventKind};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tracing::warn;

/// Events written in one transaction at most.
const BATCH: usize = 1024;

/// Where events go to be written.
#[derive(Debug)]
pub(crate) struct Journal {
    queue: mpsc::Sender<Event>,
}

/// How long and how many events the journal keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub(crate) keep: u64,
    pub(crate) max_age: Duration,
}

impl Journal {
    /// Opens (or makes) `STATE/events.db` and starts its writer; returns
    /// it with the newest `retention.keep` events stored, oldest first.
    pub(crate) fn open(
        state_dir: &Path,
        retention: Retention,
    ) -> rusqlite::Result<(Self, Vec<Event>)> {
        let path = state_dir.join("events.db");
        let connection = Connection::open(&path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 seq INTEGER PRIMARY KEY,
                 at_unix_ms INTEGER NOT NULL,
                 plugin TEXT NOT NULL,
                 generation INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 detail TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_at ON events (at_unix_ms);",
        )?;
        prune(&connection, retention)?;
        let stored = load(&connection, retention.keep)?;
        let (queue, queued) = mpsc::channel();
        std::thread::Builder::new()
            .name("corral-journal".into())
            .spawn(move || write_queued(&connection, &queued, retention))
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        Ok((Self { queue }, stored))
    }

    /// Queues `event` for the writer; never blocks.
    pub(crate) fn append(&self, event: Event) {
        let _ = self.queue.send(event);
    }
}

/// Writes events as they queue, a batch a transaction, until the journal
/// is dropped.
fn write_queued(connection: &Connection, queued: &mpsc::Receiver<Event>, retention: Retention) {
    let mut batches = 0u64;
    while let Ok(first) = queued.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queued.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        if let Err(error) = insert(connection, &batch) {
            warn!("{} events not written to the journal: {error}", batch.len());
        }
        batches += 1;
        if batches.is_multiple_of(64)
            && let Err(error) = prune(connection, retention)
        {
            warn!("cannot prune the event journal: {error}");
        }
    }
}

fn insert(connection: &Connection, batch: &[Event]) -> rusqlite::Result<()> {
    let transaction = connection.unchecked_transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT OR REPLACE INTO events (seq, at_unix_ms, plugin, generation, kind, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for event in batch {
            statement.execute(params![
                int(event.seq),
                int(event.at_unix_ms),
                event.plugin,
                int(event.generation),
                event.kind.as_str(),
                event.detail
            ])?;
        }
    }
    transaction.commit()
}

/// Removes events past the retention.
fn prune(connection: &Connection, retention: Retention) -> rusqlite::Result<()> {
    let oldest = crate::observe::clock::now_ms()
        .saturating_sub(u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX));
    connection.execute(
        "DELETE FROM events WHERE at_unix_ms < ?1
             OR seq <= (SELECT MAX(seq) FROM events) - ?2",
        params![int(oldest), int(retention.keep)],
    )?;
    Ok(())
}

/// The newest `keep` events stored, oldest first.
fn load(connection: &Connection, keep: u64) -> rusqlite::Result<Vec<Event>> {
    let mut statement = connection.prepare(
        "SELECT seq, at_unix_ms, plugin, generation, kind, detail FROM
             (SELECT * FROM events ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
    )?;
    let rows = statement.query_map([int(keep)], |row| {
        let kind: String = row.get(4)?;
        let unsigned = |index: usize| {
            row.get::<_, i64>(index)
                .map(|n| u64::try_from(n).unwrap_or(0))
        };
        Ok(Event {
            seq: unsigned(0)?,
            at_unix_ms: unsigned(1)?,
            plugin: row.get(2)?,
            generation: unsigned(3)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::State),
            detail: row.get(5)?,
        })
    })?;
    rows.collect()
}

/// A count or time as SQLite's integer.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, at_unix_ms: u64) -> Event {
        Event {
            seq,
            at_unix_ms,
            plugin: "p".into(),
            generation: 1,
            kind: EventKind::ReloadFailed,
            detail: format!("event {seq}"),
        }
    }

    /// Opens the journal until it holds `count` events (its writer
    /// thread commits shortly after an append).
    fn stored(dir: &Path, retention: Retention, count: usize) -> Vec<Event> {
        for _ in 0..500 {
            let (_, events) = Journal::open(dir, retention).unwrap();
            if events.len() == count {
                return events;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the journal never held {count} events");
    }

    #[test]
    fn events_are_kept_in_order_and_pruned_by_count_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::observe::clock::now_ms();
        let all = Retention {
            keep: 100,
            max_age: Duration::from_secs(3600),
        };
        let (journal, none) = Journal::open(dir.path(), all).unwrap();
        assert!(none.is_empty());
        // One too old to keep, then three.
        journal.append(event(1, now - 7_200_000));
        for seq in 2..=4 {
            journal.append(event(seq, now));
        }
        drop(journal);
        let kept = stored(dir.path(), all, 3);
        assert_eq!(kept, [event(2, now), event(3, now), event(4, now)]);
        let two = Retention { keep: 2, ..all };
        let newest = stored(dir.path(), two, 2);
        assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    }
}
