//! The blocking client's direct channels: one per plugin, to its serving
//! worker, used one call at a time. The ends are the async client's (see
//! `client::direct`): `Goodbye` sends the call again, relayed; a closed
//! channel fails it with how the worker died; a broken frame fails it and
//! is reported so that the worker is killed.

use crate::client::arena::{ClientArenas, Payload, ReplyView};
use crate::client::requests::{
    ClientError, DirectFrame, FromDirect, direct_call, direct_timeout, from_direct,
};
use corral_plugin_api::wire::{self, DirectChannel, FrameBuffer, WireError};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// One direct channel.
pub(crate) struct BlockingDirect {
    /// The request that opened it; its last reply says how the worker
    /// ended.
    pub(crate) request: u64,
    socket: UnixStream,
    frames: FrameBuffer,
    next_id: u64,
    max_frame: u32,
    /// The plugin's deadline: no call waits longer.
    deadline: Duration,
    /// The receive timeout set on the socket now (one syscall saved a
    /// call while it stays).
    read_timeout: Option<Duration>,
    arenas: ClientArenas,
}

/// What became of a call on a direct channel.
pub(crate) enum Called {
    /// Answered, failed, or timed out before the plugin's deadline.
    Done(Result<ReplyView, ClientError>),
    /// No reply within the plugin's own deadline (the error says so): the
    /// supervisor is to check the worker.
    Overdue(ClientError),
    /// The worker was replaced and did not read it: send it again, relayed.
    Again,
    /// The channel closed: the worker died; its end says how.
    Closed,
    /// The worker broke the protocol (`why`); the call failed.
    Broken(String),
}

impl BlockingDirect {
    pub(crate) fn new(request: u64, socket: OwnedFd, channel: &DirectChannel) -> Self {
        let mut frames = FrameBuffer::new(channel.max_frame);
        frames.accept_fds(); // the worker's arena segments
        Self {
            request,
            socket: UnixStream::from(socket),
            frames,
            next_id: 1,
            max_frame: channel.max_frame,
            deadline: Duration::from_millis(channel.deadline_ms),
            read_timeout: None,
            arenas: ClientArenas::new(channel.max_frame),
        }
    }

    /// Calls `method`, waiting up to `timeout` (or the plugin's deadline,
    /// when shorter) for the reply. When the call is to go again, relayed,
    /// `payload` holds its input.
    pub(crate) fn call(
        &mut self,
        plugin: &str,
        method: &str,
        payload: &mut Payload<'_>,
        timeout: Duration,
    ) -> Called {
        let id = self.next_id;
        self.next_id += 1;
        let overdue_kills = timeout >= self.deadline;
        let wait = timeout.min(self.deadline).max(Duration::from_millis(1));
        let frame = match direct_call(id, method, payload, wait, &mut self.arenas, self.max_frame) {
            Ok(frame) => frame,
            Err(error) => {
                let error =
                    RemoteError::new(ErrorKind::BadRequest, format!("plugin `{plugin}`: {error}"));
                return Called::Done(Err(error.into()));
            }
        };
        let called = self.exchange(plugin, id, &frame, wait, overdue_kills);
        if let Some(slot) = frame.slot {
            if let Called::Again = called {
                *payload = Payload::Owned(self.arenas.input(slot));
            }
            self.arenas.free_input(slot);
        }
        called
    }

    /// Sends call `id`'s frames and waits up to `wait` for its reply.
    fn exchange(
        &mut self,
        plugin: &str,
        id: u64,
        frame: &DirectFrame,
        wait: Duration,
        overdue_kills: bool,
    ) -> Called {
        let fd = frame.fd.as_ref().map(AsFd::as_fd);
        if wire::send_frame(self.socket.as_fd(), &frame.bytes, fd).is_err() {
            // The worker is gone and did not read it: it may go again.
            return Called::Again;
        }
        if self.read_timeout != Some(wait) {
            if let Err(error) = self.socket.set_read_timeout(Some(wait)) {
                return Called::Done(Err(WireError::Io(error).into()));
            }
            self.read_timeout = Some(wait);
        }
        loop {
            let mut frame = match self.frames.read_frame(self.socket.as_fd()) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Called::Closed,
                Err(WireError::Io(error))
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // What was read stays buffered; a late reply is skipped
                    // by the next call.
                    let error = direct_timeout(plugin, wait);
                    if overdue_kills {
                        return Called::Overdue(error);
                    }
                    return Called::Done(Err(error));
                }
                Err(WireError::Io(_)) => return Called::Closed,
                Err(error) => return Called::Broken(error.to_string()),
            };
            let fd = frame.fd.take();
            let body = self.frames.body(&frame);
            let (got, outcome) = match from_direct(body, frame.shared, fd, &mut self.arenas) {
                FromDirect::Reply(got, outcome) => (got, outcome),
                FromDirect::Goodbye => return Called::Again,
                FromDirect::Broken(why) => return Called::Broken(why),
            };
            match got.cmp(&id) {
                std::cmp::Ordering::Equal => return Called::Done(outcome),
                std::cmp::Ordering::Less => {} // a call that timed out
                std::cmp::Ordering::Greater => {
                    return Called::Broken(format!("a reply to call {got}, never made"));
                }
            }
        }
    }
}
