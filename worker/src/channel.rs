//! The worker's end of the supervisor channel: fd 3, framed.

use corral_plugin_api::wire::{self, Frame, FrameBuffer, SharedBytes, WireError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The fd the supervisor hands the channel over on.
const CHANNEL_FD: i32 = 3;

/// The channel failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    #[error(
        "fd 3 is not an open socket ({0}): corral-worker is started by `corral serve`, not by hand"
    )]
    NoChannel(std::io::Error),
    #[error("supervisor channel: {0}")]
    Wire(#[from] WireError),
}

/// A frame from the supervisor, with what came with it.
pub(crate) struct Received<T> {
    pub(crate) message: T,
    /// A call's large input.
    pub(crate) shared: Option<SharedBytes>,
    /// A direct channel's socket, or the stats page.
    pub(crate) fd: Option<OwnedFd>,
}

/// Framed, blocking I/O on fd 3, with the shared payloads (sealed memfds)
/// that travel beside large frames.
pub(crate) struct Channel {
    socket: UnixStream,
    frames: FrameBuffer,
    write_buf: Vec<u8>,
    max_frame: u32,
}

impl Channel {
    /// Takes ownership of fd 3 and checks that it is a socket.
    #[allow(unsafe_code, reason = "adopts the inherited fd 3")]
    pub(crate) fn from_inherited_fd() -> Result<Self, ChannelError> {
        // SAFETY: F_GETFD only reads the descriptor's flags; any int is a
        // valid argument.
        if unsafe { libc::fcntl(CHANNEL_FD, libc::F_GETFD) } < 0 {
            return Err(ChannelError::NoChannel(std::io::Error::last_os_error()));
        }
        // SAFETY: fd 3 is open (checked above) and nothing else in this
        // process uses it: the supervisor passes it for the worker alone.
        let fd = unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) };
        let socket = UnixStream::from(fd);
        socket.local_addr().map_err(ChannelError::NoChannel)?;
        // SAFETY: as above; FD_CLOEXEC keeps the channel from leaking into
        // anything the plugin might exec.
        unsafe { libc::fcntl(CHANNEL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
        let mut frames = FrameBuffer::new(wire::DEFAULT_MAX_FRAME);
        // The supervisor sends the stats page and direct channels' sockets.
        frames.accept_fds();
        Ok(Self {
            socket,
            frames,
            write_buf: Vec::new(),
            max_frame: wire::DEFAULT_MAX_FRAME,
        })
    }

    /// The channel's socket, to wait on.
    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Adopts the frame limit the supervisor announced.
    pub(crate) fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
        self.frames.set_max(max_frame);
    }

    /// Reads the next frame; `None` when the supervisor closed the channel
    /// between frames. Its body is [`body`](Self::body).
    pub(crate) fn recv_frame(&mut self) -> Result<Option<Frame>, ChannelError> {
        Ok(self.frames.read_frame(self.socket.as_fd())?)
    }

    /// The body of `frame`, the last one read.
    pub(crate) fn body(&self, frame: &Frame) -> &[u8] {
        self.frames.body(frame)
    }

    /// Reads and decodes the next frame, with what came with it; `None`
    /// at end of stream.
    pub(crate) fn recv<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<Received<T>>, ChannelError> {
        match self.recv_frame()? {
            Some(frame) => self.decode(frame).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes the next frame that is buffered whole already, without
    /// reading; `None` when there is none.
    pub(crate) fn try_buffered<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<Received<T>>, ChannelError> {
        match self.frames.next_frame()? {
            Some(frame) => self.decode(frame).map(Some),
            None => Ok(None),
        }
    }

    fn decode<T: DeserializeOwned>(&self, frame: Frame) -> Result<Received<T>, ChannelError> {
        let message = wire::decode_body(self.body(&frame))?;
        Ok(Received {
            message,
            shared: frame.shared,
            fd: frame.fd,
        })
    }

    /// Encodes and sends one frame.
    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> Result<(), ChannelError> {
        self.send_shared(message, None)
    }

    /// Encodes and sends one frame with `shared` as its payload.
    pub(crate) fn send_shared<T: Serialize>(
        &mut self,
        message: &T,
        shared: Option<&SharedBytes>,
    ) -> Result<(), ChannelError> {
        wire::write_message(
            self.socket.as_fd(),
            message,
            shared,
            &mut self.write_buf,
            self.max_frame,
        )?;
        Ok(())
    }
}
