//! The worker's end of the supervisor channel: fd 3, framed.

use corral_plugin_api::wire::{self, WireError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::BufReader;
use std::os::fd::{FromRawFd, OwnedFd};
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

/// Framed, blocking I/O on fd 3.
pub(crate) struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    read_buf: Vec<u8>,
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
        let writer = UnixStream::from(fd);
        writer.local_addr().map_err(ChannelError::NoChannel)?;
        // SAFETY: as above; FD_CLOEXEC keeps the channel from leaking into
        // anything the plugin might exec.
        unsafe { libc::fcntl(CHANNEL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
        let reader = writer.try_clone().map_err(ChannelError::NoChannel)?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            max_frame: wire::DEFAULT_MAX_FRAME,
        })
    }

    /// Adopts the frame limit the supervisor announced.
    pub(crate) fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Reads the next frame body; `None` when the supervisor closed the
    /// channel between frames.
    pub(crate) fn recv_body(&mut self) -> Result<Option<&[u8]>, ChannelError> {
        if wire::read_frame(&mut self.reader, &mut self.read_buf, self.max_frame)? {
            Ok(Some(&self.read_buf))
        } else {
            Ok(None)
        }
    }

    /// Reads and decodes the next frame; `None` at end of stream.
    pub(crate) fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ChannelError> {
        match self.recv_body()? {
            Some(body) => Ok(Some(wire::decode_body(body)?)),
            None => Ok(None),
        }
    }

    /// Encodes and sends one frame.
    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> Result<(), ChannelError> {
        wire::write_frame(
            &mut self.writer,
            message,
            &mut self.write_buf,
            self.max_frame,
        )?;
        Ok(())
    }
}
