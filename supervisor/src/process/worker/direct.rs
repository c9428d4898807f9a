//! Direct channels to a worker, from the supervisor's side: it makes the
//! socketpair, passes one end to the worker (`Attach`) and hands the other
//! to the host app, then stays out of the calls. What it keeps is the
//! guard's part: while a worker has direct channels, a task watches its
//! stats page and kills it when one call has kept it busy past the
//! plugin's deadline, as a relayed call that misses it would; and
//! [`DirectEnd`] tells the host apps when the worker stops serving.

use super::calls::{DirectEnd, Worker};
use crate::transport::framed::Outgoing;
use corral_plugin_api::wire::{
    CrashFrames, DirectCounts, ExitCause, RecordedCall, StatsPage, ToWorker,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// Direct channels one worker takes at most (the worker's own limit).
pub(crate) const MAX_DIRECT: usize = 256;

/// How often a worker with direct channels has its stats page checked for
/// a call past the deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(50);

/// How long past the deadline a busy worker is killed: after its caller's
/// own timeout (which counts from before the worker read the call), so
/// that the caller learns of a timeout, not of the kill that follows it.
const DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// A direct channel's place in its worker's count, which dropping this
/// gives back.
pub(crate) struct Lease {
    worker: Arc<Worker>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker.direct.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// Opens a direct channel to this worker: the host app's end of the
    /// socket, and its lease. A call on it that keeps the worker busy past
    /// `deadline` gets the worker killed.
    pub(crate) fn attach(
        self: &Arc<Self>,
        deadline: Duration,
    ) -> Result<(OwnedFd, Lease), RemoteError> {
        let declined = |why: &str| {
            RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{}`: no direct channel: {why}", self.plugin),
            )
        };
        if self.stats.is_none() {
            return Err(declined("the worker has no stats page"));
        }
        {
            let pending = self.pending();
            if let Some(error) = &pending.closed {
                return Err(error.clone());
            }
            if pending.retired {
                return Err(declined("the worker is being replaced"));
            }
        }
        let count = self.direct.fetch_add(1, Ordering::Relaxed);
        let lease = Lease {
            worker: self.clone(),
        };
        if count >= MAX_DIRECT {
            return Err(declined(&format!("it has {MAX_DIRECT} already")));
        }
        let socket = self.socketpair_to_worker()?;
        if count == 0 {
            tokio::spawn(watch_deadline(self.clone(), deadline));
        }
        Ok((socket, lease))
    }

    /// Makes the socketpair and queues the worker's end with `Attach`.
    fn socketpair_to_worker(&self) -> Result<OwnedFd, RemoteError> {
        let (ours, theirs) = UnixStream::pair().map_err(|error| {
            RemoteError::new(
                ErrorKind::Unavailable,
                format!("cannot make a direct channel: {error}"),
            )
        })?;
        let attach = Outgoing::with_fd(&ToWorker::Attach, OwnedFd::from(theirs), self.max_frame)
            .map_err(|error| RemoteError::new(ErrorKind::Unavailable, error.to_string()))?;
        let _ = self.outgoing.send(attach); // a dead worker closes the other end
        Ok(OwnedFd::from(ours))
    }

    /// Whether the worker answers a ping within `grace`: a worker between
    /// calls does at once; a stuck or stopped one does not.
    pub(crate) async fn answers_ping(&self, grace: Duration) -> bool {
        let nonce = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut pong = self.pong.subscribe();
        if self.send(&ToWorker::Ping { nonce }).is_err() {
            return false;
        }
        let answered = pong.wait_for(|last| *last >= nonce);
        matches!(tokio::time::timeout(grace, answered).await, Ok(Ok(_)))
    }

    /// What the worker counted on its direct channels.
    pub(crate) fn direct_counts(&self) -> Option<DirectCounts> {
        self.stats.as_ref().map(|stats| stats.read())
    }

    /// The return addresses its crash handler wrote, if it ran (read once
    /// it has died).
    pub(crate) fn crash_frames(&self) -> Option<CrashFrames> {
        self.stats.as_ref().and_then(StatsPage::crash_frames)
    }

    /// The calls its flight recorder kept (read once it has died).
    pub(crate) fn recorded(&self) -> Vec<RecordedCall> {
        self.stats
            .as_ref()
            .map(|stats| stats.recorded())
            .unwrap_or_default()
    }

    /// Resolves with how the worker stopped serving.
    pub(crate) fn ended(&self) -> watch::Receiver<Option<DirectEnd>> {
        self.ended.subscribe()
    }
}

/// Checks `worker`'s stats page every [`DEADLINE_TICK`] while it has
/// direct channels, and condemns it when one call has kept it busy longer
/// than `deadline`. The page is the worker's word: a worker that lies
/// about being busy escapes this, but not its caller's own timeout, nor
/// the watchdog's CPU and memory limits.
async fn watch_deadline(worker: Arc<Worker>, deadline: Duration) {
    let mut tick = tokio::time::interval(DEADLINE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if worker.direct.load(Ordering::Relaxed) == 0 || worker.is_closed() {
            return;
        }
        let busy = worker.stats.as_ref().and_then(|stats| stats.busy_for());
        if busy.is_some_and(|busy| busy > deadline + DEADLINE_GRACE) {
            let why = format!(
                "a direct call missed the plugin's {} ms deadline",
                deadline.as_millis()
            );
            worker.condemn(ExitCause::CallDeadline, why);
            return;
        }
    }
}
