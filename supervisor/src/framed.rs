//! Async frame I/O over tokio streams: the adapters around the pure codec
//! in `corral_plugin_api::wire`.

use corral_plugin_api::wire::{FrameHeader, HEADER_LEN, WireError, encode_frame};
use serde::Serialize;
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Reads frames from a stream.
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    max: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R, max: u32) -> Self {
        Self {
            inner: BufReader::with_capacity(64 * 1024, inner),
            buf: Vec::new(),
            max,
        }
    }

    /// The next frame's body; `None` on a clean end of stream between
    /// frames. Not cancel-safe: do not race it in `select!`.
    pub(crate) async fn next_body(&mut self) -> Result<Option<&[u8]>, WireError> {
        let mut header = [0; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match self.inner.read(&mut header[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => {
                    return Err(WireError::Truncated {
                        got,
                        want: HEADER_LEN,
                    });
                }
                n => got += n,
            }
        }
        let header = FrameHeader::parse(header, self.max)?;
        if self.buf.capacity() > 1024 * 1024 {
            self.buf = Vec::new(); // do not keep a large payload's buffer around
        }
        self.buf.clear();
        self.buf.resize(header.body_len, 0);
        let mut got = 0;
        while got < header.body_len {
            match self.inner.read(&mut self.buf[got..]).await? {
                0 => {
                    return Err(WireError::Truncated {
                        got,
                        want: header.body_len,
                    });
                }
                n => got += n,
            }
        }
        Ok(Some(&self.buf))
    }
}

/// Writes frames to a stream.
pub(crate) struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    max: u32,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(inner: W, max: u32) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            max,
        }
    }

    /// The stream, for writing on without this buffer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Encodes `message` and writes it as one frame.
    pub(crate) async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
        self.buf.clear();
        encode_frame(message, &mut self.buf, self.max)?;
        self.inner.write_all(&self.buf).await?;
        if self.buf.capacity() > 1024 * 1024 {
            self.buf = Vec::new(); // do not keep a large payload's buffer around
        }
        Ok(())
    }
}

/// Turns an accepted or connected interprocess local socket into tokio's
/// own `UnixStream`. interprocess names, binds and connects the socket;
/// tokio's stream does the per-frame I/O, and unlike interprocess's reader
/// it skips the extra `EAGAIN` read after a short read.
pub(crate) fn unix_stream(
    stream: interprocess::local_socket::tokio::Stream,
) -> io::Result<tokio::net::UnixStream> {
    let interprocess::local_socket::tokio::Stream::UdSocket(stream) = stream;
    let stream = std::os::unix::net::UnixStream::from(OwnedFd::try_from(stream)?);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}
