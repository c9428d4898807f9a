//! The native C ABI functions for a [`Plugin`] type (`corral_plugin.h`).
//!
//! Every function catches panics at the boundary: a panic in `call` comes
//! back as a [`CALL_ERR_PANIC`](abi::CALL_ERR_PANIC) error, a panic in
//! `create` as a failed init.
#![allow(unsafe_code, reason = "implements the plugin side of the C ABI")]

use super::Instance;
use crate::abi;
use crate::output::Output;
use crate::plugin::{Host, LogLevel, Plugin};
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Builds the ABI table for `P`; the macro stores it in a `static`.
pub const fn vtable<P: Plugin + Default>() -> abi::PluginV1 {
    abi::PluginV1 {
        abi_version: abi::ABI_VERSION,
        create: Some(create::<P>),
        call: Some(call::<P>),
        health: Some(health::<P>),
        destroy: Some(destroy::<P>),
        free_owned: Some(free_owned),
    }
}

/// Builds the v2 ABI table for `P`.
pub const fn vtable_v2<P: Plugin + Default>() -> abi::PluginV2 {
    abi::PluginV2 {
        abi_version: abi::ABI_VERSION_2,
        create: Some(create::<P>),
        call: Some(call_v2::<P>),
        health: Some(health::<P>),
        destroy: Some(destroy::<P>),
    }
}

unsafe extern "C" fn create<P: Plugin + Default>(host: *const abi::HostV1) -> *mut c_void {
    if host.is_null() {
        return std::ptr::null_mut();
    }
    let made = catch_unwind(|| {
        let host = Host::from_raw(host);
        let mut plugin = P::default();
        match plugin.init(&host) {
            Ok(()) => Some(Box::new(Instance { plugin, host })),
            Err(error) => {
                host.log(LogLevel::Error, &format!("init failed: {error}"));
                None
            }
        }
    });
    match made {
        Ok(Some(instance)) => Box::into_raw(instance).cast(),
        Ok(None) | Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn call<P: Plugin>(
    instance: *mut c_void,
    method: abi::Bytes,
    input: abi::Bytes,
    out: *mut abi::Owned,
) -> i32 {
    // SAFETY: the worker passes the pointer `create` returned, uses it from
    // one thread at a time and not after `destroy`.
    let instance = unsafe { &mut *instance.cast::<Instance<P>>() };
    // SAFETY: the worker passes buffers valid for the duration of the call.
    let (method, input) = unsafe { (method.as_slice(), input.as_slice()) };
    let (code, bytes) = instance.dispatch(method, input);
    if !out.is_null() {
        // SAFETY: `out` is non-null and points to the worker's out-parameter.
        unsafe { out.write(abi::Owned::from_vec(bytes)) };
    }
    code
}

unsafe extern "C" fn call_v2<P: Plugin>(
    instance: *mut c_void,
    method: abi::Bytes,
    input: abi::Bytes,
    out: *const abi::OutputV2,
) -> i32 {
    // SAFETY: as in `call`.
    let instance = unsafe { &mut *instance.cast::<Instance<P>>() };
    // SAFETY: as in `call`.
    let (method, input) = unsafe { (method.as_slice(), input.as_slice()) };
    // SAFETY: the worker passes a valid output for the call, or null.
    match unsafe { out.as_ref() } {
        Some(out) => instance.dispatch_into(method, input, &mut Output::abi(out)),
        None => abi::CALL_ERR_PLUGIN,
    }
}

unsafe extern "C" fn health<P: Plugin>(instance: *mut c_void) -> i32 {
    // SAFETY: as in `call`.
    let instance = unsafe { &mut *instance.cast::<Instance<P>>() };
    instance.health()
}

unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` came from `Box::into_raw` in `create` and the
    // worker destroys it once.
    let instance = unsafe { Box::from_raw(instance.cast::<Instance<P>>()) };
    // A panicking Drop must not unwind into the worker.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(instance)));
}

unsafe extern "C" fn free_owned(out: abi::Owned) {
    // SAFETY: the worker hands back exactly what `call` produced, once.
    drop(unsafe { out.into_vec() });
}
