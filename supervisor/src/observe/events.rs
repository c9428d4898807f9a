//! The supervisor's event log: every state change, worker exit, reload,
//! failed health check, admin action and refused client, numbered, kept in
//! memory (the newest [`KEPT`]) for `corral events`, and in the
//! [journal](crate::observe::journal) under the state folder, from which
//! the next supervisor starts again (its numbers go on).

use crate::observe::clock::now_ms;
use crate::observe::journal::Journal;
use corral_plugin_api::wire::{Event, EventKind};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;

/// Events kept; older ones are dropped.
pub(crate) const KEPT: usize = 10_000;

/// The event log.
#[derive(Debug, Default)]
pub(crate) struct Events {
    log: Mutex<Log>,
    /// The last sequence number, for followers.
    last: watch::Sender<u64>,
    /// Where events are kept across restarts.
    journal: Option<Journal>,
}

#[derive(Debug, Default)]
struct Log {
    events: VecDeque<Event>,
    last_seq: u64,
}

impl Events {
    /// An event log kept in `journal`, which held `stored` events.
    pub(crate) fn journaled(journal: Journal, stored: Vec<Event>) -> Self {
        let last_seq = stored.last().map_or(0, |event| event.seq);
        let mut events: VecDeque<Event> = stored.into();
        while events.len() > KEPT {
            events.pop_front();
        }
        Self {
            log: Mutex::new(Log { events, last_seq }),
            last: watch::Sender::new(last_seq),
            journal: Some(journal),
        }
    }

    /// Records an event about `plugin` (at `generation`).
    pub(crate) fn record(&self, plugin: &str, generation: u64, kind: EventKind, detail: String) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.last_seq += 1;
        let event = Event {
            seq: log.last_seq,
            at_unix_ms: now_ms(),
            plugin: plugin.to_owned(),
            generation,
            kind,
            detail,
        };
        if log.events.len() == KEPT {
            log.events.pop_front();
        }
        if let Some(journal) = &self.journal {
            journal.append(event.clone());
        }
        log.events.push_back(event);
        self.last.send_replace(log.last_seq);
    }

    /// Changes with every new event.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// The events after sequence number `after`, oldest first.
    pub(crate) fn after(&self, after: u64) -> Vec<Event> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.events
            .iter()
            .filter(|event| event.seq > after)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_in_order_and_bounded() {
        let events = Events::default();
        for i in 0..KEPT + 5 {
            events.record("p", 1, EventKind::State, format!("{i}"));
        }
        let all = events.after(0);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].seq, 6);
        assert_eq!(all.last().unwrap().seq, (KEPT + 5) as u64);
        let tail = events.after((KEPT + 3) as u64);
        assert_eq!(
            tail.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
            [format!("{}", KEPT + 3), format!("{}", KEPT + 4)]
        );
    }
}
