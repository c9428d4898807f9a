//! The native plugin ABI: `#[repr(C)]` mirrors of
//! `include/corral_plugin.h`, which is the normative form.
//!
//! A native plugin is a shared library exporting [`ENTRY_SYMBOL_V2`] (a
//! function returning a pointer to a static [`PluginV2`]), or
//! [`ENTRY_SYMBOL`] (a [`PluginV1`]), or both; the worker takes v2 when it
//! is there. Version 2 differs in `call` only: the plugin writes its reply
//! where the worker says ([`OutputV2`]), which on a direct channel is
//! shared memory the host app reads in place. The worker refuses a library
//! whose symbols are missing or whose `abi_version` is not the symbol's.
#![allow(unsafe_code, reason = "raw views of C ABI buffers")]

use std::ffi::c_void;

/// The ABI version this crate speaks.
pub const ABI_VERSION: u32 = 1;

/// The v1 entry symbol, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL: &[u8] = b"corral_plugin_v1_entry\0";

/// The version a [`PluginV2`] table says.
pub const ABI_VERSION_2: u32 = 2;

/// The v2 entry symbol, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL_V2: &[u8] = b"corral_plugin_v2_entry\0";

/// `call` result: success, `out` holds the reply.
pub const CALL_OK: i32 = 0;
/// `call` result: the plugin failed, `out` holds a UTF-8 message.
pub const CALL_ERR_PLUGIN: i32 = 1;
/// `call` result: the plugin has no such method, `out` holds a UTF-8 message.
pub const CALL_ERR_UNKNOWN_METHOD: i32 = 2;
/// `call` result: the plugin panicked, `out` holds a UTF-8 message.
pub const CALL_ERR_PANIC: i32 = 3;

/// Host service `kv_get:KEY`: the value, or `not_found`.
pub const OP_KV_GET: &str = "kv_get:";
/// Host service `kv_put:KEY`, input = the value.
pub const OP_KV_PUT: &str = "kv_put:";
/// Host service `kv_delete:KEY`: ok, or `not_found`.
pub const OP_KV_DELETE: &str = "kv_delete:";
/// Host service `kv_list:PREFIX`: the keys, sorted, one per line.
pub const OP_KV_LIST: &str = "kv_list:";
/// Host service `kv_page:PREFIX`, input = page size and start key: one
/// page of keys and where the next starts ([`crate::kv`] has the format).
pub const OP_KV_PAGE: &str = "kv_page:";
/// Host service `kv_batch`, input = puts and deletes applied together
/// ([`crate::kv`] has the format).
pub const OP_KV_BATCH: &str = "kv_batch";
/// Host service `publish:TOPIC`, input = the payload.
pub const OP_PUBLISH: &str = "publish:";
/// Host service `call:PLUGIN/METHOD`, input = the call's input.
pub const OP_CALL: &str = "call:";
/// Host service `config`: the plugin's effective `[config]` as TOML text
/// (empty when it has none). Answered by the worker itself, always
/// allowed.
pub const OP_CONFIG: &str = "config";

/// Methods starting with this are publications on subscribed topics:
/// `@event:TOPIC`, input = the payload ([`Plugin::on_event`](crate::Plugin::on_event)).
pub const EVENT_METHOD_PREFIX: &str = "@event:";

/// Log levels for [`Host::log`](HostV1::log), as in the C header.
pub const LOG_ERROR: i32 = 1;
/// Warning level.
pub const LOG_WARN: i32 = 2;
/// Info level.
pub const LOG_INFO: i32 = 3;
/// Debug level.
pub const LOG_DEBUG: i32 = 4;
/// Trace level.
pub const LOG_TRACE: i32 = 5;

/// Borrowed bytes, valid for the duration of the call they are passed to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    /// Start of the bytes; may be dangling when `len` is 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl Bytes {
    /// Borrows `slice` for an ABI call.
    pub fn new(slice: &[u8]) -> Self {
        Self {
            ptr: slice.as_ptr(),
            len: slice.len(),
        }
    }

    /// Views the bytes as a slice.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialized bytes that stay valid and
    /// unmodified for `'a` (or `len` must be 0).
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller guarantees `ptr` points to `len` valid bytes for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes allocated by one side and released by the same side's
/// `free_owned`.
#[repr(C)]
#[derive(Debug)]
pub struct Owned {
    /// Start of the allocation; null when empty and never filled.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

impl Owned {
    /// An empty value for out-parameters.
    pub const EMPTY: Owned = Owned {
        ptr: std::ptr::null_mut(),
        len: 0,
    };

