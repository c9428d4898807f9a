//! A worker's stats page: one shared memory mapping per worker in which
//! the worker counts the calls it serves on its direct channels (calls
//! that do not cross the supervisor) and says which call it is busy with
//! since when. The supervisor creates it ([`StatsPage::create`]), sends its
//! memfd with `Hello`, and reads it: for `ps`, `top` and Prometheus, and
//! to kill a worker busy with one call past the plugin's deadline.
//!
//! After the counters, when the plugin's calls are recorded, comes its
//! flight recorder: the last calls the worker began (method, when, from
//! where, the input up to a byte budget, and how each ended), in a ring
//! of slots the worker writes before and after each call. The supervisor
//! reads it when the worker has died, for the crash report.
//!
//! The counts are the worker's word. A hostile worker can write anything
//! here; all that can do is misreport its own calls (sums saturate, so
//! garbage cannot panic the supervisor; recorded lengths are checked
//! against the slot) or get itself killed. It cannot hide a stuck call
//! from its caller, whose own timeout still fails it.
#![allow(unsafe_code, reason = "memfd and mmap have no safe std API")]

use super::crash::{CallEnd, RecordedCall, Recording};
use super::latency::{BUCKETS, bucket};
use crate::error::ErrorKind;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{
    AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::Duration;

/// The page's layout: independent counters, written by the worker with
/// relaxed atomics and read by the supervisor the same way.
#[repr(C)]
struct Counters {
    /// `CLOCK_MONOTONIC` nanoseconds when the call being served began; 0
    /// when the worker is between calls.
    busy_since_ns: AtomicU64,
    /// Failed direct calls, indexed by `ErrorKind::code() - 1`.
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Latencies of finished direct calls in microseconds, in the buckets
    /// of [`super::latency`].
    latency: [AtomicU64; BUCKETS],
    /// The flight recorder's shape, set by the supervisor: slots, and
    /// bytes per slot (0, 0: no recorder).
    recorder: [AtomicU32; 2],
    /// Calls the worker has begun recording.
    recorded: AtomicU64,
    /// 1: the recorder keeps inputs.
    recorder_inputs: AtomicU32,
    /// A native plugin's code in the worker: load bias, start and end of
    /// its mapped segments (0s: none recorded).
    plugin_code: [AtomicU64; 3],
    /// Return addresses of the thread that crashed, innermost first,
    /// written by the worker's crash handler; `crash_frames_len` of them.
    crash_frames: [AtomicU64; CRASH_FRAMES],
    crash_frames_len: AtomicU32,
}

/// Most return addresses a crash handler keeps.
pub const CRASH_FRAMES: usize = 48;

/// The counters' part of the page, rounded up to whole pages.
const LEN: usize = size_of::<Counters>().next_multiple_of(4096);

/// One slot of the flight recorder: this header, then the method's bytes
/// and as much of the input as fits.
#[repr(C)]
struct SlotHeader {
    /// The call's number (1, 2, …); 0 while the slot is written.
    seq: AtomicU64,
    started_unix_ms: AtomicU64,
    /// [`IN_FLIGHT`], [`ANSWERED`], or the code of the error it failed with.
    state: AtomicU32,
    /// 0: from the supervisor; k + 1: from direct channel k.
    origin: AtomicU32,
    method_len: AtomicU32,
    /// The whole input's length.
    input_len: AtomicU32,
    /// Of it, the bytes kept.
    kept: AtomicU32,
    _pad: u32,
}

const IN_FLIGHT: u32 = u32::MAX;
const ANSWERED: u32 = 0;

impl Recording {
    /// Bytes per slot, header included; 0 when nothing is recorded.
    fn slot_len(self) -> usize {
        if self.calls == 0 {
            return 0;
        }
        let share = self.bytes as usize / self.calls as usize;
        (size_of::<SlotHeader>() + share).next_multiple_of(8)
    }

    /// The recorder's bytes.
    fn len(self) -> usize {
        self.slot_len() * self.calls as usize
    }
}

/// What the supervisor reads from a stats page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectCounts {
    /// Failed direct calls by `ErrorKind::code() - 1`.
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Finished direct calls per latency bucket.
    pub latency: [u64; BUCKETS],
    /// A call is being served.
    pub busy: bool,
}

