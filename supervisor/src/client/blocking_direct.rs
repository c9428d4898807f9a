//! The blocking client's direct channels: one per plugin, to its serving
//! worker, used one call at a time. The ends are the async client's (see
//! `client::direct`): `Goodbye` sends the call again, relayed; a closed
//! channel fails it with how the worker died; a broken frame fails it and
//! is reported so that the worker is killed.

use crate::client::requests::{ClientError, FromDirect, direct_call, direct_timeout, from_direct};
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
    write_buf: Vec<u8>,
    next_id: u64,
    max_frame: u32,
    /// The plugin's deadline: no call waits longer.
    deadline: Duration,
    /// The receive timeout set on the socket now (one syscall saved a
    /// call while it stays).
    read_timeout: Option<Duration>,
}

/// What became of a call on a direct channel.
pub(crate) enum Called {
    /// Answered, failed, or timed out before the plugin's deadline.
    Done(Result<Vec<u8>, ClientError>),
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
        Self {
            request,
            socket: UnixStream::from(socket),
            frames: FrameBuffer::new(channel.max_frame),
            write_buf: Vec::new(),
            next_id: 1,
            max_frame: channel.max_frame,
            deadline: Duration::from_millis(channel.deadline_ms),
            read_timeout: None,
        }
    }

    /// Calls `method`, waiting up to `timeout` (or the plugin's deadline,
    /// when shorter) for the reply.
    pub(crate) fn call(
        &mut self,
        plugin: &str,
        method: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Called {
        let id = self.next_id;
        self.next_id += 1;
        let overdue_kills = timeout >= self.deadline;
        let wait = timeout.min(self.deadline).max(Duration::from_millis(1));
        let (frame, shared) = direct_call(id, method, input, wait);
        let sent = wire::write_message(
            self.socket.as_fd(),
            &frame,
            shared.as_ref(),
            &mut self.write_buf,
            self.max_frame,
        );
        match sent {
            Ok(()) => {}
            // The worker is gone and did not read it: it may go again.
            Err(WireError::Io(_)) => return Called::Again,
            Err(error) => {
                let error =
                    RemoteError::new(ErrorKind::BadRequest, format!("plugin `{plugin}`: {error}"));
                return Called::Done(Err(error.into()));
            }
        }
        if self.read_timeout != Some(wait) {
            if let Err(error) = self.socket.set_read_timeout(Some(wait)) {
                return Called::Done(Err(WireError::Io(error).into()));
            }
            self.read_timeout = Some(wait);
        }
        loop {
            let frame = match self.frames.read_frame(self.socket.as_fd()) {
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
            let (got, outcome) = match from_direct(self.frames.body(&frame), frame.shared) {
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
