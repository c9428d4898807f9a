//! Direct channels: sockets to host apps that the supervisor attached
//! (`ToWorker::Attach`), on which the worker serves calls without the
//! supervisor in between. A channel takes only `Call` frames; anything
//! else, a bad frame or a peer that stops reading its replies ends that
//! channel alone, never the worker.

use corral_plugin_api::wire::{
    self, FrameBuffer, FromWorker, SharedBytes, ToWorker, WireError, write_message,
};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Direct channels one worker serves at most; the supervisor attaches no
/// more.
pub(crate) const MAX_CHANNELS: usize = 256;

/// How long a reply may wait for a host app that does not read its
/// channel before that channel is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// One direct channel.
pub(crate) struct Direct {
    socket: UnixStream,
    frames: FrameBuffer,
    write_buf: Vec<u8>,
    max_frame: u32,
}

/// A call read from a direct channel, with its large input.
pub(crate) type DirectCall = (wire::Call, Option<SharedBytes>);

impl Direct {
    /// Takes the socket the supervisor attached.
    pub(crate) fn adopt(fd: OwnedFd, max_frame: u32) -> io::Result<Self> {
        let socket = UnixStream::from(fd);
        socket.local_addr()?; // a Unix socket, or this fails
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Self {
            socket,
            frames: FrameBuffer::new(max_frame),
            write_buf: Vec::new(),
            max_frame,
        })
    }

    /// The socket, to wait on.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads what the socket has (it is readable); false at its end.
    pub(crate) fn fill(&mut self) -> Result<bool, WireError> {
        match self.frames.recv(self.socket.as_fd()) {
            Ok(0) if self.frames.is_mid_frame() => Err(self.frames.truncated()),
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether bytes of a next call are buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        self.frames.is_mid_frame()
    }

    /// The next call buffered whole; `None` when more bytes are needed.
    pub(crate) fn next_call(&mut self) -> Result<Option<DirectCall>, WireError> {
        let Some(frame) = self.frames.next_frame()? else {
            return Ok(None);
        };
        match wire::decode_body::<ToWorker>(self.frames.body(&frame))? {
            ToWorker::Call(call) => Ok(Some((call, frame.shared))),
            other => Err(WireError::Decode(format!(
                "a direct channel takes calls only, not {other:?}"
            ))),
        }
    }

    /// Sends one frame, with `shared` as its payload.
    pub(crate) fn send(
        &mut self,
        message: &FromWorker,
        shared: Option<&SharedBytes>,
    ) -> Result<(), WireError> {
        write_message(
            self.socket.as_fd(),
            message,
            shared,
            &mut self.write_buf,
            self.max_frame,
        )
    }
}
