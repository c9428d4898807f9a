//! Arenas: memory mapped once on both ends of a direct channel and reused
//! for every large payload on it, instead of a fresh memfd per payload.
//!
//! Each end owns one [`Arena`] for what it sends (the host app for its
//! calls' inputs, the worker for its replies): segments of memfd created
//! and pre-faulted once by their owner, mapped read-write by it, then
//! sealed against shrinking, growing and any new writable mapping
//! (`F_SEAL_FUTURE_WRITE`). The peer keeps a [`PeerArena`]: the same
//! segments mapped read-only, which is all the seals let it do. So no end
//! can write the other's payloads, and no end can pull a mapped page from
//! under the other (a shrink would be a `SIGBUS`).
//!
//! A payload is a [`Slot`] (segment, offset, length) of the sender's
//! arena, named by the frame that carries the call or the reply; a new
//! segment's fd travels with the first frame that names it. Only the owner
//! allocates and frees its slots. A slot is lent to the peer from that
//! frame on: a call's input until its reply (or the end of the call), a
//! reply until the host app releases it (`ToWorker::Release`). A slot a
//! peer names that is not inside a segment it was given is a protocol
//! break; a slot released that was not lent is ignored. A dead peer frees
//! everything: the arenas go with the channel.
//!
//! What the seals cannot stop is an owner writing its own slot while the
//! peer reads it: a hostile worker can change its reply under the host
//! app's view (it could as well have sent other bytes), a host app its
//! input under the plugin. The bytes are plain `u8`s, so that tears data
//! and never memory safety; a reader that checks and then uses must copy.
#![allow(unsafe_code, reason = "memfd, mmap and seals have no safe std API")]

use super::codec::WireError;
use super::worker::Slot;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// The smallest segment an arena makes.
pub const SEGMENT_MIN: usize = 2 << 20;

/// Segments an arena holds at most; a payload that finds no room then
/// travels as before (a sealed memfd of its own).
pub const MAX_SEGMENTS: usize = 8;

/// The bytes one arena of a direct channel may hold, both ends alike: four
/// frame limits, room for a few payloads of the largest size in flight.
pub fn arena_cap(max_frame: u32) -> u64 {
    4 * u64::from(max_frame)
}

/// Slots start at multiples of this (a page: a video frame in a slot is
/// page-aligned).
const ALIGN: usize = 4096;

/// The seals a segment carries once its owner has mapped it.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE;

/// One segment its owner writes.
#[derive(Debug)]
struct Segment {
    fd: OwnedFd,
    map: RawMap,
    /// Lent slots as `(offset, aligned length)`, sorted by offset.
    used: Vec<(usize, usize)>,
}

/// A writer's segments and their slots.
#[derive(Debug)]
pub struct Arena {
    segments: Vec<Segment>,
    /// Bytes all segments may take together.
    cap: u64,
    /// Segments the peer has been sent.
    announced: usize,
}

impl Arena {
    /// An empty arena whose segments take at most `cap` bytes together.
    pub fn new(cap: u64) -> Self {
        Self {
            segments: Vec::new(),
            cap,
            announced: 0,
        }
    }

    /// Lends a slot of `len` bytes, making a segment when none has room;
    /// `None` when the arena is full (or out of memory).
    pub fn alloc(&mut self, len: usize) -> Option<Slot> {
        let want = len.checked_next_multiple_of(ALIGN)?.max(ALIGN);
        for (index, segment) in self.segments.iter_mut().enumerate() {
            if let Some(offset) = segment.fit(want) {
                return slot(index, offset, len);
            }
        }
        let total: usize = self.segments.iter().map(|s| s.map.len).sum();
        let size = want
            .checked_next_power_of_two()?
            .max(total)
            .max(SEGMENT_MIN);
        if self.segments.len() >= MAX_SEGMENTS || (total + size) as u64 > self.cap {
            return None;
        }
        let mut segment = Segment::create(size).ok()?;
        let offset = segment.fit(want)?;
        self.segments.push(segment);
        slot(self.segments.len() - 1, offset, len)
    }

