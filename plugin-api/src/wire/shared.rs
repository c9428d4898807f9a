//! Large payloads in sealed memfds, and the socket I/O that carries their
//! fds beside the frames (`SCM_RIGHTS`).
//!
//! A payload of [`SHARED_MIN`] bytes or more is written once into a memfd,
//! sealed against writing, growing and shrinking, and its fd is sent with
//! the frame whose payload it is ([`SHARED_FLAG`](super::SHARED_FLAG)). A
//! relay (the supervisor) forwards the fd without reading the bytes; the
//! end that needs them maps the file read-only. The seals are what make
//! this safe between processes that do not trust each other: nobody can
//! change the bytes after they were checked, or truncate the file under a
//! reader's mapping (which would be a `SIGBUS`).
//!
//! [`FrameBuffer`] is the reading side for every channel, blocking or
//! not: it reads with `recvmsg`, so an fd that arrives with a frame is
//! never dropped, and hands out whole frames with their fds.
//!
//! Longer than most modules because the payloads and the socket I/O that
//! carries their fds are one protocol, and their tests (fds claimed in
//! order, refused, over the limit) are here beside both.
#![allow(
    unsafe_code,
    reason = "memfd, mmap and SCM_RIGHTS have no safe std API"
)]

use super::codec::{FrameHeader, HEADER_LEN, SHARED_FLAG, WireError, encode_frame, mark_shared};
use std::collections::VecDeque;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Payloads of at least this many bytes travel in a sealed memfd.
pub const SHARED_MIN: usize = 64 * 1024;

/// The seals a shared payload must carry.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Fds one `recvmsg` accepts; more is a peer breaking the protocol.
const MAX_FDS_PER_READ: u32 = 4;

/// Bytes of one fd in an `SCM_RIGHTS` message.
const FD_LEN: u32 = 4;
const _: () = assert!(size_of::<RawFd>() == FD_LEN as usize);

/// Fds received and not yet claimed by a frame, at most.
const MAX_QUEUED_FDS: usize = 8;

/// A payload's bytes in a sealed memfd: immutable, of a fixed length, cheap
/// to clone (the fd is shared) and to forward.
#[derive(Debug, Clone)]
pub struct SharedBytes {
    fd: Arc<OwnedFd>,
    len: usize,
}

/// A new, empty memfd named `name` that takes seals.
pub(super) fn sealable_memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated string; the flags are valid.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Whether `fd` is a memfd carrying every seal of a shared payload.
fn is_sealed_payload(fd: &OwnedFd) -> bool {
    // SAFETY: F_GET_SEALS takes no argument; a non-memfd fails.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

impl SharedBytes {
    /// Copies `bytes` into a new sealed memfd.
    pub fn copy_from(bytes: &[u8]) -> io::Result<Self> {
        let fd = sealable_memfd(c"corral-payload")?;
        let mut file = std::fs::File::from(fd);
        io::Write::write_all(&mut file, bytes)?;
        let fd = OwnedFd::from(file);
        // SAFETY: F_ADD_SEALS takes an int of seal flags; the fd is ours.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd: Arc::new(fd),
            len: bytes.len(),
        })
    }

    /// Takes an fd a peer sent as a shared payload: it must be a memfd
    /// sealed against writing, growing and shrinking, of at most `max`
    /// bytes.
    pub fn adopt(fd: OwnedFd, max: u32) -> Result<Self, WireError> {
        if !is_sealed_payload(&fd) {
            return Err(WireError::Attachment(
                "the fd sent with the frame is not a memfd sealed against writing, growing and \
                 shrinking"
                    .into(),
            ));
        }
        // SAFETY: `stat` is plain data that fstat fills in; the fd is open.
        let len = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::fstat(fd.as_raw_fd(), &mut stat) < 0 {
                return Err(io::Error::last_os_error().into());
            }
            stat.st_size
        };
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        if len > u64::from(max) {
            return Err(WireError::TooLarge { len, max });
        }
        let len = usize::try_from(len).map_err(|_| WireError::TooLarge { len, max })?;
        Ok(Self {
            fd: Arc::new(fd),
            len,
        })
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps the bytes read-only.
    pub fn map(&self) -> io::Result<Mapping> {
        Mapping::new(self.fd.as_fd(), self.len)
    }

    /// Copies the bytes out.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        Ok(self.map()?.to_vec())
    }
}

