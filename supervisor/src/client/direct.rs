//! The async client's direct channels: one per plugin, to its serving
//! worker, opened on the first call and used for calls from then on, so
//! that a call crosses one socket instead of two.
//!
//! A channel ends three ways, and its calls without a reply with it:
//! - the worker is replaced (hot reload, install): it says `Goodbye` after
//!   answering every call it read, so the others go again, relayed, to the
//!   new worker (and the next call opens a channel to it);
//! - the worker dies: the calls fail with how it died, which the
//!   supervisor says on the request that opened the channel;
//! - the worker breaks the protocol on it: the calls fail, and the client
//!   tells the supervisor, which kills the worker.

use crate::client::arena::{ClientArenas, Payload, ReplyView};
use crate::client::lock;
use crate::client::requests::{ClientError, FromDirect, direct_call, direct_timeout, from_direct};
use crate::transport::framed::{FrameReader, Outgoing, write_queued};
use corral_plugin_api::wire::{DirectChannel, DirectReport, Reply, RequestBody, Slot, WireError};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How long a channel whose worker died waits for the supervisor to say
/// how, before failing its calls without the reason.
const END_WAIT: Duration = Duration::from_secs(1);

/// What became of a call sent on a direct channel.
pub(crate) enum Sent {
    /// Answered (or failed, or timed out).
    Done(Result<ReplyView, ClientError>),
    /// Not read by the worker, which was replaced: send it again, relayed.
    Again,
}

type Slots = HashMap<u64, oneshot::Sender<Sent>>;

/// The supervisor's last reply to the request that opened a channel.
pub(crate) type EndReply = Pin<Box<dyn Future<Output = Option<Reply>> + Send>>;

/// One direct channel, from the host app's side.
pub(crate) struct DirectLink {
    plugin: String,
    /// Frames for the channel's writer task.
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// The largest frame the worker takes.
    max_frame: u32,
    /// `None` once the channel has ended.
    slots: Arc<Mutex<Option<Slots>>>,
    /// The next call's id; replies to ids from here on were never asked.
    next_id: Arc<AtomicU64>,
    /// The plugin's deadline: no call waits longer.
    deadline: Duration,
    /// The channel's arenas, shared with the reader.
    arenas: Arc<Mutex<ClientArenas>>,
    /// Reports for the supervisor, sent on the client's connection.
    reports: mpsc::UnboundedSender<RequestBody>,
    reader: JoinHandle<()>,
}

impl Drop for DirectLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl DirectLink {
    /// Starts serving the channel `socket`; `end` resolves with the
    /// supervisor's last reply to the request that opened it (how the
    /// worker ended), and `reports` takes requests for the supervisor.
    pub(crate) fn start(
        plugin: &str,
        socket: OwnedFd,
        channel: &DirectChannel,
        end: EndReply,
        reports: mpsc::UnboundedSender<RequestBody>,
    ) -> Result<Self, ClientError> {
        let stream = std::os::unix::net::UnixStream::from(socket);
        stream.set_nonblocking(true).map_err(WireError::Io)?;
        let stream = tokio::net::UnixStream::from_std(stream).map_err(WireError::Io)?;
        let (read, write) = stream.into_split();
        let slots = Arc::new(Mutex::new(Some(HashMap::new())));
        let next_id = Arc::new(AtomicU64::new(1));
        let arenas = Arc::new(Mutex::new(ClientArenas::new(channel.max_frame)));
        // Frames go through one writer task, so that a caller that gives
        // up mid-write never leaves half a frame on the channel; frames
        // queued together go in one write.
        let (outgoing, queue) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Err(error) = write_queued(write, queue).await {
                debug!("direct channel write failed: {error}");
            }
        });
        let reader = tokio::spawn(read_replies(
            FrameReader::accepting_fds(read, channel.max_frame), // arena segments
            arenas.clone(),
            slots.clone(),
            next_id.clone(),
            end,
            reports.clone(),
            plugin.to_owned(),
        ));
        Ok(Self {
            plugin: plugin.to_owned(),
            outgoing,
            max_frame: channel.max_frame,
            slots,
            next_id,
            deadline: Duration::from_millis(channel.deadline_ms),
            arenas,
            reports,
            reader,
        })
    }

    /// Whether the channel has ended (the next call opens a new one).
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.slots).is_none()
    }

    /// Calls `method` on the channel, waiting up to `timeout` (or the
    /// plugin's deadline, when shorter). When the call is to go again,
    /// relayed, `payload` holds its input.
    pub(crate) async fn call(
        &self,
        method: &str,
        payload: &mut Payload<'_>,
        timeout: Duration,
    ) -> Sent {
        let overdue_kills = timeout >= self.deadline;
        let timeout = timeout.min(self.deadline).max(Duration::from_millis(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (slot, reply) = oneshot::channel();
        match lock(&self.slots).as_mut() {
            Some(slots) => slots.insert(id, slot),
            None => return Sent::Again,
        };
        let input = {
            // Encoded and queued under the lock: a new segment goes out
            // with the first frame that names it, before any other does.
            let mut arenas = lock(&self.arenas);
            match direct_call(id, method, payload, timeout, &mut arenas, self.max_frame) {
                Ok(frame) => {
                    // A writer task that is gone met a closed channel: the
                    // reader settles this call with the channel's end.
                    drop(
                        self.outgoing
                            .send(Outgoing::with_frames(frame.bytes, frame.fd)),
                    );
                    Input {
                        arenas: self.arenas.clone(),
                        slot: frame.slot,
                    }
                }
                Err(error) => {
                    drop(arenas);
                    self.forget(id);
                    return Sent::Done(Err(ClientError::Remote(RemoteError::new(
                        ErrorKind::BadRequest,
                        format!("plugin `{}`: {error}", self.plugin),
                    ))));
                }
            }
        };
        let sent = match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(sent)) => sent,
            Ok(Err(_)) => Sent::Again,
            Err(_) => {
                self.forget(id);
                if overdue_kills {
                    // The plugin's own deadline passed: the supervisor
                    // checks the worker, as it would a relayed call's.
                    let report = RequestBody::DirectReport {
                        plugin: self.plugin.clone(),
                        report: DirectReport::Overdue,
                    };
                    let _ = self.reports.send(report);
                }
                Sent::Done(Err(direct_timeout(&self.plugin, timeout)))
            }
        };
        if let (Sent::Again, Some(slot)) = (&sent, input.slot) {
            *payload = Payload::Owned(lock(&self.arenas).input(slot));
        }
        sent
    }

    fn forget(&self, id: u64) {
        if let Some(slots) = lock(&self.slots).as_mut() {
            slots.remove(&id);
        }
    }
}

