//! The host app's side of a direct channel's arenas (see `wire::Arena`):
//! its own, where large inputs are written in place, and the worker's,
//! mapped read-only, where large replies are read in place
//! ([`ReplyView`]).

use crate::client::lock;
use corral_plugin_api::wire::{Arena, PeerArena, SHARED_MIN, Slot, View, WireError, arena_cap};
use std::ops::Deref;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// Reply slots the host app is done with, released with the next call.
type Released = Arc<Mutex<Vec<Slot>>>;

/// A call's reply. A large reply on a direct channel is read in place in
/// the worker's shared memory, without a copy, until the view is dropped
/// (then its memory is reused); any other reply is owned bytes.
#[derive(Debug)]
pub struct ReplyView {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Owned(Vec<u8>),
    Slot {
        view: View,
        slot: Slot,
        released: Released,
    },
}

impl ReplyView {
    /// The reply's bytes as a vector (copied once when in place).
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.inner {
            Inner::Owned(bytes) => std::mem::take(bytes),
            Inner::Slot { view, .. } => view.to_vec(), // the drop releases it
        }
    }

    /// Whether the reply is read in the worker's shared memory.
    pub fn is_in_place(&self) -> bool {
        matches!(self.inner, Inner::Slot { .. })
    }
}

impl From<Vec<u8>> for ReplyView {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            inner: Inner::Owned(bytes),
        }
    }
}

impl Deref for ReplyView {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Owned(bytes) => bytes,
            Inner::Slot { view, .. } => view,
        }
    }
}

impl Drop for ReplyView {
    fn drop(&mut self) {
        if let Inner::Slot { slot, released, .. } = &self.inner {
            lock(released).push(*slot);
        }
    }
}

/// What writes a call's input in place.
pub(crate) type Fill<'a> = Box<dyn FnOnce(&mut [u8]) + Send + 'a>;

/// A call's input: bytes to copy, or a length and a function that writes
/// them in place.
pub(crate) enum Payload<'a> {
    Bytes(&'a [u8]),
    Fill(usize, Fill<'a>),
    Owned(Vec<u8>),
}

impl Payload<'_> {
    /// The input as bytes, for a frame (filled now if it was not); the
    /// payload is left empty.
    pub(crate) fn take_vec(&mut self) -> Vec<u8> {
        match std::mem::replace(self, Payload::Owned(Vec::new())) {
            Payload::Bytes(bytes) => bytes.to_vec(),
            Payload::Fill(len, fill) => filled(len, fill),
            Payload::Owned(bytes) => bytes,
        }
    }

    /// The input's bytes, filled now if they were not.
    pub(crate) fn bytes(&mut self) -> &[u8] {
        if let Payload::Fill(..) = self {
            let bytes = self.take_vec();
            *self = Payload::Owned(bytes);
        }
        match self {
            Payload::Bytes(bytes) => bytes,
            Payload::Owned(bytes) => bytes,
            Payload::Fill(..) => &[],
        }
    }
}

fn filled(len: usize, fill: Fill<'_>) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fill(&mut bytes);
    bytes
}

/// A direct channel's arenas, from the host app's side.
pub(crate) struct ClientArenas {
    mine: Arena,
    theirs: PeerArena,
    released: Released,
}

impl ClientArenas {
    /// Arenas for a channel whose frames take at most `max_frame` bytes.
    pub(crate) fn new(max_frame: u32) -> Self {
        let cap = arena_cap(max_frame);
        Self {
            mine: Arena::new(cap),
            theirs: PeerArena::new(cap),
            released: Released::default(),
        }
    }

    /// Writes a large input into a slot of this end's arena, in place for
    /// a `Fill`; `None` (the input stays as it is) when it is small or the
    /// arena is full.
    pub(crate) fn place(&mut self, payload: &mut Payload<'_>) -> Option<Slot> {
        let len = match payload {
            Payload::Bytes(bytes) => bytes.len(),
            Payload::Fill(len, _) => *len,
            Payload::Owned(bytes) => bytes.len(),
        };
        if len < SHARED_MIN {
            return None;
        }
        let slot = self.mine.alloc(len)?;
        let to = self.mine.bytes_mut(slot)?;
        match payload {
            Payload::Bytes(bytes) => to.copy_from_slice(bytes),
            Payload::Owned(bytes) => to.copy_from_slice(bytes),
            Payload::Fill(..) => {
                // Written where it goes; the payload keeps nothing.
                if let Payload::Fill(_, fill) =
                    std::mem::replace(payload, Payload::Owned(Vec::new()))
                {
                    fill(to);
                }
            }
        }
        Some(slot)
    }

    /// The fd to send with the frame that names `slot`, if the worker
    /// does not have its segment yet.
    pub(crate) fn announce(&mut self, slot: Slot) -> Option<BorrowedFd<'_>> {
        self.mine.announce(slot)
    }

    /// An input slot's bytes, copied (to send the call again, relayed).
    pub(crate) fn input(&self, slot: Slot) -> Vec<u8> {
        self.mine.bytes(slot).unwrap_or_default().to_vec()
    }

    /// The call whose input was in `slot` is over.
    pub(crate) fn free_input(&mut self, slot: Slot) {
        self.mine.free(slot);
    }

    /// Reply slots to release with the next call.
    pub(crate) fn take_released(&self) -> Vec<Slot> {
        std::mem::take(&mut *lock(&self.released))
    }

    /// Maps a segment of the worker's arena that came with a frame.
    pub(crate) fn adopt(&mut self, fd: OwnedFd) -> Result<(), WireError> {
        self.theirs.adopt(fd)
    }

    /// The reply in `slot` of the worker's arena; a slot outside it is the
    /// worker breaking the protocol.
    pub(crate) fn reply(&self, slot: Slot) -> Result<ReplyView, WireError> {
        let view = self.theirs.view(slot)?;
        Ok(ReplyView {
            inner: Inner::Slot {
                view,
                slot,
                released: self.released.clone(),
            },
        })
    }
}