impl AsFd for SharedBytes {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A read-only mapping of a [`SharedBytes`]; unmapped when dropped.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and of a sealed file: no one can change
// the bytes, so sharing or moving it between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: std::ptr::null_mut(),
                len,
            });
        }
        // SAFETY: a fresh shared read-only mapping of `len` bytes of a file
        // sealed at that size; it aliases no Rust object.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr, len })
    }
}

impl Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes until drop; the file's
        // seals keep them from changing or going away.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly what `new` mapped, once.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// One frame taken out of a [`FrameBuffer`]; its body stays in the buffer
/// ([`FrameBuffer::body`]) until the buffer's next `next_frame` or `recv`.
#[derive(Debug)]
pub struct Frame {
    body: std::ops::Range<usize>,
    /// The frame's shared payload, checked.
    pub shared: Option<SharedBytes>,
    /// Any other fd that came with the frame (a socket, a stats page),
    /// only on a buffer that [accepts them](FrameBuffer::accept_fds): the
    /// message says what it must be.
    pub fd: Option<OwnedFd>,
}

/// Buffered frame reading from a Unix socket with the fds that arrive
/// beside the bytes.
///
/// [`recv`](Self::recv) reads once (blocking or not, as the socket is);
/// [`next_frame`](Self::next_frame) hands out each whole frame, and
/// [`body`](Self::body) its bytes. Frames
/// claim fds in order: a frame's fd is attached to its first byte, so it
/// has arrived by the time its header is read.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: VecDeque<OwnedFd>,
    max: u32,
    /// A protocol break seen while reading, reported by `next_frame`.
    broken: Option<String>,
    /// See [`drained`](Self::drained).
    last_read_drained: bool,
    /// See [`accept_fds`](Self::accept_fds).
    accept_fds: bool,
}

/// Bytes a buffer holds at most between frames: it starts at
/// [`FIRST_LEN`] and doubles while reads fill it (so that an idle channel,
/// of which a supervisor has thousands, holds little), grows for a larger
/// frame, and shrinks back to this once that frame is handled.
const BUFFER_LEN: usize = 64 * 1024;

/// Bytes a buffer starts with, at its first read.
const FIRST_LEN: usize = 4 * 1024;