    /// Hands a vector's bytes over the ABI; release with [`Owned::into_vec`].
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed).cast::<u8>();
        Self { ptr, len }
    }

    /// Takes back bytes made by [`Owned::from_vec`].
    ///
    /// # Safety
    /// `self` must come from [`Owned::from_vec`] in this same binary (same
    /// allocator), or be [`Owned::EMPTY`], and not be released twice.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
        // SAFETY: per the contract, `slice` is exactly the boxed slice leaked
        // by `from_vec`, released once.
        unsafe { Box::from_raw(slice) }.into_vec()
    }
}

/// The services the worker gives a plugin; valid until `destroy`.
#[repr(C)]
pub struct HostV1 {
    /// Opaque worker state passed back to every function.
    pub ctx: *mut c_void,
    /// Writes `msg` (UTF-8) to the plugin's log at `level` (`LOG_*`).
    pub log: extern "C" fn(ctx: *mut c_void, level: i32, msg: Bytes),
    /// Milliseconds since the Unix epoch.
    pub now_ms: extern "C" fn(ctx: *mut c_void) -> u64,
    /// A host service call (`op` names it: the `OP_*` prefixes plus an
    /// argument); 0 = ok and `out` holds the reply, otherwise the result
    /// is an [`ErrorKind`](crate::ErrorKind) code and `out` holds a UTF-8
    /// message. Release `out` with `free_owned`.
    pub call: extern "C" fn(ctx: *mut c_void, op: Bytes, input: Bytes, out: *mut Owned) -> i32,
    /// Releases an [`Owned`] filled by `call`.
    pub free_owned: extern "C" fn(ctx: *mut c_void, out: Owned),
}

/// Creates the plugin instance; NULL means init failed.
pub type CreateFn = unsafe extern "C" fn(host: *const HostV1) -> *mut c_void;
/// Calls `method` with `input`; see the `CALL_*` codes.
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    method: Bytes,
    input: Bytes,
    out: *mut Owned,
) -> i32;
/// 0 = healthy.
pub type HealthFn = unsafe extern "C" fn(instance: *mut c_void) -> i32;
/// Destroys the instance.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);
/// Releases an [`Owned`] filled by `call`.
pub type FreeOwnedFn = unsafe extern "C" fn(out: Owned);

/// The table a plugin's entry function returns. Function pointers are
/// nullable on the C side; the worker refuses a table with a null one.
#[repr(C)]
pub struct PluginV1 {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// See [`CreateFn`].
    pub create: Option<CreateFn>,
    /// See [`CallFn`].
    pub call: Option<CallFn>,
    /// See [`HealthFn`].
    pub health: Option<HealthFn>,
    /// See [`DestroyFn`].
    pub destroy: Option<DestroyFn>,
    /// See [`FreeOwnedFn`].
    pub free_owned: Option<FreeOwnedFn>,
}

/// The entry function's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginV1;

/// Where a v2 `call` writes its reply, or its error message when it
/// fails; valid for the duration of that call.
#[repr(C)]
pub struct OutputV2 {
    /// Opaque worker state passed back to `reserve`.
    pub ctx: *mut c_void,
    /// Returns `len` writable bytes that become the reply (or the error
    /// message), replacing whatever an earlier `reserve` of the same call
    /// returned, which must not be used after; NULL when they cannot be
    /// had. The bytes hold old data, not zeroes: write all `len` of them.
    pub reserve: extern "C" fn(ctx: *mut c_void, len: usize) -> *mut u8,
}

/// A v2 call of `method` with `input`, writing the reply to `out`; see the
/// `CALL_*` codes.
pub type CallV2Fn = unsafe extern "C" fn(
    instance: *mut c_void,
    method: Bytes,
    input: Bytes,
    out: *const OutputV2,
) -> i32;

/// The table a v2 entry function returns: [`PluginV1`] with the v2
/// `call`, and no `free_owned` (the plugin owns nothing it hands over).
#[repr(C)]
pub struct PluginV2 {
    /// Must equal [`ABI_VERSION_2`].
    pub abi_version: u32,
    /// See [`CreateFn`].
    pub create: Option<CreateFn>,
    /// See [`CallV2Fn`].
    pub call: Option<CallV2Fn>,
    /// See [`HealthFn`].
    pub health: Option<HealthFn>,
    /// See [`DestroyFn`].
    pub destroy: Option<DestroyFn>,
}

/// The v2 entry function's type.
pub type EntryV2Fn = unsafe extern "C" fn() -> *const PluginV2;