    /// Takes back a slot lent by [`alloc`](Self::alloc); false (and
    /// nothing changes) when it is not one.
    pub fn free(&mut self, slot: Slot) -> bool {
        let Some(segment) = self.segments.get_mut(slot.segment as usize) else {
            return false;
        };
        match segment.lent(slot) {
            Some(index) => {
                segment.used.remove(index);
                true
            }
            None => false,
        }
    }

    /// The segment's fd to send with the frame that names `slot`, when the
    /// peer does not have it yet; call it just before sending that frame.
    pub fn announce(&mut self, slot: Slot) -> Option<BorrowedFd<'_>> {
        let index = slot.segment as usize;
        if index < self.announced {
            return None;
        }
        self.announced = index + 1;
        self.segments.get(index).map(|segment| segment.fd.as_fd())
    }

    /// The bytes of a lent slot, to fill; `None` when `slot` is not one.
    pub fn bytes_mut(&mut self, slot: Slot) -> Option<&mut [u8]> {
        let segment = self.segments.get_mut(slot.segment as usize)?;
        let (offset, len) = segment.range(slot)?;
        // SAFETY: `range` found the slot lent from inside the segment's
        // read-write mapping (`alloc` fitted it there), which lives as long
        // as `self`; `&mut self` keeps any other view of its bytes away
        // for the borrow.
        Some(unsafe { std::slice::from_raw_parts_mut(segment.map.ptr.add(offset), len) })
    }

    /// The bytes of a lent slot; `None` when `slot` is not one.
    pub fn bytes(&self, slot: Slot) -> Option<&[u8]> {
        let segment = self.segments.get(slot.segment as usize)?;
        let (offset, len) = segment.range(slot)?;
        // SAFETY: as in `bytes_mut`, shared.
        Some(unsafe { std::slice::from_raw_parts(segment.map.ptr.add(offset), len) })
    }

    /// Segments made so far.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}

fn slot(segment: usize, offset: usize, len: usize) -> Option<Slot> {
    Some(Slot {
        segment: u32::try_from(segment).ok()?,
        offset: offset as u64,
        len: len as u64,
    })
}

impl Segment {
    /// A memfd of `size` bytes, mapped read-write and pre-faulted, then
    /// sealed so that no one else can ever map it writable.
    fn create(size: usize) -> io::Result<Self> {
        let fd = super::shared::sealable_memfd(c"corral-arena")?;
        let len = libc::off_t::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: the fd is ours; ftruncate takes a length.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let map = RawMap::new(fd.as_fd(), size, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: F_ADD_SEALS takes an int of seal flags; the fd is ours.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            map,
            used: Vec::new(),
        })
    }

    /// Where `slot` is in `used`, when it is a slot lent from here.
    fn lent(&self, slot: Slot) -> Option<usize> {
        let (offset, len) = (
            usize::try_from(slot.offset).ok()?,
            usize::try_from(slot.len).ok()?,
        );
        let index = self.used.iter().position(|&(at, _)| at == offset)?;
        (len <= self.used[index].1).then_some(index)
    }

    /// The offset and length of `slot`, when it is lent from here.
    fn range(&self, slot: Slot) -> Option<(usize, usize)> {
        let index = self.lent(slot)?;
        let len = usize::try_from(slot.len).ok()?;
        Some((self.used[index].0, len))
    }

    /// Lends `want` bytes (aligned) at the first gap that holds them.
    fn fit(&mut self, want: usize) -> Option<usize> {
        let mut start = 0;
        let mut index = 0;
        for &(offset, len) in &self.used {
            if offset - start >= want {
                break;
            }
            start = offset + len;
            index += 1;
        }
        if start + want > self.map.len {
            return None;
        }
        self.used.insert(index, (start, want));
        Some(start)
    }
}