/// A worker's stats page, mapped.
#[derive(Debug)]
pub struct StatsPage {
    ptr: *mut libc::c_void,
    /// The mapping's length: the counters and the recorder.
    len: usize,
    /// The recorder's shape, as this side knows it.
    recording: Recording,
}

// SAFETY: the mapping is only accessed through atomics, which are safe to
// share and move between threads.
unsafe impl Send for StatsPage {}
// SAFETY: as above.
unsafe impl Sync for StatsPage {}

impl StatsPage {
    /// A new, zeroed page and the memfd to send the worker: sealed against
    /// shrinking and growing, so that neither side's mapping can lose its
    /// pages (a `SIGBUS`) whatever the other does.
    ///
    /// `recording` shapes the flight recorder after the counters.
    pub fn create(recording: Recording) -> io::Result<(Self, OwnedFd)> {
        let fd = super::shared::sealable_memfd(c"corral-stats")?;
        let total = LEN + recording.len();
        let len = libc::off_t::try_from(total).map_err(io::Error::other)?;
        // SAFETY: plain calls on our own fd.
        unsafe {
            if libc::ftruncate(fd.as_raw_fd(), len) < 0 {
                return Err(io::Error::last_os_error());
            }
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            if libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let page = Self::map(fd.as_fd(), total, recording)?;
        let [slots, slot_len] = &page.counters().recorder;
        slots.store(recording.calls, Relaxed);
        slot_len.store(u32::try_from(recording.slot_len()).unwrap_or(0), Relaxed);
        page.counters()
            .recorder_inputs
            .store(u32::from(recording.inputs), Relaxed);
        Ok((page, fd))
    }

    /// Maps the page a supervisor sent (the worker's side): it must be a
    /// memfd of the page's size (with the recorder its counters
    /// describe), sealed against shrinking.
    pub fn adopt(fd: &OwnedFd) -> io::Result<Self> {
        // SAFETY: F_GET_SEALS takes no argument; a non-memfd fails.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::other(
                "the stats page is not a memfd sealed against shrinking",
            ));
        }
        // SAFETY: `stat` is plain data that fstat fills in; the fd is open.
        let size = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::fstat(fd.as_raw_fd(), &mut stat) < 0 {
                return Err(io::Error::last_os_error());
            }
            stat.st_size
        };
        let size = usize::try_from(size).unwrap_or(0);
        if size < LEN {
            return Err(io::Error::other(format!(
                "the stats page has {size} bytes, fewer than {LEN}"
            )));
        }
        let mut page = Self::map(fd.as_fd(), size, Recording::default())?;
        let [slots, slot_len] = &page.counters().recorder;
        let (slots, slot_len) = (slots.load(Relaxed), slot_len.load(Relaxed) as usize);
        let recording = Recording {
            calls: slots,
            bytes: u32::try_from(slot_len.saturating_sub(size_of::<SlotHeader>()) * slots as usize)
                .unwrap_or(0),
            inputs: page.counters().recorder_inputs.load(Relaxed) != 0,
        };
        if slots > 0 && (recording.slot_len() != slot_len || LEN + recording.len() != size) {
            return Err(io::Error::other(format!(
                "the stats page's recorder ({slots} slots of {slot_len} bytes) does not fit its {size} bytes"
            )));
        }
        page.recording = recording;
        Ok(page)
    }

    fn map(fd: BorrowedFd<'_>, len: usize, recording: Recording) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the file's `len` bytes, which
        // its seals keep; it aliases no Rust object and is only accessed
        // through atomics and the recorder's raw copies.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // The counters, read and written on every call, are faulted in
        // now; the recorder's pages only as its slots are used (a worker
        // with small calls touches one page a slot), and the supervisor's
        // mapping of them only when it reads a dead worker's calls.
        // SAFETY: advice on the first `LEN` bytes of the mapping just
        // made; a kernel without MADV_POPULATE_WRITE refuses it harmlessly.
        unsafe { libc::madvise(ptr, LEN, libc::MADV_POPULATE_WRITE) };
        Ok(Self {
            ptr,
            len,
            recording,
        })
    }

    fn counters(&self) -> &Counters {
        // SAFETY: `ptr` maps at least `size_of::<Counters>()` zero-filled
        // or counter-written bytes, page-aligned, until drop; `Counters` is
        // atomics only, for which every bit pattern is valid.
        unsafe { &*self.ptr.cast::<Counters>() }
    }

    /// A call begins (the worker's side).
    pub fn begin(&self) {
        self.counters()
            .busy_since_ns
            .store(monotonic_ns().max(1), Relaxed);
    }

    /// The call begun last ended after `latency`, failed with `error` when
    /// given (the worker's side). `direct`: it came on a direct channel,
    /// so it is counted here (the supervisor counts the others).
    pub fn end(&self, latency: Duration, error: Option<ErrorKind>, direct: bool) {
        let counters = self.counters();
        counters.busy_since_ns.store(0, Relaxed);
        if !direct {
            return;
        }
        // Whole microseconds, rounded up: a call is never 0 µs.
        let us = u64::try_from(latency.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
        counters.latency[bucket(us)].fetch_add(1, Relaxed);
        if let Some(kind) = error {
            let index = usize::try_from(kind.code() - 1).ok();
            if let Some(count) = index.and_then(|index| counters.errors.get(index)) {
                count.fetch_add(1, Relaxed);
            }
        }
    }

    /// How long the worker has been busy with its current call; `None`
    /// between calls.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.counters().busy_since_ns.load(Relaxed) {
            0 => None,
            since => Some(Duration::from_nanos(monotonic_ns().saturating_sub(since))),
        }
    }

    /// The counts now (the supervisor's side).
    pub fn read(&self) -> DirectCounts {
        let counters = self.counters();
        DirectCounts {
            errors: std::array::from_fn(|index| counters.errors[index].load(Relaxed)),
            latency: std::array::from_fn(|index| counters.latency[index].load(Relaxed)),
            busy: counters.busy_since_ns.load(Relaxed) != 0,
        }
    }
}

