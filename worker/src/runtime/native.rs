//! Native plugins: a shared library exporting the C ABI of
//! `corral_plugin.h`, loaded with `dlopen` through libloading.
#![allow(unsafe_code, reason = "loads and calls a plugin through its C ABI")]

use super::{LoadError, Runtime};
use crate::host::HostTable;
use crate::link::Link;
use corral_plugin_api::RemoteError;
use corral_plugin_api::abi::{self, Bytes, Owned};
use corral_plugin_api::wire::Hello;
use libloading::Library;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// A loaded native plugin and its instance.
pub(crate) struct NativePlugin {
    call: abi::CallFn,
    health: abi::HealthFn,
    destroy: abi::DestroyFn,
    free_owned: abi::FreeOwnedFn,
    instance: *mut c_void,
    // Dropped after the instance is destroyed (see Drop): the instance may
    // use the host table, and the code lives in the library.
    _host: HostTable,
    _library: Library,
}

impl NativePlugin {
    /// Loads `hello.entry`, checks its ABI and creates the instance.
    pub(crate) fn load(hello: &Hello, link: &Arc<Link>) -> Result<Self, LoadError> {
        let path = hello.entry.clone();
        // The supervisor hands the module over already open: the worker's
        // uid may have no path to it.
        let load_from = match hello.entry_fd {
            Some(fd) => format!("/proc/self/fd/{fd}"),
            None => path.clone(),
        };
        // SAFETY: loading a library runs its constructors. That is the point
        // of a plugin; the worker process is the isolation boundary.
        let library = unsafe { Library::new(&load_from) }.map_err(|source| LoadError::Open {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the symbol's type is fixed by the ABI (corral_plugin.h).
        let entry = unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL) }
            .map_err(|_| LoadError::MissingEntry { path: path.clone() })?;
        // SAFETY: the entry takes no arguments and returns a pointer to a
        // static table, valid while the library stays loaded.
        let table = unsafe { entry() };
        // SAFETY: a non-null table pointer points to a static `PluginV1`
        // that lives as long as the library, which `Self` keeps loaded.
        let Some(table) = (unsafe { table.as_ref::<'static>() }) else {
            return Err(LoadError::MissingEntry { path });
        };
        if table.abi_version != abi::ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                path,
                found: table.abi_version,
                expected: abi::ABI_VERSION,
            });
        }
        let null = |function| LoadError::NullFunction {
            path: path.clone(),
            function,
        };
        let create = table.create.ok_or_else(|| null("create"))?;
        let call = table.call.ok_or_else(|| null("call"))?;
        let health = table.health.ok_or_else(|| null("health"))?;
        let destroy = table.destroy.ok_or_else(|| null("destroy"))?;
        let free_owned = table.free_owned.ok_or_else(|| null("free_owned"))?;
        let host = HostTable::new(link);
        // SAFETY: `host` is a valid table that outlives the instance (it is
        // dropped after `destroy`).
        let instance = unsafe { create(host.as_ptr()) };
        if instance.is_null() {
            return Err(LoadError::InitFailed { path });
        }
        Ok(Self {
            call,
            health,
            destroy,
            free_owned,
            instance,
            _host: host,
            _library: library,
        })
    }

    /// Copies the plugin's buffer and gives it back to the plugin to free.
    fn take(&self, out: Owned) -> Vec<u8> {
        if out.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: a non-null `out` filled by the plugin points to `len`
        // bytes it owns until `free_owned`.
        let bytes = unsafe {
            Bytes {
                ptr: out.ptr,
                len: out.len,
            }
            .as_slice()
        }
        .to_vec();
        // SAFETY: `out` came from this plugin's `call` and is freed once.
        unsafe { (self.free_owned)(out) };
        bytes
    }
}

impl Runtime for NativePlugin {
    fn health(&mut self) -> bool {
        // SAFETY: the instance is live.
        unsafe { (self.health)(self.instance) == 0 }
    }

    /// Native code cannot be stopped mid-call: the supervisor enforces the
    /// deadline by killing the worker.
    fn call(
        &mut self,
        method: &str,
        input: &[u8],
        _deadline: Duration,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut out = Owned::EMPTY;
        // SAFETY: the instance is live, the buffers are valid for the call,
        // and `out` is a valid out-parameter.
        let code = unsafe {
            (self.call)(
                self.instance,
                Bytes::new(method.as_bytes()),
                Bytes::new(input),
                &mut out,
            )
        };
        super::outcome(code, self.take(out))
    }
}

impl Drop for NativePlugin {
    fn drop(&mut self) {
        // SAFETY: the instance came from `create` and is destroyed once,
        // before the host table and the library are dropped.
        unsafe { (self.destroy)(self.instance) };
    }
}
