//! One host connection's replies: the writer task its frames go through
//! ([`Writer`]), and where one request's replies go ([`Stream`]): one
//! reply, or many for subscriptions, followed events and logs, and the
//! direct channels the connection holds ([`Directs`]).

use crate::host::encoding::Encoding;
use crate::observe::events::Events;
use crate::observe::logfile::LogFile;
use crate::process::worker::Worker;
use crate::transport::framed::{Outgoing, write_queued};
use corral_plugin_api::wire::{Message, Reply, Response, SharedBytes, WireError};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::debug;

/// Frames to one client, written in order by the connection's writer task,
/// which gathers the answers that are ready into one write.
#[derive(Clone)]
pub(crate) struct Writer {
    pub(crate) queue: mpsc::Sender<Outgoing>,
    pub(crate) max_frame: u32,
    /// Bincode until the client's hello says JSON.
    pub(crate) encoding: Encoding,
}

/// Frames queued for one client at most; past that, answering waits for
/// the client to read (a client that never reads holds up only itself).
const WRITE_QUEUE: usize = 256;

impl Writer {
    pub(crate) fn start(channel: tokio::net::unix::OwnedWriteHalf, max_frame: u32) -> Self {
        let (queue, frames) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(async move {
            if let Err(error) = write_queued(channel, frames).await {
                debug!("client write failed: {error}");
            }
        });
        Self {
            queue,
            max_frame,
            encoding: Encoding::Bincode,
        }
    }

    /// Queues `message` with `shared` as its payload; false when the frame
    /// cannot be made or the client is gone.
    pub(crate) async fn send<T: serde::Serialize>(
        &self,
        message: &T,
        shared: Option<SharedBytes>,
    ) -> bool {
        match self.encoding.encode(message, shared, self.max_frame) {
            Ok(frame) => self.queue.send(frame).await.is_ok(),
            Err(error) => {
                debug!("cannot answer client: {error}");
                false
            }
        }
    }
}

/// A reply, with the shared payload that goes with it.
pub(crate) struct Answer {
    pub(crate) reply: Reply,
    pub(crate) shared: Option<SharedBytes>,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Self {
            reply,
            shared: None,
        }
    }
}

/// The workers one connection holds direct channels to, by plugin name.
#[derive(Clone, Default)]
pub(crate) struct Directs(Arc<Mutex<Vec<Held>>>);

/// A direct channel held: the plugin's name and the worker.
type Held = (String, Arc<Worker>);

impl Directs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Held>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a channel to `worker` of `plugin`.
    pub(crate) fn add(&self, plugin: &str, worker: Arc<Worker>) {
        self.lock().push((plugin.to_owned(), worker));
    }

    /// Forgets a channel to `worker`.
    pub(crate) fn remove(&self, worker: &Arc<Worker>) {
        let mut directs = self.lock();
        if let Some(index) = directs.iter().position(|(_, w)| Arc::ptr_eq(w, worker)) {
            directs.swap_remove(index);
        }
    }

    /// Whether this connection holds a channel to `serving`, `plugin`'s
    /// serving worker.
    pub(crate) fn holds(&self, plugin: &str, serving: &Arc<Worker>) -> bool {
        self.lock()
            .iter()
            .any(|(name, worker)| name == plugin && Arc::ptr_eq(worker, serving))
    }
}

/// Where the replies to one request go: one, or many for a stream
/// (subscriptions, followed events and logs), which ends when the
/// connection does.
pub(crate) struct Stream {
    pub(crate) id: u64,
    pub(crate) writer: Writer,
    pub(crate) open: watch::Receiver<()>,
    /// The client takes shared payloads (sealed memfds) in replies.
    pub(crate) shared_replies: bool,
    /// The connection's direct channels.
    pub(crate) directs: Directs,
}

/// Log lines per [`Reply::Logs`] chunk.
const LOG_CHUNK: usize = 512;

impl Stream {
    /// Sends one reply with `fd` attached; false when the client is gone.
    pub(crate) async fn send_fd(&self, reply: Reply, fd: OwnedFd) -> bool {
        let response = Response { id: self.id, reply };
        match Outgoing::with_fd(&response, fd, self.writer.max_frame) {
            Ok(frame) => self.writer.queue.send(frame).await.is_ok(),
            Err(error) => {
                debug!("cannot answer client: {error}");
                false
            }
        }
    }

