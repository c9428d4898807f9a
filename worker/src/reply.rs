//! [`ReplyBuf`]: where a runtime puts a call's reply. A large reply to a
//! call from a direct channel goes in a slot of that channel's arena,
//! written there by the plugin itself (ABI v2) or copied there once (v1,
//! wasm); any other reply is a vector.

use corral_plugin_api::wire::{Arena, SHARED_MIN, Slot};

/// A call's reply being written.
pub(crate) struct ReplyBuf<'a> {
    arena: Option<&'a mut Arena>,
    slot: Option<Slot>,
    bytes: Vec<u8>,
    /// The largest reply a frame or slot takes.
    max: usize,
}

/// A reply written.
pub(crate) enum Written {
    /// In the frame (or a sealed memfd of its own, when large).
    Bytes(Vec<u8>),
    /// In the channel's arena.
    Slot(Slot),
}

impl<'a> ReplyBuf<'a> {
    /// A reply of at most `max` bytes, large ones in `arena` when given.
    pub(crate) fn new(arena: Option<&'a mut Arena>, max: u32) -> Self {
        Self {
            arena,
            slot: None,
            bytes: Vec::new(),
            max: max as usize,
        }
    }

    /// `len` bytes that become the reply, replacing what was written;
    /// `None` over the frame limit.
    pub(crate) fn reserve(&mut self, len: usize) -> Option<&mut [u8]> {
        self.release();
        if len > self.max {
            return None;
        }
        if len >= SHARED_MIN
            && let Some(arena) = self.arena.as_deref_mut()
            && let Some(slot) = arena.alloc(len)
        {
            self.slot = Some(slot);
            return arena.bytes_mut(slot);
        }
        self.bytes.resize(len, 0);
        Some(&mut self.bytes)
    }

    /// Makes `bytes` the reply (one copy); `None` over the frame limit.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Option<()> {
        if bytes.len() > self.max {
            return None;
        }
        if bytes.len() < SHARED_MIN || self.arena.is_none() {
            self.release();
            self.bytes.extend_from_slice(bytes);
            return Some(());
        }
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Some(())
    }

    /// What was written, as text (an error message), leaving nothing.
    pub(crate) fn take_message(&mut self) -> String {
        let message = match (self.slot, self.arena.as_deref()) {
            (Some(slot), Some(arena)) => {
                String::from_utf8_lossy(arena.bytes(slot).unwrap_or_default()).into_owned()
            }
            _ => String::from_utf8_lossy(&self.bytes).into_owned(),
        };
        self.release();
        message
    }

    /// The reply written.
    pub(crate) fn finish(mut self) -> Written {
        match self.slot.take() {
            Some(slot) => Written::Slot(slot),
            None => Written::Bytes(std::mem::take(&mut self.bytes)),
        }
    }

    /// The reply written, as a vector (copied out of a slot).
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        if let (Some(slot), Some(arena)) = (self.slot, self.arena.as_deref()) {
            return arena.bytes(slot).unwrap_or_default().to_vec(); // the drop frees the slot
        }
        std::mem::take(&mut self.bytes)
    }

    fn release(&mut self) {
        if let (Some(slot), Some(arena)) = (self.slot.take(), self.arena.as_deref_mut()) {
            arena.free(slot);
        }
        self.bytes.clear();
    }
}

impl Drop for ReplyBuf<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_replies_go_in_the_arena_small_ones_in_a_vector() {
        let mut arena = Arena::new(64 << 20);
        let mut reply = ReplyBuf::new(Some(&mut arena), 16 << 20);
        reply.write(&[1; 100]).unwrap();
        assert!(matches!(reply.finish(), Written::Bytes(bytes) if bytes == [1; 100]));
        let mut reply = ReplyBuf::new(Some(&mut arena), 16 << 20);
        reply.reserve(SHARED_MIN).unwrap().fill(2);
        let Written::Slot(slot) = reply.finish() else {
            panic!("not in the arena");
        };
        assert!(arena.bytes(slot).unwrap().iter().all(|&b| b == 2));
    }

    #[test]
    fn a_replaced_or_dropped_reply_frees_its_slot() {
        let mut arena = Arena::new(4 << 20);
        let mut reply = ReplyBuf::new(Some(&mut arena), 16 << 20);
        for _ in 0..10 {
            reply
                .reserve(3 << 20)
                .expect("the one slot, again and again");
        }
        assert_eq!(reply.take_message().len(), 3 << 20);
        reply.reserve(3 << 20).unwrap();
        drop(reply);
        assert!(arena.alloc(3 << 20).is_some(), "freed by drop");
    }

    #[test]
    fn over_the_limit_is_refused() {
        let mut reply = ReplyBuf::new(None, 10);
        assert!(reply.reserve(11).is_none());
        assert!(reply.write(&[0; 11]).is_none());
        assert!(reply.write(&[0; 10]).is_some());
    }
}
