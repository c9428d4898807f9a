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
//! The host functions the guest imports from module `corral` (`log`,
//! `now_ms`, `host_call`) are declared in `wasm_host`, which [`Host`] uses.
//! A wasm guest is single-threaded.
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