    /// Sends one reply; false when the client is gone.
    pub(crate) async fn send(&self, reply: Reply) -> bool {
        self.answer(reply.into()).await
    }

    /// Sends one reply with its shared payload; false when the client is
    /// gone.
    pub(crate) async fn answer(&self, answer: Answer) -> bool {
        let response = Response {
            id: self.id,
            reply: answer.reply,
        };
        let encoding = self.writer.encoding;
        let max = self.writer.max_frame;
        let frame = match encoding.encode(&response, answer.shared, max) {
            // Too large to send: the request still gets an answer.
            Err(WireError::TooLarge { len, max }) => {
                let hint = if encoding == Encoding::Json {
                    ": in JSON a byte takes up to 4 (ask for less, or use bincode frames, \
                     which carry bytes as they are)"
                } else {
                    ""
                };
                let error = RemoteError::new(
                    ErrorKind::BadRequest,
                    format!("the reply is {len} bytes, over the frame limit of {max} bytes{hint}"),
                );
                let response = Response {
                    id: self.id,
                    reply: Reply::Error(error),
                };
                encoding.encode(&response, None, max)
            }
            other => other,
        };
        match frame {
            Ok(frame) => self.writer.queue.send(frame).await.is_ok(),
            Err(error) => {
                debug!("cannot answer client: {error}");
                false
            }
        }
    }

    /// Resolves when the client's connection has ended.
    pub(crate) async fn closed(&self) {
        let mut open = self.open.clone();
        while open.changed().await.is_ok() {}
    }

    /// Forwards publications until the client goes away.
    pub(crate) async fn messages(&self, mut messages: mpsc::Receiver<Message>) {
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { return };
                    if !self.send(Reply::Message(message)).await {
                        return;
                    }
                }
                () = self.closed() => return,
            }
        }
    }

    /// Sends the events after `after`, then each new one, until the client
    /// goes away.
    pub(crate) async fn events(&self, events: &Events, mut after: u64) {
        let mut recorded = events.watch();
        loop {
            let new = events.after(after);
            if let Some(last) = new.last() {
                after = last.seq;
                if !self.send(Reply::Events(new)).await {
                    return;
                }
            }
            tokio::select! {
                changed = recorded.changed() => if changed.is_err() { return },
                () = self.closed() => return,
            }
        }
    }

    /// Sends the log lines written since `since_unix_ms`, in chunks; then,
    /// when following, each new line until the client goes away.
    pub(crate) async fn logs(&self, log: Arc<LogFile>, since_unix_ms: u64, follow: bool) {
        let (mut new_lines, mark) = if follow {
            let (lines, mark) = log.follow();
            (Some(lines), mark)
        } else {
            (None, log.mark())
        };
        let (chunks, mut kept) = mpsc::channel::<Vec<String>>(2);
        let reading = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(LOG_CHUNK);
            let read = log.read_to(&mark, since_unix_ms, |line| {
                chunk.push(line.to_owned());
                if chunk.len() == LOG_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(LOG_CHUNK));
                    let _ = chunks.blocking_send(full);
                }
            });
            if let Err(error) = read {
                chunk.push(format!("[corral: cannot read the log: {error}]"));
            }
            let _ = chunks.blocking_send(chunk);
        });
        while let Some(lines) = kept.recv().await {
            if !lines.is_empty() && !self.send(Reply::Logs { lines, done: false }).await {
                reading.abort();
                return;
            }
        }
        let Some(new_lines) = &mut new_lines else {
            self.send(Reply::Logs {
                lines: Vec::new(),
                done: true,
            })
            .await;
            return;
        };
        loop {
            let line = tokio::select! {
                line = new_lines.recv() => line,
                () = self.closed() => return,
            };
            let line = match line {
                Ok(line) => line.to_string(),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    format!("[corral: {skipped} lines skipped: this reader fell behind]")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let lines = vec![line];
            if !self.send(Reply::Logs { lines, done: false }).await {
                return;
            }
        }
    }
}