/// Where a worker's crash handler writes the crashing thread's return
/// addresses: the page's mapping, which stays put while the page lives.
#[derive(Debug, Clone, Copy)]
pub struct CrashArea(*mut libc::c_void);

// SAFETY: only atomics are accessed through it.
unsafe impl Send for CrashArea {}
// SAFETY: as above.
unsafe impl Sync for CrashArea {}

impl CrashArea {
    /// Writes `frames` (innermost first, at most [`CRASH_FRAMES`]) with
    /// atomic stores only: async-signal-safe. The page must still be
    /// mapped (the worker keeps it until it exits).
    pub fn write(self, frames: &[usize]) {
        // SAFETY: the pointer is a live page's mapping (see above), whose
        // counters are atomics, valid for every bit pattern.
        let counters = unsafe { &*self.0.cast::<Counters>() };
        let kept = frames.len().min(CRASH_FRAMES);
        for (slot, frame) in counters.crash_frames.iter().zip(&frames[..kept]) {
            slot.store(*frame as u64, Relaxed);
        }
        counters
            .crash_frames_len
            .store(u32::try_from(kept).unwrap_or(0), Release);
    }
}

/// A native plugin's crash: the crashing thread's return addresses, and
/// where the plugin's code lay (to tell its frames and their offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashFrames {
    /// Return addresses, innermost first.
    pub frames: Vec<u64>,
    /// The plugin library's load bias: an address in it minus this is
    /// the address in the file (what `addr2line` takes).
    pub bias: u64,
    /// Start and end of the plugin's mapped code and data.
    pub plugin: std::ops::Range<u64>,
}

/// A native plugin's crash (both sides).
impl StatsPage {
    /// Where the worker's crash handler writes.
    pub fn crash_area(&self) -> CrashArea {
        CrashArea(self.ptr)
    }

