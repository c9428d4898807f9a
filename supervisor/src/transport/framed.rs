//! Async frame I/O over tokio Unix streams: the adapters around the pure
//! codec and the fd-carrying [`FrameBuffer`] in `corral_plugin_api::wire`.

use corral_plugin_api::wire::{
    Frame, FrameBuffer, SharedBytes, WireError, encode_frame, encode_shared_frame, mark_shared,
    send_with_fd,
};
use serde::Serialize;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use tokio::io::Interest;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Reads frames, and the shared payloads that come with them, from a
/// stream.
pub(crate) struct FrameReader {
    inner: OwnedReadHalf,
    frames: FrameBuffer,
    /// The fd that came with the last frame, when fds are accepted.
    fd: Option<OwnedFd>,
}

impl FrameReader {
    pub(crate) fn new(inner: OwnedReadHalf, max: u32) -> Self {
        Self {
            inner,
            frames: FrameBuffer::new(max),
            fd: None,
        }
    }

    /// A reader that also takes fds other than shared payloads (sockets,
    /// from the supervisor): see [`take_fd`](Self::take_fd).
    pub(crate) fn accepting_fds(inner: OwnedReadHalf, max: u32) -> Self {
        let mut reader = Self::new(inner, max);
        reader.frames.accept_fds();
        reader
    }

    /// The fd that came with the frame read last, if any.
    pub(crate) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fd.take()
    }

    /// The next frame's body and shared payload; `None` on a clean end of
    /// stream between frames. Cancel-safe: bytes read stay buffered.
    pub(crate) async fn next(&mut self) -> Result<Option<(&[u8], Option<SharedBytes>)>, WireError> {
        let Some(mut frame) = self.next_frame().await? else {
            return Ok(None);
        };
        self.fd = frame.fd.take();
        Ok(Some((self.frames.body(&frame), frame.shared)))
    }

    /// The next frame's body, shared payload and any other fd that came
    /// with it; as [`next`](Self::next) otherwise.
    pub(crate) async fn next_with_fd(&mut self) -> Result<Option<FrameParts<'_>>, WireError> {
        let Some(mut frame) = self.next_frame().await? else {
            return Ok(None);
        };
        let fd = frame.fd.take();
        Ok(Some((self.frames.body(&frame), frame.shared, fd)))
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        loop {
            if let Some(frame) = self.frames.next_frame()? {
                return Ok(Some(frame));
            }
            // Nothing buffered while waiting: a supervisor waits on
            // thousands of quiet channels.
            self.frames.release_if_empty();
            let stream = self.inner.as_ref();
            stream.readable().await?;
            let read = stream.try_io(Interest::READABLE, || {
                let read = self.frames.recv(stream.as_fd())?;
                if self.frames.drained() {
                    // Drained: report WouldBlock so that tokio waits for the
                    // next event instead of a read that finds nothing (as
                    // its own streams do); bytes that came meanwhile raised
                    // an event of their own.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            match read {
                Ok(0) if self.frames.is_mid_frame() => return Err(self.frames.truncated()),
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The next frame's body, for channels that take no shared payloads.
    pub(crate) async fn next_body(&mut self) -> Result<Option<&[u8]>, WireError> {
        match self.next().await? {
            Some((_, Some(_))) => Err(WireError::Attachment(
                "a shared payload where none is allowed".into(),
            )),
            Some((body, None)) => Ok(Some(body)),
            None => Ok(None),
        }
    }
}

/// A frame's body, shared payload and other fd.
pub(crate) type FrameParts<'a> = (&'a [u8], Option<SharedBytes>, Option<OwnedFd>);

/// Writes frames to a stream.
pub(crate) struct FrameWriter {
    inner: OwnedWriteHalf,
    buf: Vec<u8>,
    max: u32,
}

impl FrameWriter {
    pub(crate) fn new(inner: OwnedWriteHalf, max: u32) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            max,
        }
    }

    /// The stream, for writing on without this buffer.
    pub(crate) fn into_inner(self) -> OwnedWriteHalf {
        self.inner
    }

    /// Encodes `message` and writes it as one frame.
    pub(crate) async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
        self.send_shared(message, None).await
    }

    /// Encodes `message` and writes it as one frame with `fd` attached (a
    /// page or a socket the message names; see `FrameBuffer::accept_fds`).
    pub(crate) async fn send_fd<T: Serialize>(
        &mut self,
        message: &T,
        fd: BorrowedFd<'_>,
    ) -> Result<(), WireError> {
        self.buf.clear();
        encode_frame(message, &mut self.buf, self.max)?;
        mark_shared(&mut self.buf);
        write_frame(&self.inner, &self.buf, Some(fd)).await?;
        Ok(())
    }

    /// Encodes `message` and writes it as one frame, with `shared` as its
    /// payload when given (the message's own payload bytes left empty).
    pub(crate) async fn send_shared<T: Serialize>(
        &mut self,
        message: &T,
        shared: Option<&SharedBytes>,
    ) -> Result<(), WireError> {
        self.buf.clear();
        encode_shared_frame(message, shared, &mut self.buf, self.max)?;
        write_frame(&self.inner, &self.buf, shared.map(|shared| shared.as_fd())).await?;
        if self.buf.capacity() > 1024 * 1024 {
            self.buf = Vec::new(); // do not keep a large frame's buffer around
        }
        Ok(())
    }
}

