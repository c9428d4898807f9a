//! A native plugin's crash, seen from inside: before the worker dies of
//! SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT, its handler writes the
//! crashing thread's return addresses into the stats page (atomic stores,
//! nothing else), puts the signal's previous action back and lets the
//! signal take its course, so the exit status is the one the crash would
//! have had. The supervisor reads them from the page and symbolizes the
//! plugin's frames for the crash report.
//!
//! The addresses come from glibc's `backtrace`, called once at install
//! so that the unwinder is loaded before any crash (its first call may
//! `dlopen` libgcc_s, which a signal handler must not do). Where the
//! plugin's code lies is read at install with `dl_iterate_phdr`.
#![allow(
    unsafe_code,
    reason = "signal handlers, dl_iterate_phdr and backtrace(3)"
)]

use corral_plugin_api::wire::{CRASH_FRAMES, CrashArea, StatsPage};
use std::sync::OnceLock;

/// The signals a crash dies of.
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// [`CRASH_FRAMES`] as `backtrace(3)` takes it.
#[allow(
    clippy::cast_possible_truncation,
    reason = "48 fits; checked at compile time below"
)]
const FRAMES_ASKED: libc::c_int = CRASH_FRAMES as libc::c_int;
const _: () = assert!(CRASH_FRAMES <= 1024);

/// Bytes of the alternate stack the handler runs on (a stack overflow
/// leaves none on the thread's own).
const ALT_STACK: usize = 64 * 1024;

struct Installed {
    area: CrashArea,
    /// The signals' actions before ours, in the order of [`SIGNALS`].
    previous: [libc::sigaction; SIGNALS.len()],
}

// SAFETY: the previous actions are plain data read by the handler; the
// area is atomics only.
unsafe impl Sync for Installed {}
// SAFETY: as above.
unsafe impl Send for Installed {}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Records where the plugin whose code contains `code_address` lies, and
/// installs the crash handler for this process.
pub(crate) fn install(stats: &StatsPage, code_address: usize) {
    if let Some((bias, code)) = module_of(code_address) {
        stats.set_plugin_code(bias, code);
    }
    // Load the unwinder now (see the module's comment).
    let mut warm = [std::ptr::null_mut(); 4];
    // SAFETY: `warm` has room for the 4 addresses asked for.
    unsafe { libc::backtrace(warm.as_mut_ptr(), 4) };
    alternate_stack();
    // SAFETY: zeroed sigactions are valid (SIG_DFL); sigaction fills them.
    let mut previous: [libc::sigaction; SIGNALS.len()] = unsafe { std::mem::zeroed() };
    INSTALLED.get_or_init(|| {
        for (signal, old) in SIGNALS.iter().zip(previous.iter_mut()) {
            // SAFETY: reads the current action into `old`.
            unsafe { libc::sigaction(*signal, std::ptr::null(), old) };
        }
        Installed {
            area: stats.crash_area(),
            previous,
        }
    });
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction is valid; the fields are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_crash as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `action` names an async-signal-safe handler.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            tracing::debug!(
                "no crash handler for signal {signal}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The handler: the return addresses into the page, the previous action
/// back, and the signal again if it was sent rather than caused (a fault
/// happens again when the handler returns).
extern "C" fn on_crash(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let Some(installed) = INSTALLED.get() else {
        return;
    };
    let mut frames = [std::ptr::null_mut(); CRASH_FRAMES];
    // SAFETY: `frames` has room for CRASH_FRAMES addresses; the unwinder
    // was loaded at install.
    let len = unsafe { libc::backtrace(frames.as_mut_ptr(), FRAMES_ASKED) };
    let mut addresses = [0usize; CRASH_FRAMES];
    let len = usize::try_from(len).unwrap_or(0).min(CRASH_FRAMES);
    for (address, frame) in addresses.iter_mut().zip(&frames[..len]) {
        *address = *frame as usize;
    }
    // The handler's own frame first: leave it out.
    installed.area.write(addresses.get(1..len).unwrap_or(&[]));
    if let Some(index) = SIGNALS.iter().position(|known| *known == signal) {
        // SAFETY: puts back the action read at install.
        unsafe { libc::sigaction(signal, &installed.previous[index], std::ptr::null_mut()) };
    }
    // SAFETY: `info` is the kernel's siginfo for this signal.
    let sent = unsafe { info.as_ref() }.is_some_and(|info| info.si_code <= 0);
    if sent {
        // SAFETY: raise(3) is async-signal-safe.
        unsafe { libc::raise(signal) };
    }
}

/// An alternate signal stack for this thread, so that the handler runs
/// even when the crash is a stack overflow.
fn alternate_stack() {
    // SAFETY: a private anonymous mapping, never unmapped (the handler may
    // need it until the process ends).
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return;
    }
    let alt = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK,
    };
    // SAFETY: `alt` describes the mapping just made.
    unsafe { libc::sigaltstack(&alt, std::ptr::null_mut()) };
}

/// The load bias and the mapped range of the object whose segments
/// contain `address`.
fn module_of(address: usize) -> Option<(u64, std::ops::Range<u64>)> {
    struct Search {
        address: u64,
        found: Option<(u64, std::ops::Range<u64>)>,
    }
    extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Search` passed below; `info` and its
        // program headers are valid during the callback.
        let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
        let headers = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: `dlpi_phnum` headers at `dlpi_phdr`.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let bias = info.dlpi_addr;
        let (mut start, mut end) = (u64::MAX, 0);
        for header in headers.iter().filter(|h| h.p_type == libc::PT_LOAD) {
            start = start.min(bias.wrapping_add(header.p_vaddr));
            end = end.max(
                bias.wrapping_add(header.p_vaddr)
                    .wrapping_add(header.p_memsz),
            );
        }
        if (start..end).contains(&search.address) {
            search.found = Some((bias, start..end));
            return 1;
        }
        0
    }
    let mut search = Search {
        address: address as u64,
        found: None,
    };
    // SAFETY: `visit` only reads what it is given and writes `search`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast()) };
    search.found
}
