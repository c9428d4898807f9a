//! Async frame I/O over tokio streams: the adapters around the pure codec
//! in `corral_plugin_api::wire`.

use corral_plugin_api::wire::{FrameHeader, HEADER_LEN, WireError, encode_frame};
use serde::Serialize;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};

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

/// One side of a stream that is read and written through `&S` (as
/// interprocess's local sockets are), so that a reader task and writers
/// can each own a handle.
pub(crate) struct SharedStream<S>(pub(crate) Arc<S>);

impl<S> AsyncRead for SharedStream<S>
where
    for<'a> &'a S: AsyncRead,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for SharedStream<S>
where
    for<'a> &'a S: AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

/// Splits a shared stream into a frame reader and a frame writer.
pub(crate) fn split<S>(
    stream: S,
    max: u32,
) -> (FrameReader<SharedStream<S>>, FrameWriter<SharedStream<S>>)
where
    for<'a> &'a S: AsyncRead + AsyncWrite,
{
    let stream = Arc::new(stream);
    (
        FrameReader::new(SharedStream(stream.clone()), max),
        FrameWriter::new(SharedStream(stream), max),
    )
}
