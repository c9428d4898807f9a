//! Glue behind [`export_plugin!`](crate::export_plugin): the native C ABI
//! (`native`) and the wasm32 guest ABI (`wasm`) for a [`Plugin`] type,
//! around one shared call path. Not a public API.

use crate::abi;
use crate::error::PluginError;
use crate::output::Output;
use crate::plugin::{Host, Plugin};
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub use native::{vtable, vtable_v2};

/// A plugin and the host services it was given.
struct Instance<P> {
    plugin: P,
    host: Host,
}

impl<P: Plugin> Instance<P> {
    /// Runs one call: the ABI result code and the reply or error message.
    /// A panic comes back as [`abi::CALL_ERR_PANIC`] (where panics unwind).
    fn dispatch(&mut self, method: &[u8], input: &[u8]) -> (i32, Vec<u8>) {
        let mut reply = Vec::new();
        let code = self.dispatch_into(method, input, &mut Output::from(&mut reply));
        (code, reply)
    }

    /// Runs one call writing to `out`: the ABI result code, with the reply
    /// or error message in `out`.
    fn dispatch_into(&mut self, method: &[u8], input: &[u8], out: &mut Output<'_>) -> i32 {
        let result = catch_unwind(AssertUnwindSafe(|| match std::str::from_utf8(method) {
            Ok(method) => match method.strip_prefix(abi::EVENT_METHOD_PREFIX) {
                Some(topic) => self
                    .plugin
                    .on_event(&self.host, topic, input)
                    .and_then(|()| out.write(&[])),
                None => self.plugin.call_into(&self.host, method, input, out),
            },
            Err(_) => Err(PluginError::new("method name is not UTF-8")),
        }));
        let (code, message) = match result {
            Ok(Ok(())) => return abi::CALL_OK,
            Ok(Err(error)) => (error.abi_code(), error.into_message()),
            Err(panic) => (
                abi::CALL_ERR_PANIC,
                format!("plugin panicked: {}", panic_message(&*panic)),
            ),
        };
        // Out of room even for the message: the code still says it failed.
        let _ = out.write(message.as_bytes());
        code
    }

    fn health(&mut self) -> i32 {
        match catch_unwind(AssertUnwindSafe(|| self.plugin.health(&self.host))) {
            Ok(Ok(())) => 0,
            Ok(Err(_)) | Err(_) => 1,
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "non-string panic payload"
    }
}

/// Exports a [`Plugin`](crate::Plugin) type (which must implement
/// `Default`) as a corral plugin. Built as a `cdylib` for the host it
/// exports the native C ABI entries `corral_plugin_v2_entry` (which the
/// worker takes) and `corral_plugin_v1_entry` (for older workers); built for
/// `wasm32` it exports the guest ABI (`alloc`, `dealloc`, `init`, `call`,
/// `health`, `shutdown`, `corral_abi_version`) and imports host functions
/// from module `corral`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// corral plugin ABI v1 entry point.
        #[cfg(not(target_arch = "wasm32"))]
        #[unsafe(no_mangle)]
        pub extern "C" fn corral_plugin_v1_entry() -> *const $crate::abi::PluginV1 {
            static VTABLE: $crate::abi::PluginV1 = $crate::export::vtable::<$plugin>();
            &VTABLE
        }

        /// corral plugin ABI v2 entry point.
        #[cfg(not(target_arch = "wasm32"))]
        #[unsafe(no_mangle)]
        pub extern "C" fn corral_plugin_v2_entry() -> *const $crate::abi::PluginV2 {
            static VTABLE: $crate::abi::PluginV2 = $crate::export::vtable_v2::<$plugin>();
            &VTABLE
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static SLOT: $crate::export::wasm::Slot<$plugin> = $crate::export::wasm::Slot::new();

            #[unsafe(no_mangle)]
            extern "C" fn corral_abi_version() -> u32 {
                $crate::abi::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            extern "C" fn alloc(len: usize) -> *mut u8 {
                $crate::export::wasm::alloc(len)
            }

            /// # Safety
            /// `ptr` and `len` must come from `alloc`.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
                // SAFETY: the host hands back what `alloc` (or `call`) made.
                unsafe { $crate::export::wasm::dealloc(ptr, len) }
            }

            #[unsafe(no_mangle)]
            extern "C" fn init() -> i32 {
                SLOT.init()
            }

            /// # Safety
            /// The pointers must be valid for their lengths; `out` for two
            /// `u32`s.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn call(
                method: *const u8,
                method_len: usize,
                input: *const u8,
                input_len: usize,
                out: *mut u32,
            ) -> i32 {
                // SAFETY: the host passes buffers in this module's memory.
                unsafe { SLOT.call(method, method_len, input, input_len, out) }
            }

            #[unsafe(no_mangle)]
            extern "C" fn health() -> i32 {
                SLOT.health()
            }

            #[unsafe(no_mangle)]
            extern "C" fn shutdown() {
                SLOT.shutdown()
            }
        };
    };
}
