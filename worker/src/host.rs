//! The host table a native plugin gets: the worker's side of `corral_host`.
//! Logs go to the worker's stderr through `tracing`, which the supervisor
//! captures; host services go to the supervisor over the [`Link`].
#![allow(unsafe_code, reason = "implements the host side of the C ABI")]

use crate::link::Link;
use corral_plugin_api::LogLevel;
use corral_plugin_api::abi::{self, Bytes, HostV1, Owned};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The host table a native plugin gets, and the link its `ctx` points
/// to: keep both alive until the instance is destroyed.
pub(crate) struct HostTable {
    table: Box<HostV1>,
    _link: Arc<Link>,
}

impl HostTable {
    pub(crate) fn new(link: &Arc<Link>) -> Self {
        Self {
            table: Box::new(HostV1 {
                ctx: Arc::as_ptr(link).cast_mut().cast(),
                log,
                now_ms,
                call,
                free_owned,
            }),
            _link: link.clone(),
        }
    }

    pub(crate) fn as_ptr(&self) -> *const HostV1 {
        &*self.table
    }
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

/// A host service, through the supervisor.
extern "C" fn call(ctx: *mut c_void, op: Bytes, input: Bytes, out: *mut Owned) -> i32 {
    // SAFETY: `ctx` is the `Link` of the `HostTable` that outlives the
    // instance calling this.
    let link = unsafe { &*ctx.cast_const().cast::<Link>() };
    // SAFETY: the plugin passes buffers valid for the duration of the call.
    let (op, input) = unsafe { (op.as_slice(), input.as_slice()) };
    let (code, bytes) = match link.host_call(&String::from_utf8_lossy(op), input) {
        Ok(reply) => (abi::CALL_OK, reply),
        Err(error) => (error.kind.code(), error.message.into_bytes()),
    };
    if !out.is_null() {
        // SAFETY: `out` is non-null and points to the plugin's out-parameter.
        unsafe { out.write(Owned::from_vec(bytes)) };
    }
    code
}

extern "C" fn free_owned(_ctx: *mut c_void, out: Owned) {
    // SAFETY: the plugin hands back what `call` produced, once.
    drop(unsafe { out.into_vec() });
}
