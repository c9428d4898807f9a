//! The calls in flight to one worker: a call registers a one-shot reply
//! slot under a fresh id, queues one frame and waits; replies complete
//! slots; when the worker dies, every slot still open is failed with how
//! it died, so callers never hang on a dead worker. Also what a worker's
//! host calls are served with (`HostCalls`) and where they come from
//! (`Chain`, `Origin`).

use crate::transport::framed::Outgoing;
use crate::transport::framed::write_queued;
use crate::transport::payload::Payload;
use corral_plugin_api::wire::{
    Call, ExitCause, Fault, HostCall, Outcome, StatsPage, ToWorker, WireError,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};
use tracing::debug;

type ReplySlot = oneshot::Sender<Result<Payload, RemoteError>>;

/// A boxed future, for the traits that serve workers.
pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The plugins on a chain of calls, outermost first: a plugin on it is
/// waiting for the call to come back, so a call into it would deadlock.
pub(crate) type Chain = Arc<Vec<String>>;

/// Where a host call is made: inside which plugin call.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The callers of that call.
    pub(crate) chain: Chain,
    /// When that call's time is up.
    pub(crate) deadline: Instant,
}

/// What a worker's plugin may ask of the host (`kv_get:KEY`,
/// `publish:TOPIC`, `call:PLUGIN/METHOD`, ...), served for it: the host
/// services implement it.
pub(crate) trait HostCalls: Send + Sync + 'static {
    /// Serves host call `op` (`NAME:ARG`) made inside `origin`.
    fn serve<'a>(
        &'a self,
        origin: Origin,
        op: &'a str,
        input: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>>;

    /// How long a host call made outside any call (`init`, a health
    /// check) may take.
    fn outside_calls(&self) -> Duration;
}

/// A call in flight: where its reply goes, who is waiting for it, and
/// when its time is up.
pub(super) struct Slot {
    reply: ReplySlot,
    chain: Chain,
    deadline: Instant,
}

/// Host calls a worker may have in flight at once; its own side sends one
/// at a time per thread, so more is a worker breaking the protocol.
pub(super) const MAX_HOST_CALLS: usize = 64;

#[derive(Default)]
pub(super) struct Pending {
    pub(super) calls: HashMap<u64, Slot>,
    /// Host calls being served.
    pub(super) host_calls: usize,
    /// Set once the worker is gone: new calls fail with it at once.
    pub(super) closed: Option<RemoteError>,
    /// Why the worker is to be killed, once condemned.
    pub(super) condemned_for: Option<(ExitCause, String)>,
    /// The syscall the seccomp filter caught, as the worker reported it.
    pub(super) violation: Option<u32>,
    /// Signals an admin asked to send (`corral kill`).
    pub(super) signals: Vec<Signal>,
    /// A newer generation took over: `Shutdown` is queued, and calls are
    /// handed back to go to the new worker.
    pub(super) retired: bool,
}

/// What became of a call handed to a worker.
pub(crate) enum Called {
    /// The worker answered, failed or timed out.
    Done(Result<Payload, RemoteError>),
    /// The worker was retired before the call was queued: send it to the
    /// worker that replaced it.
    Retired { method: String, input: Payload },
}

/// The call side of a running worker, shared by every caller.
///
/// Frames to the worker go through a queue to one writer task, so a caller
/// that gives up (timeout) can never leave half a frame on the channel.
pub(crate) struct Worker {
    pub(super) plugin: Arc<str>,
    pub(super) pid: u32,
    pub(super) max_frame: u32,
    pub(super) outgoing: mpsc::UnboundedSender<Outgoing>,
    pub(super) pending: Mutex<Pending>,
    pub(super) next_id: AtomicU64,
    /// Notified when the worker is condemned (a missed call deadline, the
    /// watchdog); the supervision loop then kills it.
    pub(super) condemned: Notify,
    /// Resident memory in bytes, as the watchdog last saw it (0: not yet).
    pub(super) rss_bytes: AtomicU64,
    /// CPU use in percent over the watchdog's window (`u64::MAX`: not
    /// known yet).
    pub(super) cpu_percent: AtomicU64,
    /// Where the worker counts its direct calls (see `super::direct`).
    pub(super) stats: Option<StatsPage>,
    /// Set once the worker stops serving: what its direct channels learn.
    pub(super) ended: watch::Sender<Option<DirectEnd>>,
    /// Direct channels handed out and not yet released.
    pub(super) direct: AtomicUsize,
    /// The nonce of the last `Pong`.
    pub(super) pong: watch::Sender<u64>,
}