/// The peer's segments, mapped read-only.
#[derive(Debug)]
pub struct PeerArena {
    segments: Vec<Arc<RawMap>>,
    cap: u64,
}

impl PeerArena {
    /// No segments yet; together they may take at most `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self {
            segments: Vec::new(),
            cap,
        }
    }

    /// Maps the peer's next segment, sent as `fd`: a memfd sealed against
    /// shrinking, growing and writing, within the arena's limits.
    pub fn adopt(&mut self, fd: OwnedFd) -> Result<(), WireError> {
        let refuse = |why: &str| Err(WireError::Attachment(format!("arena segment: {why}")));
        // SAFETY: F_GET_SEALS takes no argument; a non-memfd fails.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        let unwritable = libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_WRITE;
        if seals < 0 || seals & needed != needed || seals & unwritable == 0 {
            return refuse("not a memfd sealed against shrinking, growing and writing");
        }
        if self.segments.len() >= MAX_SEGMENTS {
            return refuse(&format!("more than {MAX_SEGMENTS} segments"));
        }
        // SAFETY: `stat` is plain data that fstat fills in; the fd is open.
        let size = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::fstat(fd.as_raw_fd(), &mut stat) < 0 {
                return Err(io::Error::last_os_error().into());
            }
            u64::try_from(stat.st_size).unwrap_or(u64::MAX)
        };
        let total: u64 = self.segments.iter().map(|s| s.len as u64).sum();
        let fits = size > 0 && total.saturating_add(size) <= self.cap;
        let Some(len) = usize::try_from(size).ok().filter(|_| fits) else {
            return refuse(&format!(
                "{size} bytes, over the arena's {} bytes",
                self.cap
            ));
        };
        let map = RawMap::new(fd.as_fd(), len, libc::PROT_READ)?;
        self.segments.push(Arc::new(map));
        Ok(())
    }

    /// The bytes of `slot`; a slot outside the segments given is a
    /// protocol break.
    pub fn view(&self, slot: Slot) -> Result<View, WireError> {
        let segment = self.segments.get(slot.segment as usize).ok_or_else(|| {
            WireError::Attachment(format!("a slot in segment {}, never sent", slot.segment))
        })?;
        let offset = usize::try_from(slot.offset).ok();
        let len = usize::try_from(slot.len).ok();
        match (offset, len) {
            (Some(offset), Some(len))
                if offset
                    .checked_add(len)
                    .is_some_and(|end| end <= segment.len) =>
            {
                Ok(View {
                    map: segment.clone(),
                    offset,
                    len,
                })
            }
            _ => Err(WireError::Attachment(format!(
                "slot {}+{} outside its segment of {} bytes",
                slot.offset, slot.len, segment.len
            ))),
        }
    }
}

/// A payload in the peer's arena, read in place; the mapping stays while
/// any view of it does.
#[derive(Debug, Clone)]
pub struct View {
    map: Arc<RawMap>,
    offset: usize,
    len: usize,
}

impl Deref for View {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `view` checked that the range lies in the mapping, which
        // `self.map` keeps; the segment's seals keep its pages from going
        // away. Its owner may still write them (see the module's last
        // paragraph): they are plain bytes, so a torn read is all it gets.
        unsafe { std::slice::from_raw_parts(self.map.ptr.add(self.offset), self.len) }
    }
}

/// A shared mapping of a whole segment; unmapped when dropped.
#[derive(Debug)]
struct RawMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; who may write
// it is settled by `Arena` (`&mut`) and the seals (the peer cannot).
unsafe impl Send for RawMap {}
// SAFETY: as above.
unsafe impl Sync for RawMap {}

