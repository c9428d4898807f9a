//! A worker's stats page: one shared memory mapping per worker in which
//! the worker counts the calls it serves on its direct channels (calls
//! that do not cross the supervisor) and says which call it is busy with
//! since when. The supervisor creates it ([`StatsPage::create`]), sends its
//! memfd with `Hello`, and reads it: for `ps`, `top` and Prometheus, and
//! to kill a worker busy with one call past the plugin's deadline.
//!
//! The counts are the worker's word. A hostile worker can write anything
//! here; all that can do is misreport its own calls (sums saturate, so
//! garbage cannot panic the supervisor) or get itself killed. It cannot
//! hide a stuck call from its caller, whose own timeout still fails it.
#![allow(unsafe_code, reason = "memfd and mmap have no safe std API")]

use super::latency::{BUCKETS, bucket};
use crate::error::ErrorKind;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
}

/// The page's size: the counters, rounded up to whole pages.
const LEN: usize = size_of::<Counters>().next_multiple_of(4096);

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
    pub fn create() -> io::Result<(Self, OwnedFd)> {
        let fd = super::shared::sealable_memfd(c"corral-stats")?;
        let len = libc::off_t::try_from(LEN).map_err(io::Error::other)?;
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
        let page = Self::map(fd.as_fd())?;
        Ok((page, fd))
    }

    /// Maps the page a supervisor sent (the worker's side): it must be a
    /// memfd of the page's size, sealed against shrinking.
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
        if usize::try_from(size).ok() != Some(LEN) {
            return Err(io::Error::other(format!(
                "the stats page has {size} bytes, not {LEN}"
            )));
        }
        Self::map(fd.as_fd())
    }

    fn map(fd: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the file's `LEN` bytes, which
        // its seals keep; it aliases no Rust object and is only accessed
        // through atomics.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr })
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

impl Drop for StatsPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped, once.
        unsafe { libc::munmap(self.ptr, LEN) };
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
        let (supervisor, fd) = StatsPage::create().unwrap();
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
    fn a_page_of_another_size_or_unsealed_is_refused() {
        // SAFETY: a plain memfd, not sealed.
        let raw = unsafe { libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: memfd_create returned a new fd.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        assert!(StatsPage::adopt(&fd).is_err());
    }
}
