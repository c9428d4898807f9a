//! Native plugins: a shared library exporting the C ABI of
//! `corral_plugin.h`, loaded with `dlopen` through libloading.
#![allow(unsafe_code, reason = "loads and calls a plugin through its C ABI")]

use super::{LoadError, Runtime};
use crate::host::HostTable;
use crate::link::Link;
use crate::reply::ReplyBuf;
use corral_plugin_api::RemoteError;
use corral_plugin_api::abi::{self, Bytes, Owned};
use corral_plugin_api::wire::Hello;
use libloading::Library;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// A loaded native plugin and its instance.
pub(crate) struct NativePlugin {
    call: Call,
    health: abi::HealthFn,
    destroy: abi::DestroyFn,
    instance: *mut c_void,
    // Dropped after the instance is destroyed (see Drop): the instance may
    // use the host table, and the code lives in the library.
    _host: HostTable,
    _library: Library,
}

/// The plugin's `call`, by ABI version.
enum Call {
    /// Writes the reply where the worker says.
    V2(abi::CallV2Fn),
    /// Returns a buffer the worker copies, then frees with `free_owned`.
    V1(abi::CallFn, abi::FreeOwnedFn),
}

/// The functions of either table.
struct Table {
    create: abi::CreateFn,
    call: Call,
    health: abi::HealthFn,
    destroy: abi::DestroyFn,
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
        let table = table(&library, &path)?;
        let host = HostTable::new(link);
        // SAFETY: `host` is a valid table that outlives the instance (it is
        // dropped after `destroy`).
        let instance = unsafe { (table.create)(host.as_ptr()) };
        if instance.is_null() {
            return Err(LoadError::InitFailed { path });
        }
        Ok(Self {
            call: table.call,
            health: table.health,
            destroy: table.destroy,
            instance,
            _host: host,
            _library: library,
        })
    }
}

/// The library's v2 table, or its v1 table when it exports no v2.
fn table(library: &Library, path: &str) -> Result<Table, LoadError> {
    let null = |function| LoadError::NullFunction {
        path: path.to_owned(),
        function,
    };
    let mismatch = |found| LoadError::AbiMismatch {
        path: path.to_owned(),
        found,
        expected: abi::ABI_VERSION_2,
    };
    // SAFETY: the symbol's type is fixed by the ABI (corral_plugin.h).
    if let Ok(entry) = unsafe { library.get::<abi::EntryV2Fn>(abi::ENTRY_SYMBOL_V2) } {
        // SAFETY: the entry takes no arguments and returns a pointer to a
        // static table, valid while the library stays loaded.
        let table = unsafe { entry() };
        // SAFETY: a non-null table pointer points to a static `PluginV2`
        // that lives as long as the library, which the caller keeps.
        let Some(table) = (unsafe { table.as_ref() }) else {
            return Err(LoadError::MissingEntry {
                path: path.to_owned(),
            });
        };
        if table.abi_version != abi::ABI_VERSION_2 {
            return Err(mismatch(table.abi_version));
        }
        return Ok(Table {
            create: table.create.ok_or_else(|| null("create"))?,
            call: Call::V2(table.call.ok_or_else(|| null("call"))?),
            health: table.health.ok_or_else(|| null("health"))?,
            destroy: table.destroy.ok_or_else(|| null("destroy"))?,
        });
    }
    // SAFETY: as above, for the v1 symbol.
    let entry = unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL) }.map_err(|_| {
        LoadError::MissingEntry {
            path: path.to_owned(),
        }
    })?;
    // SAFETY: as above.
    let table = unsafe { entry() };
    // SAFETY: as above, a `PluginV1`.
    let Some(table) = (unsafe { table.as_ref() }) else {
        return Err(LoadError::MissingEntry {
            path: path.to_owned(),
        });
    };
    if table.abi_version != abi::ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            path: path.to_owned(),
            found: table.abi_version,
            expected: abi::ABI_VERSION,
        });
    }
    Ok(Table {
        create: table.create.ok_or_else(|| null("create"))?,
        call: Call::V1(
            table.call.ok_or_else(|| null("call"))?,
            table.free_owned.ok_or_else(|| null("free_owned"))?,
        ),
        health: table.health.ok_or_else(|| null("health"))?,
        destroy: table.destroy.ok_or_else(|| null("destroy"))?,
    })
}

/// `OutputV2::reserve`: `ctx` is the call's [`ReplyBuf`].
extern "C" fn reserve(ctx: *mut c_void, len: usize) -> *mut u8 {
    // SAFETY: `call` passes its `&mut ReplyBuf` as `ctx` for the duration
    // of the plugin's call, and nothing else touches it meanwhile.
    let out = unsafe { &mut *ctx.cast::<ReplyBuf<'_>>() };
    match out.reserve(len) {
        Some(bytes) => bytes.as_mut_ptr(),
        None => std::ptr::null_mut(),
    }
}

impl Runtime for NativePlugin {
    /// The plugin's `destroy`: its own code.
    fn code_address(&self) -> Option<usize> {
        Some(self.destroy as usize)
    }

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
        out: &mut ReplyBuf<'_>,
    ) -> Result<(), RemoteError> {
        let (method, input) = (Bytes::new(method.as_bytes()), Bytes::new(input));
        let code = match self.call {
            Call::V2(call) => {
                let output = abi::OutputV2 {
                    ctx: std::ptr::from_mut(out).cast(),
                    reserve,
                };
                // SAFETY: the instance is live, the buffers are valid for
                // the call, and so is `output`, whose `ctx` is `out`.
                unsafe { call(self.instance, method, input, &output) }
            }
            Call::V1(call, free_owned) => {
                let mut owned = Owned::EMPTY;
                // SAFETY: the instance is live, the buffers are valid for
                // the call, and `owned` is a valid out-parameter.
                let code = unsafe { call(self.instance, method, input, &mut owned) };
                if !owned.ptr.is_null() {
                    // SAFETY: a non-null `owned` filled by the plugin
                    // points to `len` bytes it owns until `free_owned`.
                    let bytes = unsafe {
                        Bytes {
                            ptr: owned.ptr,
                            len: owned.len,
                        }
                        .as_slice()
                    };
                    let fits = out.write(bytes);
                    let len = bytes.len();
                    // SAFETY: `owned` came from this plugin's `call` and
                    // is freed once.
                    unsafe { free_owned(owned) };
                    if fits.is_none() {
                        return Err(super::too_large(len));
                    }
                } else {
                    out.write(&[]);
                }
                code
            }
        };
        super::outcome(code, out)
    }
}

impl Drop for NativePlugin {
    fn drop(&mut self) {
        // SAFETY: the instance came from `create` and is destroyed once,
        // before the host table and the library are dropped.
        unsafe { (self.destroy)(self.instance) };
    }
}