/// Writes one encoded frame, `fd` attached to its first byte.
pub(crate) async fn write_frame(
    stream: &OwnedWriteHalf,
    frame: &[u8],
    mut fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> io::Result<()> {
    let stream = stream.as_ref();
    let mut sent = 0;
    while sent < frame.len() {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            send_with_fd(stream.as_fd(), &frame[sent..], fd)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                sent += n;
                fd = None; // it went with the first bytes
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// An encoded frame for a writer task, with the fd that goes with it.
pub(crate) struct Outgoing {
    frame: Vec<u8>,
    shared: Option<Attached>,
}

/// The fd attached to an outgoing frame.
enum Attached {
    /// A shared payload.
    Shared(SharedBytes),
    /// A socket or page the message names.
    Fd(OwnedFd),
}

impl AsFd for Attached {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Shared(shared) => shared.as_fd(),
            Self::Fd(fd) => fd.as_fd(),
        }
    }
}

impl Outgoing {
    /// A frame encoded already, header included, with no shared payload.
    pub(crate) fn from_frame(frame: Vec<u8>) -> Self {
        Self {
            frame,
            shared: None,
        }
    }

    /// Frames encoded already, with the fd that goes with the first one
    /// that says it carries one.
    pub(crate) fn with_frames(frames: Vec<u8>, fd: Option<OwnedFd>) -> Self {
        Self {
            frame: frames,
            shared: fd.map(Attached::Fd),
        }
    }

    /// The encoded frame, header included.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.frame
    }

    /// Encodes `message` as a frame, with `shared` as its payload.
    pub(crate) fn encode<T: Serialize>(
        message: &T,
        shared: Option<SharedBytes>,
        max: u32,
    ) -> Result<Self, WireError> {
        let mut frame = Vec::new();
        encode_shared_frame(message, shared.as_ref(), &mut frame, max)?;
        Ok(Self {
            frame,
            shared: shared.map(Attached::Shared),
        })
    }

    /// Encodes `message` as a frame with `fd` attached (a socket or page
    /// the message names).
    pub(crate) fn with_fd<T: Serialize>(
        message: &T,
        fd: OwnedFd,
        max: u32,
    ) -> Result<Self, WireError> {
        let mut frame = Vec::new();
        encode_frame(message, &mut frame, max)?;
        mark_shared(&mut frame);
        Ok(Self {
            frame,
            shared: Some(Attached::Fd(fd)),
        })
    }
}

/// The queue a writer task takes frames from.
pub(crate) trait FrameQueue {
    /// The next frame, waiting for one; `None` once every sender is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Outgoing>> + Send;
    /// A frame that is queued already.
    fn try_recv(&mut self) -> Option<Outgoing>;
}

impl FrameQueue for mpsc::UnboundedReceiver<Outgoing> {
    fn recv(&mut self) -> impl Future<Output = Option<Outgoing>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Outgoing> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

impl FrameQueue for mpsc::Receiver<Outgoing> {
    fn recv(&mut self) -> impl Future<Output = Option<Outgoing>> + Send {
        mpsc::Receiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Outgoing> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

/// Writes the frames of `queue` to `channel` in order until the queue
/// closes (`Ok`) or a write fails. Frames that are queued already go out
/// together in one write; one with an fd goes in a write of its own, the
/// fd on its first byte.
pub(crate) async fn write_queued(
    channel: OwnedWriteHalf,
    mut queue: impl FrameQueue,
) -> io::Result<()> {
    /// Bytes gathered into one write at most.
    const BATCH: usize = 64 * 1024;
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(Outgoing { frame, shared }) = next.take() {
            match shared {
                None if frame.len() < BATCH => batch.extend_from_slice(&frame),
                shared => {
                    flush(&channel, &mut batch).await?;
                    let fd = shared.as_ref().map(AsFd::as_fd);
                    write_frame(&channel, &frame, fd).await?;
                }
            }
            if batch.len() < BATCH {
                next = queue.try_recv();
            }
        }
        flush(&channel, &mut batch).await?;
    }
    Ok(())
}

/// Writes what `batch` gathered and empties it.
async fn flush(channel: &OwnedWriteHalf, batch: &mut Vec<u8>) -> io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let written = write_frame(channel, batch, None).await;
    batch.clear();
    written
}

/// Turns an accepted or connected interprocess local socket into tokio's
/// own `UnixStream`. interprocess names, binds and connects the socket;
/// tokio's stream does the per-frame I/O.
pub(crate) fn unix_stream(
    stream: interprocess::local_socket::tokio::Stream,
) -> io::Result<tokio::net::UnixStream> {
    let interprocess::local_socket::tokio::Stream::UdSocket(stream) = stream;
    let stream = std::os::unix::net::UnixStream::from(OwnedFd::try_from(stream)?);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}
