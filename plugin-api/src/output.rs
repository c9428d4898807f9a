//! [`Output`]: where a plugin writes a call's reply. On a direct channel
//! with a large reply it is shared memory that the host app reads in
//! place, so the reply is written once and never copied by corral.

use crate::error::PluginError;

/// Where [`Plugin::call_into`](crate::Plugin::call_into) writes its reply.
///
/// ```
/// use corral_plugin_api::{Host, Output, Plugin, PluginError};
///
/// #[derive(Default)]
/// struct Invert;
///
/// impl Plugin for Invert {
///     fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
///         let mut reply = Vec::new();
///         self.call_into(host, method, input, &mut Output::from(&mut reply))?;
///         Ok(reply)
///     }
///
///     fn call_into(
///         &mut self,
///         _host: &Host,
///         method: &str,
///         input: &[u8],
///         out: &mut Output<'_>,
///     ) -> Result<(), PluginError> {
///         match method {
///             "invert" => {
///                 let reply = out.reserve(input.len())?;
///                 for (to, from) in reply.iter_mut().zip(input) {
///                     *to = !from;
///                 }
///                 Ok(())
///             }
///             other => Err(PluginError::unknown_method(other)),
///         }
///     }
/// }
/// ```
pub struct Output<'a> {
    sink: Sink<'a>,
}

enum Sink<'a> {
    Vec(&'a mut Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Abi(&'a crate::abi::OutputV2),
}

impl<'a> From<&'a mut Vec<u8>> for Output<'a> {
    /// An output that fills `reply` (emptied first by each `reserve`).
    fn from(reply: &'a mut Vec<u8>) -> Self {
        Self {
            sink: Sink::Vec(reply),
        }
    }
}

impl<'a> Output<'a> {
    /// The worker's output of a v2 call.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn abi(out: &'a crate::abi::OutputV2) -> Self {
        Self {
            sink: Sink::Abi(out),
        }
    }

    /// `len` bytes that become the reply, replacing whatever an earlier
    /// `reserve` or [`write`](Self::write) of this call gave. In shared
    /// memory they may hold an earlier reply's bytes: write all of them.
    pub fn reserve(&mut self, len: usize) -> Result<&mut [u8], PluginError> {
        match &mut self.sink {
            Sink::Vec(reply) => {
                reply.clear();
                reply.resize(len, 0);
                Ok(reply.as_mut_slice())
            }
            #[cfg(not(target_arch = "wasm32"))]
            Sink::Abi(out) => {
                let ptr = (out.reserve)(out.ctx, len);
                if ptr.is_null() {
                    return Err(PluginError::new(format!(
                        "a reply of {len} bytes exceeds the frame limit"
                    )));
                }
                #[allow(unsafe_code, reason = "the worker's buffer through the C ABI")]
                // SAFETY: a non-null `reserve` result is `len` writable,
                // initialized bytes that stay valid until the call returns
                // or the next `reserve`; `&mut self` keeps this borrow the
                // only one until either.
                Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
            }
        }
    }

    /// Makes `bytes` the reply (one copy, into shared memory when the call
    /// came on a direct channel).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        match &mut self.sink {
            Sink::Vec(reply) => {
                reply.clear();
                reply.extend_from_slice(bytes);
                Ok(())
            }
            #[cfg(not(target_arch = "wasm32"))]
            Sink::Abi(_) => {
                self.reserve(bytes.len())?.copy_from_slice(bytes);
                Ok(())
            }
        }
    }
}