impl RawMap {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of `len` bytes of a file at least
        // that long (sealed against shrinking); it aliases no Rust object.
        // MAP_POPULATE faults every page in now, once, instead of on each
        // payload's first touch.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped, once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn peer_of(arena: &mut Arena, slot: Slot, peer: &mut PeerArena) {
        if let Some(fd) = arena.announce(slot) {
            peer.adopt(fd.try_clone_to_owned().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_slot_written_by_its_owner_is_read_by_the_peer() {
        let mut arena = Arena::new(64 << 20);
        let mut peer = PeerArena::new(64 << 20);
        let slot = arena.alloc(100_000).unwrap();
        arena.bytes_mut(slot).unwrap().fill(7);
        peer_of(&mut arena, slot, &mut peer);
        let view = peer.view(slot).unwrap();
        assert_eq!(view.len(), 100_000);
        assert!(view.iter().all(|&b| b == 7));
        assert!(arena.announce(slot).is_none(), "announced once");
    }

    #[test]
    fn freed_slots_are_reused_and_segments_are_not_remade() {
        let mut arena = Arena::new(64 << 20);
        for _ in 0..100 {
            let slot = arena.alloc(1 << 20).unwrap();
            assert_eq!((slot.segment, slot.offset), (0, 0));
            assert!(arena.free(slot));
        }
        assert_eq!(arena.segments(), 1);
        let a = arena.alloc(1 << 20).unwrap();
        let b = arena.alloc(1 << 20).unwrap();
        assert_ne!((a.segment, a.offset), (b.segment, b.offset));
        assert!(!arena.free(Slot { offset: 4096, ..a }), "not a lent slot");
        assert!(arena.free(a));
        assert!(!arena.free(a), "freed twice");
    }

    #[test]
    fn a_full_arena_lends_nothing() {
        let mut arena = Arena::new(4 << 20);
        let first = arena.alloc(3 << 20).unwrap();
        assert!(arena.alloc(3 << 20).is_none());
        arena.free(first);
        assert!(arena.alloc(3 << 20).is_some());
    }

    #[test]
    fn the_peer_cannot_map_a_segment_writable() {
        let mut arena = Arena::new(64 << 20);
        let slot = arena.alloc(10).unwrap();
        let fd = arena.announce(slot).unwrap();
        let writable = RawMap::new(fd, SEGMENT_MIN, libc::PROT_READ | libc::PROT_WRITE);
        assert!(writable.is_err(), "F_SEAL_FUTURE_WRITE refuses it");
        // SAFETY: ftruncate on our own memfd, to see the seal refuse it.
        let shrunk = unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
        assert!(shrunk < 0, "F_SEAL_SHRINK refuses it");
    }

    #[test]
    fn slots_outside_the_segments_are_refused() {
        let mut arena = Arena::new(64 << 20);
        let mut peer = PeerArena::new(64 << 20);
        let slot = arena.alloc(10).unwrap();
        peer_of(&mut arena, slot, &mut peer);
        let size = SEGMENT_MIN as u64;
        for bad in [
            Slot { segment: 1, ..slot },
            Slot {
                offset: size,
                len: 1,
                ..slot
            },
            Slot {
                offset: u64::MAX,
                len: 2,
                ..slot
            },
            Slot {
                offset: 0,
                len: size + 1,
                ..slot
            },
        ] {
            assert!(peer.view(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            peer.view(Slot {
                offset: 0,
                len: size,
                ..slot
            })
            .unwrap()
            .len(),
            SEGMENT_MIN
        );
    }

    #[test]
    fn unsealed_or_oversized_segments_are_refused() {
        // SAFETY: a plain memfd, to offer as a segment.
        let raw = unsafe { libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC) };
        // SAFETY: memfd_create returned a new fd.
        let plain = unsafe { OwnedFd::from_raw_fd(raw) };
        assert!(PeerArena::new(64 << 20).adopt(plain).is_err());
        let mut arena = Arena::new(64 << 20);
        let slot = arena.alloc(10).unwrap();
        let fd = arena.announce(slot).unwrap().try_clone_to_owned().unwrap();
        assert!(PeerArena::new(1 << 20).adopt(fd).is_err());
    }
}
