//! The wasm32 guest ABI for a [`Plugin`] type: what `export_plugin!`
//! exports from a module built for `wasm32-unknown-unknown` or
//! `wasm32-wasip1`. The host (the worker's wasmtime runtime) calls:
//!
//! - `corral_abi_version() -> u32`: the ABI version (1);
//! - `alloc(len) -> ptr` / `dealloc(ptr, len)`: guest memory the host fills
//!   with a call's method and input, and frees a reply with;
//! - `init() -> i32`: 0 when the plugin is ready;
//! - `call(method, method_len, input, input_len, out) -> i32`: a `CALL_*`
//!   code; the guest writes the reply (or UTF-8 error) as `[ptr, len]`
//!   (two little-endian `u32`) at `out`, and the host frees it with
//!   `dealloc`;
//! - `health() -> i32`: 0 = healthy; `shutdown()`.
//!
//! Host functions are imported from module `corral`: `log(level, ptr,
//! len)`, `now_ms() -> i64` and `host_call(op, op_len, input, input_len,
//! out) -> i32` (a host service: 0 = ok, else an `ErrorKind` code; the
//! host writes the reply or UTF-8 message, allocated with the guest's
//! `alloc`, as `[ptr, len]` at `out`, and the guest frees it). A wasm
//! guest is single-threaded.
#![allow(unsafe_code, reason = "implements the wasm32 guest ABI")]

use super::Instance;
use crate::abi;
use crate::plugin::{Host, LogLevel, Plugin};
use std::alloc::Layout;
use std::cell::UnsafeCell;

/// The one plugin instance of a wasm module.
pub struct Slot<P>(UnsafeCell<Option<Instance<P>>>);

// SAFETY: wasm32 guests run on one thread; the host never calls in
// concurrently.
unsafe impl<P> Sync for Slot<P> {}

impl<P: Plugin + Default> Slot<P> {
    /// An empty slot, filled by `init`.
    pub const fn new() -> Self {
        Self(UnsafeCell::new(None))
    }

    fn get(&self) -> &mut Option<Instance<P>> {
        // SAFETY: single-threaded, and no reference outlives one export call.
        unsafe { &mut *self.0.get() }
    }

    /// Creates the instance and runs the plugin's `init`.
    pub fn init(&self) -> i32 {
        let host = Host::wasm();
        let mut plugin = P::default();
        match plugin.init(&host) {
            Ok(()) => {
                *self.get() = Some(Instance { plugin, host });
                0
            }
            Err(error) => {
                host.log(LogLevel::Error, &format!("init failed: {error}"));
                1
            }
        }
    }

    /// Runs one call; see the module docs.
    ///
    /// # Safety
    /// The pointers must be valid for their lengths in this module's
    /// memory, and `out` for two `u32`s.
    pub unsafe fn call(
        &self,
        method: *const u8,
        method_len: usize,
        input: *const u8,
        input_len: usize,
        out: *mut u32,
    ) -> i32 {
        // SAFETY: per the contract.
        let (method, input) = unsafe {
            (
                abi::Bytes {
                    ptr: method,
                    len: method_len,
                }
                .as_slice(),
                abi::Bytes {
                    ptr: input,
                    len: input_len,
                }
                .as_slice(),
            )
        };
        let (code, bytes) = match self.get() {
            Some(instance) => instance.dispatch(method, input),
            None => (abi::CALL_ERR_PLUGIN, b"plugin is not initialized".to_vec()),
        };
        let reply = abi::Owned::from_vec(bytes);
        // Guest pointers and lengths are 32-bit on wasm32.
        let (ptr, len) = (reply.ptr as usize as u32, reply.len as u32);
        // SAFETY: `out` is valid for two u32s, per the contract.
        unsafe {
            out.write_unaligned(ptr);
            out.add(1).write_unaligned(len);
        }
        code
    }

    /// 0 when healthy.
    pub fn health(&self) -> i32 {
        match self.get() {
            Some(instance) => instance.health(),
            None => 1,
        }
    }

    /// Drops the instance.
    pub fn shutdown(&self) {
        *self.get() = None;
    }
}

/// Guest memory for the host to fill.
pub fn alloc(len: usize) -> *mut u8 {
    match Layout::from_size_align(len, 1) {
        Ok(layout) if len > 0 => {
            // SAFETY: the layout has a non-zero size.
            unsafe { std::alloc::alloc(layout) }
        }
        _ => std::ptr::NonNull::dangling().as_ptr(),
    }
}

/// Frees what [`alloc`] or a `call` reply allocated.
///
/// # Safety
/// `ptr` and `len` must come from [`alloc`] or a reply, and be freed once.
pub unsafe fn dealloc(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len, 1) {
        // SAFETY: allocated with this layout (replies are boxed `[u8]`,
        // whose layout is `len` bytes, align 1).
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
}

/// The host functions imported from module `corral`.
pub(crate) mod imports {
    #[link(wasm_import_module = "corral")]
    unsafe extern "C" {
        /// Writes `len` bytes at `ptr` (UTF-8) to the plugin's log.
        pub(crate) fn log(level: i32, ptr: *const u8, len: usize);
        /// Milliseconds since the Unix epoch.
        pub(crate) fn now_ms() -> u64;
        /// A host service; see the module docs.
        pub(crate) fn host_call(
            op: *const u8,
            op_len: usize,
            input: *const u8,
            input_len: usize,
            out: *mut u32,
        ) -> i32;
    }
}

/// Calls host service `op`: its result code and reply (or message).
pub(crate) fn host_call(op: &str, input: &[u8]) -> (i32, Vec<u8>) {
    let mut out = [0u32; 2];
    // SAFETY: the host reads the two buffers during the call and writes two
    // u32s at `out`.
    let code = unsafe {
        imports::host_call(
            op.as_ptr(),
            op.len(),
            input.as_ptr(),
            input.len(),
            out.as_mut_ptr(),
        )
    };
    let (ptr, len) = (out[0] as usize as *mut u8, out[1] as usize);
    let bytes = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: the host allocated `len` bytes at `ptr` with `alloc`
        // (layout `len`, align 1, as a `Vec<u8>` of capacity `len`) and
        // hands them over.
        unsafe { Vec::from_raw_parts(ptr, len, len) }
    };
    (code, bytes)
}