/// How a worker stopped serving, for the host apps with a direct channel
/// to it.
#[derive(Debug, Clone)]
pub(crate) struct DirectEnd {
    /// A newer generation took over: calls without a reply were not read.
    pub(crate) retired: bool,
    /// Why, as the calls it had in flight fail.
    pub(crate) error: RemoteError,
}

/// Removes a call's slot when the caller stops waiting (timeout, or the
/// caller's task was dropped).
struct SlotGuard<'a> {
    worker: &'a Worker,
    id: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.worker.pending().calls.remove(&self.id);
    }
}

impl Worker {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The largest frame body the worker takes.
    pub(crate) fn max_frame(&self) -> u32 {
        self.max_frame
    }

    pub(super) fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `method` for the plugins on `chain`; the call's time
    /// `budget` counts from `started`. When `budget` is the plugin's own
    /// deadline (`kill_on_timeout`), a worker that misses it is killed: it
    /// is stuck or runaway, and its other callers are better served by a
    /// fresh one.
    pub(crate) async fn call(
        &self,
        method: String,
        input: Payload,
        started: Instant,
        budget: Duration,
        kill_on_timeout: bool,
        chain: Chain,
    ) -> Called {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = started + budget;
        let left = deadline.saturating_duration_since(Instant::now());
        let deadline_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        let (input, shared) = match input.for_frame(true) {
            Ok(parts) => parts,
            Err(error) => return Called::Done(Err(error)),
        };
        let call = Call {
            id,
            method,
            input,
            deadline_ms,
        };
        let message = ToWorker::Call(call);
        let outgoing = match Outgoing::encode(&message, shared.clone(), self.max_frame) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                let message = format!("plugin `{}`: {error}", self.plugin);
                return Called::Done(Err(RemoteError::new(ErrorKind::BadRequest, message)));
            }
        };
        let (slot, reply) = oneshot::channel();
        {
            // Checked and queued under one lock: `retire` queues Shutdown
            // under it too, so every call queued here is answered first.
            let mut pending = self.pending();
            if pending.retired {
                let ToWorker::Call(call) = message else {
                    unreachable!("built as a call above")
                };
                let input = match shared {
                    Some(shared) => Payload::Shared(shared),
                    None => Payload::Bytes(call.input),
                };
                return Called::Retired {
                    method: call.method,
                    input,
                };
            }
            if let Some(error) = &pending.closed {
                return Called::Done(Err(error.clone()));
            }
            pending.calls.insert(
                id,
                Slot {
                    reply: slot,
                    chain,
                    deadline,
                },
            );
            let _ = self.outgoing.send(outgoing);
        }
        let _guard = SlotGuard { worker: self, id };
        Called::Done(match timeout_at(deadline, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{}`: worker went away", self.plugin),
            )),
            Err(_) => {
                let millis = budget.as_millis();
                if kill_on_timeout {
                    let why = format!("a call missed the plugin's {millis} ms deadline");
                    self.condemn(ExitCause::CallDeadline, why);
                }
                Err(RemoteError::new(
                    ErrorKind::Timeout,
                    format!("plugin `{}` did not answer within {millis} ms", self.plugin),
                ))
            }
        })
    }

    /// Has the supervision loop kill this worker, for `cause`. The first
    /// reason given is the one recorded.
    pub(crate) fn condemn(&self, cause: ExitCause, why: String) {
        self.pending().condemned_for.get_or_insert((cause, why));
        self.condemned.notify_one();
    }

    /// Has the supervision loop send `signal` to the worker's process
    /// group (while it cannot have been reaped).
    pub(crate) fn kill(&self, signal: Signal) {
        self.pending().signals.push(signal);
        self.condemned.notify_one();
    }

    /// Records what the watchdog measured.
    pub(crate) fn record_usage(&self, rss_bytes: u64, cpu_percent: Option<f64>) {
        self.rss_bytes.store(rss_bytes, Ordering::Relaxed);
        if let Some(percent) = cpu_percent {
            // Rounded; a percentage fits u64 whatever the core count.
            #[allow(clippy::cast_possible_truncation, reason = "rounded, non-negative")]
            let percent = percent.max(0.0).round() as u64;
            self.cpu_percent.store(percent, Ordering::Relaxed);
        }
    }

    /// Resident memory and CPU percent, when measured.
    pub(crate) fn usage(&self) -> (Option<u64>, Option<u32>) {
        let rss = self.rss_bytes.load(Ordering::Relaxed);
        let cpu = self.cpu_percent.load(Ordering::Relaxed);
        (
            (rss > 0).then_some(rss),
            (cpu != u64::MAX).then(|| u32::try_from(cpu).unwrap_or(u32::MAX)),
        )
    }

    /// Sends the worker a fault to act on (tests, `--faults`).
    pub(crate) fn inject(&self, fault: Fault) {
        let _ = self.send(&ToWorker::Fault(fault));
    }

    /// Marks the worker as replaced by a newer generation and queues its
    /// `Shutdown` behind the calls already queued: it answers those, then
    /// exits; later calls are handed back ([`Called::Retired`]).
    pub(crate) fn retire(&self) {
        let mut pending = self.pending();
        pending.retired = true;
        let _ = self.send(&ToWorker::Shutdown);
        self.ended.send_if_modified(|ended| {
            ended.get_or_insert_with(|| DirectEnd {
                retired: true,
                error: RemoteError::new(
                    ErrorKind::Unavailable,
                    format!("plugin `{}`: replaced by a newer generation", self.plugin),
                ),
            });
            true
        });
    }

    /// Whether a newer generation replaced this worker.
    pub(crate) fn is_retired(&self) -> bool {
        self.pending().retired
    }

    /// Calls sent and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending().calls.len()
    }

    /// Whether the worker has exited (its calls are failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.pending().closed.is_some()
    }

    /// Queues one frame for the writer task. If the worker is gone, the
    /// frame is dropped and its exit fails the call with the reason.
    pub(super) fn send(&self, message: &ToWorker) -> Result<(), WireError> {
        let _ = self
            .outgoing
            .send(Outgoing::encode(message, None, self.max_frame)?);
        Ok(())
    }

    pub(super) fn complete(&self, id: u64, result: Result<Payload, RemoteError>) {
        if let Some(slot) = self.pending().calls.remove(&id) {
            let _ = slot.reply.send(result); // the caller may have given up
        }
    }

    /// Where a host call made during call `call` comes from; a call not in
    /// flight (0: `init`, a health check) gets `fallback` from now.
    pub(crate) fn origin(&self, call: u64, fallback: Duration) -> Origin {
        match self.pending().calls.get(&call) {
            Some(slot) => Origin {
                chain: slot.chain.clone(),
                deadline: slot.deadline,
            },
            None => Origin {
                chain: Chain::default(),
                deadline: Instant::now() + fallback,
            },
        }
    }

    /// Serves one host call in its own task and sends the answer; false
    /// when the worker has too many in flight (it breaks the protocol).
    pub(super) fn serve_host_call(
        self: &Arc<Self>,
        host: &Arc<dyn HostCalls>,
        call: HostCall,
    ) -> bool {
        {
            let mut pending = self.pending();
            if pending.host_calls >= MAX_HOST_CALLS {
                return false;
            }
            pending.host_calls += 1;
        }
        let fallback = host.outside_calls();
        let origin = self.origin(call.call, fallback);
        let (worker, host) = (self.clone(), host.clone());
        tokio::spawn(async move {
            let result = host.serve(origin, &call.op, call.input).await;
            worker.pending().host_calls -= 1;
            if let Err(error) = worker.send(&host_reply(call.id, result)) {
                let _ = worker.send(&host_reply(call.id, Err(too_large(&error))));
            }
        });
        true
    }

    /// Fails every call in flight and every later call with `error`.
    pub(crate) fn close(&self, error: RemoteError) {
        let calls = {
            let mut pending = self.pending();
            pending.closed = Some(error.clone());
            std::mem::take(&mut pending.calls)
        };
        self.ended.send_if_modified(|ended| {
            ended.get_or_insert_with(|| DirectEnd {
                retired: false,
                error: error.clone(),
            });
            true
        });
        for (_, slot) in calls {
            let _ = slot.reply.send(Err(error.clone()));
        }
    }
}

/// The answer to host call `id`.
pub(super) fn host_reply(id: u64, result: Result<Vec<u8>, RemoteError>) -> ToWorker {
    ToWorker::HostReply {
        id,
        outcome: match result {
            Ok(bytes) => Outcome::Ok(bytes),
            Err(error) => Outcome::Err(error),
        },
    }
}

/// What a host call gets when its answer does not fit in a frame.
pub(super) fn too_large(error: &WireError) -> RemoteError {
    RemoteError::new(
        ErrorKind::BadRequest,
        format!("the host service's answer cannot be sent: {error}"),
    )
}

/// Writes queued frames to the worker until the queue closes (the worker
/// handle is gone) or the channel breaks (the worker is dying).
pub(super) async fn write_frames(
    channel: OwnedWriteHalf,
    queue: mpsc::UnboundedReceiver<Outgoing>,
    plugin: Arc<str>,
) {
    if let Err(error) = write_queued(channel, queue).await {
        debug!(plugin = %plugin, "channel write failed: {error}");
    }
}