    /// Where the plugin's code lies (the worker's side, once loaded).
    pub fn set_plugin_code(&self, bias: u64, code: std::ops::Range<u64>) {
        let [b, start, end] = &self.counters().plugin_code;
        b.store(bias, Relaxed);
        start.store(code.start, Relaxed);
        end.store(code.end, Relaxed);
    }

    /// What the crash handler wrote, if it ran (the supervisor's side,
    /// once the worker has died).
    pub fn crash_frames(&self) -> Option<CrashFrames> {
        let counters = self.counters();
        let len = (counters.crash_frames_len.load(Acquire) as usize).min(CRASH_FRAMES);
        if len == 0 {
            return None;
        }
        let [bias, start, end] = &counters.plugin_code;
        Some(CrashFrames {
            frames: counters.crash_frames[..len]
                .iter()
                .map(|frame| frame.load(Relaxed))
                .collect(),
            bias: bias.load(Relaxed),
            plugin: start.load(Relaxed)..end.load(Relaxed),
        })
    }
}

/// The flight recorder (both sides).
impl StatsPage {
    /// Slot `index`'s header and data (`index` below the slot count).
    fn slot(&self, index: usize) -> (&SlotHeader, *mut u8, usize) {
        let slot_len = self.recording.slot_len();
        // SAFETY: slot `index` lies inside the mapping (`LEN` + slots ×
        // slot_len bytes, checked at create and adopt), 8-byte aligned;
        // the header is atomics only, valid for every bit pattern.
        unsafe {
            let start = self.ptr.cast::<u8>().add(LEN + index * slot_len);
            let header = &*start.cast::<SlotHeader>();
            let data = start.add(size_of::<SlotHeader>());
            (header, data, slot_len - size_of::<SlotHeader>())
        }
    }

    /// The worker begins call `method` with `input` from `direct_channel`
    /// (`None`: the supervisor): returns its number for
    /// [`record_end`](Self::record_end), 0 when nothing is recorded.
    pub fn record_begin(&self, method: &str, input: &[u8], direct_channel: Option<u32>) -> u64 {
        let slots = self.recording.calls as usize;
        if slots == 0 {
            return 0;
        }
        let seq = self.counters().recorded.fetch_add(1, Relaxed) + 1;
        let (header, data, room) = self.slot(usize::try_from(seq % slots as u64).unwrap_or(0));
        header.seq.store(0, Release);
        let method = &method.as_bytes()[..method.len().min(room)];
        let kept = if self.recording.inputs {
            input.len().min(room - method.len())
        } else {
            0
        };
        // SAFETY: `data` has `room` writable bytes, of which these take
        // `method.len() + kept`; the source slices do not overlap the map.
        unsafe {
            std::ptr::copy_nonoverlapping(method.as_ptr(), data, method.len());
            std::ptr::copy_nonoverlapping(input.as_ptr(), data.add(method.len()), kept);
        }
        let len32 = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        header.started_unix_ms.store(unix_ms(), Relaxed);
        header.state.store(IN_FLIGHT, Relaxed);
        header
            .origin
            .store(direct_channel.map_or(0, |k| k.saturating_add(1)), Relaxed);
        header.method_len.store(len32(method.len()), Relaxed);
        header.input_len.store(len32(input.len()), Relaxed);
        header.kept.store(len32(kept), Relaxed);
        header.seq.store(seq, Release);
        seq
    }

    /// The worker's call `seq` ended, failed with `error` when given.
    pub fn record_end(&self, seq: u64, error: Option<ErrorKind>) {
        let slots = self.recording.calls as usize;
        if seq == 0 || slots == 0 {
            return;
        }
        let (header, _, _) = self.slot(usize::try_from(seq % slots as u64).unwrap_or(0));
        if header.seq.load(Acquire) == seq {
            header.state.store(
                error.map_or(ANSWERED, |kind| kind.code().unsigned_abs()),
                Relaxed,
            );
        }
    }

