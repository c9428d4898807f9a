//! The host table a native plugin gets: the worker's side of `corral_host`.
//! Logs go to the worker's stderr through `tracing`, which the supervisor
//! captures.
#![allow(unsafe_code, reason = "implements the host side of the C ABI")]

use corral_plugin_api::LogLevel;
use corral_plugin_api::abi::{self, Bytes, HostV1, Owned};
use std::ffi::c_void;
use std::time::{SystemTime, UNIX_EPOCH};

/// Builds the host table. The returned box must outlive the plugin
/// instance; `ctx` is unused for now.
pub(crate) fn host_table() -> Box<HostV1> {
    Box::new(HostV1 {
        ctx: std::ptr::null_mut(),
        log,
        now_ms,
        call,
        free_owned,
    })
}

extern "C" fn log(_ctx: *mut c_void, level: i32, message: Bytes) {
    // SAFETY: the plugin passes a buffer valid for the duration of the call.
    let message = String::from_utf8_lossy(unsafe { message.as_slice() });
    log_message(LogLevel::from_abi(level), &message);
}

/// A plugin's log message, into the worker's log (which the supervisor
/// reads).
pub(crate) fn log_message(level: LogLevel, message: &str) {
    match level {
        LogLevel::Error => tracing::error!(target: "plugin", "{message}"),
        LogLevel::Warn => tracing::warn!(target: "plugin", "{message}"),
        LogLevel::Info => tracing::info!(target: "plugin", "{message}"),
        LogLevel::Debug => tracing::debug!(target: "plugin", "{message}"),
        LogLevel::Trace => tracing::trace!(target: "plugin", "{message}"),
    }
}

extern "C" fn now_ms(_ctx: *mut c_void) -> u64 {
    unix_ms()
}

/// Milliseconds since the Unix epoch: `now_ms` for native and wasm plugins.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// No host service ops exist in this version: every op is refused with a
/// message naming it.
extern "C" fn call(_ctx: *mut c_void, op: Bytes, _input: Bytes, out: *mut Owned) -> i32 {
    // SAFETY: the plugin passes a buffer valid for the duration of the call.
    let op = String::from_utf8_lossy(unsafe { op.as_slice() });
    let message = format!("host service `{op}` is not available");
    if !out.is_null() {
        // SAFETY: `out` is non-null and points to the plugin's out-parameter.
        unsafe { out.write(Owned::from_vec(message.into_bytes())) };
    }
    abi::CALL_ERR_PLUGIN
}

extern "C" fn free_owned(_ctx: *mut c_void, out: Owned) {
    // SAFETY: the plugin hands back what `call` produced, once.
    drop(unsafe { out.into_vec() });
}
