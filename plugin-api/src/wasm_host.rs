//! What a wasm32 guest imports from its host (module `corral`, the
//! worker's wasmtime runtime), and the host-service call built on it:
//! [`Host`](crate::Host) reaches the host through these inside a wasm
//! module. The guest's exports are `export::wasm`'s.
//!
//! The imports are `log(level, ptr, len)`, `now_ms() -> i64` and
//! `host_call(op, op_len, input, input_len, out) -> i32` (a host service:
//! 0 = ok, else an `ErrorKind` code; the host writes the reply or UTF-8
//! message, allocated with the guest's `alloc`, as `[ptr, len]` at `out`,
//! and the guest frees it). A wasm guest is single-threaded.
#![allow(unsafe_code, reason = "declares and calls the wasm32 host imports")]

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
