//! Direct channels: sockets to host apps that the supervisor attached
//! (`ToWorker::Attach`), on which the worker serves calls without the
//! supervisor in between. A channel takes only `Call` frames; anything
//! else, a bad frame or a peer that stops reading its replies ends that
//! channel alone, never the worker.
//!
//! Each channel has two arenas (see `wire::Arena`): the host app's,
//! mapped read-only, where large inputs arrive (`ToWorker::CallIn`), and
//! the worker's own, where large replies go (`FromWorker::ReplyIn`) until
//! the host app releases them (`ToWorker::Release`).

use corral_plugin_api::wire::{
    self, Arena, FrameBuffer, FromWorker, PeerArena, SharedBytes, Slot, ToWorker, View, WireError,
    write_message, write_message_fd,
};
use corral_plugin_api::{ErrorKind, RemoteError};
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
    /// Where large replies go.
    pub(crate) arena: Arena,
    /// Where large inputs come from.
    peer: PeerArena,
}

/// A call read from a direct channel, and where its input is.
pub(crate) type DirectCall = (wire::Call, Input);

/// Where a call's input is.
pub(crate) enum Input {
    /// In the frame (`Call::input`).
    Inline,
    /// In a sealed memfd of its own.
    Shared(SharedBytes),
    /// In the host app's arena.
    Slot(View),
    /// Nowhere the worker can read: the call fails with this.
    Bad(RemoteError),
}

impl Direct {
    /// Takes the socket the supervisor attached.
    pub(crate) fn adopt(fd: OwnedFd, max_frame: u32) -> io::Result<Self> {
        let socket = UnixStream::from(fd);
        socket.local_addr()?; // a Unix socket, or this fails
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        let mut frames = FrameBuffer::new(max_frame);
        frames.accept_fds(); // arena segments
        let cap = wire::arena_cap(max_frame);
        Ok(Self {
            socket,
            frames,
            write_buf: Vec::new(),
            max_frame,
            arena: Arena::new(cap),
            peer: PeerArena::new(cap),
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
    /// Releases of reply slots on the way are taken.
    pub(crate) fn next_call(&mut self) -> Result<Option<DirectCall>, WireError> {
        loop {
            let Some(mut frame) = self.frames.next_frame()? else {
                return Ok(None);
            };
            if let Some(fd) = frame.fd.take() {
                self.peer.adopt(fd)?;
            }
            let message = wire::decode_body::<ToWorker>(self.frames.body(&frame))?;
            return Ok(Some(match (message, frame.shared) {
                (ToWorker::Call(call), None) => (call, Input::Inline),
                (ToWorker::Call(call), Some(shared)) => (call, Input::Shared(shared)),
                (ToWorker::CallIn { call, slot }, None) => match self.peer.view(slot) {
                    Ok(view) => (call, Input::Slot(view)),
                    Err(error) => {
                        let message = format!("the call's input: {error}");
                        (
                            call,
                            Input::Bad(RemoteError::new(ErrorKind::BadRequest, message)),
                        )
                    }
                },
                (ToWorker::Release { slots }, None) => {
                    for slot in slots {
                        self.arena.free(slot);
                    }
                    continue;
                }
                (ToWorker::CallIn { .. } | ToWorker::Release { .. }, Some(_)) => {
                    return Err(WireError::Attachment(
                        "a memfd payload beside a slot or a release".into(),
                    ));
                }
                (other, _) => {
                    return Err(WireError::Decode(format!(
                        "a direct channel takes calls only, not {other:?}"
                    )));
                }
            }));
        }
    }

    /// Sends the reply to call `id`, which is in `slot` of the arena; the
    /// slot's segment goes with it when the host app has not seen it.
    pub(crate) fn send_placed(&mut self, id: u64, slot: Slot) -> Result<(), WireError> {
        write_message_fd(
            self.socket.as_fd(),
            &FromWorker::ReplyIn { id, slot },
            self.arena.announce(slot),
            &mut self.write_buf,
            self.max_frame,
        )
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