    /// The calls recorded, oldest first (the supervisor's side, once the
    /// worker has died: nothing writes them any more). What does not hold
    /// together (a hostile or half-written slot) is left out.
    pub fn recorded(&self) -> Vec<RecordedCall> {
        let mut calls: Vec<RecordedCall> = (0..self.recording.calls as usize)
            .filter_map(|index| {
                let (header, data, room) = self.slot(index);
                let seq = header.seq.load(Acquire);
                let method_len = header.method_len.load(Relaxed) as usize;
                let kept = header.kept.load(Relaxed) as usize;
                if seq == 0 || method_len.checked_add(kept)? > room {
                    return None;
                }
                // SAFETY: `method_len + kept` bytes of the slot's `room`.
                let bytes = unsafe { std::slice::from_raw_parts(data, method_len + kept) };
                let ended = match header.state.load(Relaxed) {
                    IN_FLIGHT => CallEnd::InFlight,
                    ANSWERED => CallEnd::Answered,
                    code => CallEnd::Failed(ErrorKind::from_code(i32::try_from(code).ok()?)),
                };
                let origin = header.origin.load(Relaxed);
                Some(RecordedCall {
                    seq,
                    started_unix_ms: header.started_unix_ms.load(Relaxed),
                    ended,
                    direct_channel: origin.checked_sub(1),
                    method: String::from_utf8_lossy(&bytes[..method_len]).into_owned(),
                    input_len: header.input_len.load(Relaxed),
                    input: bytes[method_len..].to_vec(),
                })
            })
            .collect();
        calls.sort_by_key(|call| call.seq);
        calls
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Drop for StatsPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    // SAFETY: all zeroes is a valid timespec, which clock_gettime fills.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_MONOTONIC is always available; `now` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn both_sides_see_the_same_counts() {
        let (supervisor, fd) = StatsPage::create(Recording::default()).unwrap();
        let worker = StatsPage::adopt(&fd).unwrap();
        assert_eq!(supervisor.busy_for(), None);
        worker.begin();
        assert!(supervisor.read().busy);
        assert!(supervisor.busy_for().is_some());
        worker.end(Duration::from_micros(5), Some(ErrorKind::Timeout), true);
        worker.begin();
        worker.end(Duration::from_micros(5), None, false);
        let counts = supervisor.read();
        assert!(!counts.busy);
        assert_eq!(counts.latency[bucket(5)], 1, "only the direct call counts");
        assert_eq!(counts.latency.iter().sum::<u64>(), 1);
        let timeout = usize::try_from(ErrorKind::Timeout.code() - 1).unwrap();
        assert_eq!(counts.errors[timeout], 1);
    }

    #[test]
    fn the_recorder_keeps_the_last_calls_and_how_they_ended() {
        let recording = Recording {
            calls: 3,
            bytes: 3 * 16,
            inputs: true,
        };
        let (supervisor, fd) = StatsPage::create(recording).unwrap();
        let worker = StatsPage::adopt(&fd).unwrap();
        assert!(supervisor.recorded().is_empty());
        for n in 0..4u8 {
            let seq = worker.record_begin("echo", &[n; 40], Some(u32::from(n)));
            worker.record_end(seq, (n == 2).then_some(ErrorKind::Plugin));
        }
        worker.record_begin("crash", b"boom", None);
        let calls = supervisor.recorded();
        let seqs: Vec<u64> = calls.iter().map(|call| call.seq).collect();
        assert_eq!(seqs, [3, 4, 5], "the last three");
        assert_eq!(calls[0].ended, CallEnd::Failed(ErrorKind::Plugin));
        assert_eq!(calls[1].ended, CallEnd::Answered);
        assert_eq!(calls[1].direct_channel, Some(3));
        // 16 bytes a slot: "echo" and 12 of the 40 input bytes.
        assert_eq!((calls[1].input.len(), calls[1].input_len), (12, 40));
        let last = &calls[2];
        assert_eq!(
            (
                last.method.as_str(),
                last.input.as_slice(),
                last.ended,
                last.direct_channel
            ),
            ("crash", b"boom".as_slice(), CallEnd::InFlight, None)
        );
    }

    #[test]
    fn a_page_of_another_size_or_unsealed_is_refused() {
        // SAFETY: a plain memfd, not sealed.
        let raw = unsafe { libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: memfd_create returned a new fd.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        assert!(StatsPage::adopt(&fd).is_err());
    }
}