impl FrameBuffer {
    /// An empty buffer for frames of at most `max` body bytes.
    pub fn new(max: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            fds: VecDeque::new(),
            max,
            broken: None,
            last_read_drained: false,
            accept_fds: false,
        }
    }

    /// Hands out an fd that comes with a frame and is not a sealed memfd
    /// as [`Frame::fd`] instead of refusing it: for channels from a peer
    /// that passes sockets and pages (the supervisor, to a worker or a
    /// host app), whose messages say what the fd must be.
    pub fn accept_fds(&mut self) {
        self.accept_fds = true;
    }

    /// Adopts a new frame limit (the one the peer announced).
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Whether bytes of an unfinished frame are buffered (so an end of
    /// stream now cuts a frame).
    pub fn is_mid_frame(&self) -> bool {
        self.start < self.end
    }

    /// The bytes buffered of the frame being read, and what it needs.
    pub fn truncated(&self) -> WireError {
        let got = self.end - self.start;
        let want = match self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() {
            Some(header) => HEADER_LEN + (u32::from_le_bytes(*header) & !SHARED_FLAG) as usize,
            None => HEADER_LEN,
        };
        WireError::Truncated { got, want }
    }

    /// The body of `frame`, the last frame taken.
    pub fn body(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.body.clone()]
    }

    /// The next whole frame, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if let Some(problem) = &self.broken {
            return Err(WireError::Attachment(problem.clone()));
        }
        let Some(header) = self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = FrameHeader::parse(*header, self.max)?;
        let frame_len = HEADER_LEN + header.body_len;
        if self.end - self.start < frame_len {
            self.make_room(frame_len);
            return Ok(None);
        }
        let (shared, fd) = if header.shared {
            let fd = self.fds.pop_front().ok_or_else(|| {
                WireError::Attachment("a frame announced a shared payload without its fd".into())
            })?;
            if self.accept_fds && !is_sealed_payload(&fd) {
                (None, Some(fd))
            } else {
                (Some(SharedBytes::adopt(fd, self.max)?), None)
            }
        } else {
            (None, None)
        };
        let body = self.start + HEADER_LEN..self.start + frame_len;
        self.start += frame_len;
        Ok(Some(Frame { body, shared, fd }))
    }

    /// Lets the buffer go when it holds no unread bytes (the next
    /// [`recv`](Self::recv) makes a new one): for a reader about to wait a
    /// long time.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end && self.fds.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the last [`recv`](Self::recv) read every byte the socket
    /// had: it read some, did not fill the buffer and took no fds (a read
    /// stops early after bytes that carry fds).
    pub fn drained(&self) -> bool {
        self.last_read_drained
    }

    /// Reads from a blocking `socket` until a whole frame is buffered, and
    /// takes it; `None` at an end of stream between frames.
    pub fn read_frame(&mut self, socket: BorrowedFd<'_>) -> Result<Option<Frame>, WireError> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(Some(frame));
            }
            match self.recv(socket)? {
                0 if self.is_mid_frame() => return Err(self.truncated()),
                0 => return Ok(None),
                _ => {}
            }
        }
    }

    /// Reads once from `socket` into the buffer; `Ok(0)` at end of stream.
    /// Fds that come along are queued for the frames that claim them.
    pub fn recv(&mut self, socket: BorrowedFd<'_>) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > BUFFER_LEN {
                self.buf = vec![0; BUFFER_LEN]; // a large frame's room, no longer needed
            }
        }
        if self.end == self.buf.len() {
            let unread = self.end - self.start;
            let len = self.buf.len();
            let grown = if unread < len {
                len // moving the unread bytes to the front makes room
            } else {
                (len * 2).clamp(FIRST_LEN, BUFFER_LEN.max(unread + 1))
            };
            self.make_room(grown);
        }
        let room = self.buf.len() - self.end;
        let (read, fds, truncated) = recv_with_fds(socket, &mut self.buf[self.end..])?;
        self.last_read_drained = read > 0 && read < room && fds.is_empty() && !truncated;
        self.end += read;
        if truncated {
            self.broken = Some(format!("more than {MAX_FDS_PER_READ} fds sent at once"));
        }
        self.fds.extend(fds);
        if self.fds.len() > MAX_QUEUED_FDS {
            self.broken = Some(format!("{} fds sent that no frame claims", self.fds.len()));
            self.fds.clear();
        }
        Ok(read)
    }

    /// Moves the unread bytes to the front and grows the buffer to hold at
    /// least `need` of them.
    fn make_room(&mut self, need: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
    }
}