/// A call's input slot, freed when the call is over (or given up).
struct Input {
    arenas: Arc<Mutex<ClientArenas>>,
    slot: Option<Slot>,
}

impl Drop for Input {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            lock(&self.arenas).free_input(slot);
        }
    }
}

/// Delivers replies until the channel ends, then settles every call still
/// waiting (see the module's three ends).
async fn read_replies(
    mut reader: FrameReader,
    arenas: Arc<Mutex<ClientArenas>>,
    slots: Arc<Mutex<Option<Slots>>>,
    next_id: Arc<AtomicU64>,
    end_reply: EndReply,
    reports: mpsc::UnboundedSender<RequestBody>,
    plugin: String,
) {
    let end = loop {
        let (body, shared, fd) = match reader.next_with_fd().await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(WireError::Io(_)) => break End::Closed,
            Err(error) => break End::Broken(error.to_string()),
        };
        let (id, result) = match from_direct(body, shared, fd, &mut lock(&arenas)) {
            FromDirect::Reply(id, result) => (id, result),
            FromDirect::Goodbye => break End::Replaced,
            FromDirect::Broken(why) => break End::Broken(why),
        };
        let slot = lock(&slots).as_mut().and_then(|slots| slots.remove(&id));
        match slot {
            Some(slot) => {
                let _ = slot.send(Sent::Done(result)); // the caller may have given up
            }
            // A call that timed out.
            None if id < next_id.load(Ordering::Relaxed) => {}
            None => break End::Broken(format!("a reply to call {id}, never made")),
        }
    };
    let waiting = lock(&slots).take().unwrap_or_default();
    let error = match end {
        End::Replaced => {
            settle(waiting, || Sent::Again);
            return;
        }
        End::Broken(why) => {
            warn!(
                plugin,
                "the worker broke the protocol on its direct channel: {why}"
            );
            let report = RequestBody::DirectReport {
                plugin: plugin.clone(),
                report: DirectReport::Broken { why: why.clone() },
            };
            let _ = reports.send(report);
            RemoteError::new(
                ErrorKind::Protocol,
                format!("plugin `{plugin}` broke the protocol on its direct channel: {why}"),
            )
        }
        End::Closed => match tokio::time::timeout(END_WAIT, end_reply).await {
            Ok(Some(Reply::DirectEnded { retired: true, .. })) => {
                settle(waiting, || Sent::Again);
                return;
            }
            Ok(Some(Reply::DirectEnded { error, .. })) => error,
            other => {
                debug!(
                    plugin,
                    "direct channel closed, no end from corral: {other:?}"
                );
                RemoteError::new(
                    ErrorKind::Crashed,
                    format!("plugin `{plugin}`: its direct channel closed"),
                )
            }
        },
    };
    settle(waiting, || {
        Sent::Done(Err(ClientError::Remote(error.clone())))
    });
}

/// How a direct channel ended.
enum End {
    /// The worker said `Goodbye`.
    Replaced,
    /// The channel closed: the worker died or was killed.
    Closed,
    /// The worker sent something it must not.
    Broken(String),
}

fn settle(slots: Slots, outcome: impl Fn() -> Sent) {
    for (_, slot) in slots {
        let _ = slot.send(outcome());
    }
}