/// One `recvmsg`: the bytes read, the fds received (at most 4), and
/// whether the kernel had to drop fds that did not fit.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(FD_LEN * MAX_FDS_PER_READ) } as usize;
    debug_assert!(space <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all zeroes is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = space as _;
    let read = loop {
        // SAFETY: the header points at `iov` (into `buf`) and `control`,
        // both live and of the lengths given.
        let read =
            unsafe { libc::recvmsg(socket.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC) };
        if read >= 0 {
            break read.unsigned_abs();
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within the control buffer the kernel
    // filled (msg_controllen); each SCM_RIGHTS payload is an array of fds
    // that this process now owns.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count =
                    ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / FD_LEN as usize;
                for index in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(index).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    Ok((read, fds, header.msg_flags & libc::MSG_CTRUNC != 0))
}

/// One `sendmsg` of `bytes` with `fd` attached to the first of them;
/// returns how many bytes went (all, or fewer on a full socket buffer:
/// send the rest without the fd).
pub fn send_with_fd(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<usize> {
    send_with_fds(socket, bytes, fd.as_slice())
}

/// One `sendmsg` of `bytes` with `fds` (at most 4) attached to the first
/// of them; returns how many bytes went.
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_READ as usize {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; all zeroes is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    if !fds.is_empty() {
        #[allow(clippy::cast_possible_truncation, reason = "at most 4 fds")]
        let len = FD_LEN * fds.len() as u32;
        header.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes; the control
        // buffer holds a cmsg of up to 4 fds, which is written within it.
        unsafe {
            header.msg_controllen = libc::CMSG_SPACE(len) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (index, fd) in fds.iter().enumerate() {
                data.add(index).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: the header points at `bytes` (only read) and `control`,
        // both live; MSG_NOSIGNAL turns a closed peer into EPIPE.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &header, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(sent.unsigned_abs());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Encodes `message` as one frame (in `buf`, scratch space) and writes it
/// to a blocking socket, with `shared` as its payload when given.
pub fn write_message<T: serde::Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    shared: Option<&SharedBytes>,
    buf: &mut Vec<u8>,
    max: u32,
) -> Result<(), WireError> {
    buf.clear();
    encode_shared_frame(message, shared, buf, max)?;
    send_buffered(socket, buf, shared.map(AsFd::as_fd))
}

/// Encodes `message` as one frame (in `buf`, scratch space) and writes it
/// to a blocking socket with `fd` attached (an arena's segment, a socket).
pub fn write_message_fd<T: serde::Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    fd: Option<BorrowedFd<'_>>,
    buf: &mut Vec<u8>,
    max: u32,
) -> Result<(), WireError> {
    buf.clear();
    encode_frame(message, buf, max)?;
    if fd.is_some() {
        mark_shared(buf);
    }
    send_buffered(socket, buf, fd)
}

/// Sends the frames in `buf`, then lets a large buffer go.
fn send_buffered(
    socket: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), WireError> {
    send_frame(socket, buf, fd)?;
    if buf.capacity() > BUFFER_LEN * 16 {
        *buf = Vec::new(); // do not keep a large frame's buffer around
    }
    Ok(())
}

/// Appends one frame holding `message` to `out`, marked as carrying
/// `shared` as its payload when given. A shared payload over `max` is
/// refused, as the receiver would refuse it; on error `out` is as it was.
pub fn encode_shared_frame<T: serde::Serialize>(
    message: &T,
    shared: Option<&SharedBytes>,
    out: &mut Vec<u8>,
    max: u32,
) -> Result<(), WireError> {
    if let Some(shared) = shared.filter(|shared| shared.len() as u64 > u64::from(max)) {
        return Err(WireError::TooLarge {
            len: shared.len() as u64,
            max,
        });
    }
    let start = out.len();
    encode_frame(message, out, max)?;
    if shared.is_some() {
        mark_shared(&mut out[start..]);
    }
    Ok(())
}

/// Moves `bytes` into a sealed memfd when they are [`SHARED_MIN`] or more:
/// the bytes to put in the frame (then empty) and the shared payload. Out
/// of fds or memory, the bytes stay inline, where they still fit.
pub fn share_large(bytes: Vec<u8>) -> (Vec<u8>, Option<SharedBytes>) {
    if bytes.len() < SHARED_MIN {
        return (bytes, None);
    }
    match SharedBytes::copy_from(&bytes) {
        Ok(shared) => (Vec::new(), Some(shared)),
        Err(_) => (bytes, None),
    }
}

/// Writes a whole frame to a blocking socket, `fd` attached to its first
/// byte.
pub fn send_frame(
    socket: BorrowedFd<'_>,
    frame: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut sent = send_with_fd(socket, frame, fd)?;
    while sent < frame.len() {
        match send_with_fd(socket, &frame[sent..], None)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => sent += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn frame(body: &[u8], shared: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&serde_bytes::Bytes::new(body), &mut out, 1 << 20).unwrap();
        if shared {
            mark_shared(&mut out);
        }
        out
    }

    fn next_body(buffer: &mut FrameBuffer, socket: &UnixStream) -> (Vec<u8>, Option<SharedBytes>) {
        loop {
            if let Some(frame) = buffer.next_frame().unwrap() {
                return (buffer.body(&frame).to_vec(), frame.shared);
            }
            assert!(buffer.recv(socket.as_fd()).unwrap() > 0, "stream ended");
        }
    }

    #[test]
    fn shared_bytes_are_sealed_and_mapped() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let shared = SharedBytes::copy_from(&bytes).unwrap();
        assert_eq!(shared.len(), bytes.len());
        assert_eq!(&shared.map().unwrap()[..], &bytes[..]);
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", shared.as_fd().as_raw_fd()));
        if let Ok(mut file) = write {
            assert!(
                io::Write::write_all(&mut file, b"x").is_err(),
                "sealed against writing"
            );
        }
        let empty = SharedBytes::copy_from(&[]).unwrap();
        assert!(empty.map().unwrap().is_empty());
    }

    #[test]
    fn frames_carry_their_fds_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let first = SharedBytes::copy_from(b"first payload").unwrap();
        let second = SharedBytes::copy_from(b"second").unwrap();
        send_frame(a.as_fd(), &frame(b"one", true), Some(first.as_fd())).unwrap();
        send_frame(a.as_fd(), &frame(b"two", false), None).unwrap();
        send_frame(a.as_fd(), &frame(b"three", true), Some(second.as_fd())).unwrap();
        let mut buffer = FrameBuffer::new(1 << 20);
        let (body, shared) = next_body(&mut buffer, &b);
        assert_eq!(&body[1..], b"one");
        assert_eq!(&shared.unwrap().to_vec().unwrap(), b"first payload");
        let (body, shared) = next_body(&mut buffer, &b);
        assert_eq!(&body[1..], b"two");
        assert!(shared.is_none());
        let (body, shared) = next_body(&mut buffer, &b);
        assert_eq!(&body[1..], b"three");
        assert_eq!(&shared.unwrap().to_vec().unwrap(), b"second");
    }

    #[test]
    fn a_frame_larger_than_the_buffer_is_read_whole() {
        let (a, b) = UnixStream::pair().unwrap();
        let body = vec![7u8; 3 * BUFFER_LEN + 5];
        let sent = frame(&body, false);
        let writer = std::thread::spawn(move || send_frame(a.as_fd(), &sent, None).unwrap());
        let mut buffer = FrameBuffer::new(1 << 20);
        let (got, _) = next_body(&mut buffer, &b);
        writer.join().unwrap();
        assert!(got.ends_with(&body), "the body after its length prefix");
        assert_eq!(got.len(), body.len() + 5);
    }

    #[test]
    fn an_unsealed_or_foreign_fd_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile_fd();
        send_frame(a.as_fd(), &frame(b"x", true), Some(file.as_fd())).unwrap();
        let mut buffer = FrameBuffer::new(1 << 20);
        buffer.recv(b.as_fd()).unwrap();
        let error = buffer.next_frame().unwrap_err();
        assert!(matches!(error, WireError::Attachment(_)), "{error}");
    }

    #[test]
    fn a_shared_frame_without_its_fd_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        send_frame(a.as_fd(), &frame(b"x", true), None).unwrap();
        let mut buffer = FrameBuffer::new(1 << 20);
        buffer.recv(b.as_fd()).unwrap();
        assert!(matches!(buffer.next_frame(), Err(WireError::Attachment(_))));
    }

    #[test]
    fn a_shared_payload_over_the_limit_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let big = SharedBytes::copy_from(&[1; 4096]).unwrap();
        send_frame(a.as_fd(), &frame(b"x", true), Some(big.as_fd())).unwrap();
        let mut buffer = FrameBuffer::new(1024);
        buffer.recv(b.as_fd()).unwrap();
        assert!(matches!(
            buffer.next_frame(),
            Err(WireError::TooLarge {
                len: 4096,
                max: 1024
            })
        ));
    }

    #[test]
    fn fds_no_frame_claims_break_the_stream() {
        let (a, b) = UnixStream::pair().unwrap();
        let payload = SharedBytes::copy_from(b"p").unwrap();
        let mut buffer = FrameBuffer::new(1 << 20);
        for _ in 0..=MAX_QUEUED_FDS {
            send_frame(a.as_fd(), &frame(b"x", false), Some(payload.as_fd())).unwrap();
            buffer.recv(b.as_fd()).unwrap();
        }
        let mut broke = false;
        for _ in 0..=MAX_QUEUED_FDS {
            match buffer.next_frame() {
                Ok(_) => {}
                Err(WireError::Attachment(_)) => {
                    broke = true;
                    break;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(broke);
    }

    fn tempfile_fd() -> OwnedFd {
        let path = std::env::temp_dir().join(format!("corral-shared-test-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file.into()
    }
}
