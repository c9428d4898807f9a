//! The plugin side of corral: the [`Plugin`] trait a plugin implements and
//! the [`Host`] services it may use.

use crate::abi;
use crate::error::{ErrorKind, PluginError, RemoteError};
use crate::kv::{self, KvPage, KvWrite};
use crate::output::Output;

/// A corral plugin. One instance lives in its own worker process and gets
/// its calls one at a time.
///
/// ```
/// use corral_plugin_api::{export_plugin, Host, Plugin, PluginError};
///
/// #[derive(Default)]
/// struct Echo;
///
/// impl Plugin for Echo {
///     fn call(&mut self, _host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
///         match method {
///             "echo" => Ok(input.to_vec()),
///             other => Err(PluginError::unknown_method(other)),
///         }
///     }
/// }
///
/// export_plugin!(Echo);
/// ```
pub trait Plugin {
    /// Runs once after the instance is created, before the first call.
    /// An error stops the worker; the supervisor reports it.
    fn init(&mut self, host: &Host) -> Result<(), PluginError> {
        let _ = host;
        Ok(())
    }

    /// Handles one call. Unknown methods should return
    /// [`PluginError::unknown_method`].
    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError>;

    /// Handles one call, writing the reply to `out`: on a direct channel
    /// a large reply then lands in shared memory that the host app reads
    /// in place, with no copy by corral. corral calls this; the default
    /// calls [`call`](Self::call) and copies its reply once. Implement it
    /// for large replies (video frames, images), and `call` through it
    /// (see [`Output`]).
    fn call_into(
        &mut self,
        host: &Host,
        method: &str,
        input: &[u8],
        out: &mut Output<'_>,
    ) -> Result<(), PluginError> {
        let reply = self.call(host, method, input)?;
        out.write(&reply)
    }

    /// Reports whether the plugin can serve; called periodically.
    fn health(&mut self, host: &Host) -> Result<(), PluginError> {
        let _ = host;
        Ok(())
    }

    /// Receives a publication on a topic the manifest subscribes to
    /// (`[events] subscribe`). It arrives like a call (method
    /// `@event:TOPIC`), between other calls; an error is logged by the
    /// supervisor and goes nowhere else.
    fn on_event(&mut self, host: &Host, topic: &str, payload: &[u8]) -> Result<(), PluginError> {
        let _ = (host, topic, payload);
        Ok(())
    }
}

/// Severity of a [`Host::log`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
    /// Even more detail.
    Trace,
}

impl LogLevel {
    /// The level's ABI number (`LOG_*` in the C header).
    pub fn to_abi(self) -> i32 {
        match self {
            Self::Error => abi::LOG_ERROR,
            Self::Warn => abi::LOG_WARN,
            Self::Info => abi::LOG_INFO,
            Self::Debug => abi::LOG_DEBUG,
            Self::Trace => abi::LOG_TRACE,
        }
    }

    /// The level for an ABI number; unknown numbers read as `Info`.
    pub fn from_abi(level: i32) -> Self {
        match level {
            abi::LOG_ERROR => Self::Error,
            abi::LOG_WARN => Self::Warn,
            abi::LOG_DEBUG => Self::Debug,
            abi::LOG_TRACE => Self::Trace,
            _ => Self::Info,
        }
    }
}

/// The services the supervisor gives a plugin, reached through its worker.
pub struct Host {
    #[cfg(not(target_arch = "wasm32"))]
    raw: *const abi::HostV1,
}

impl Host {
    /// Wraps the host table the worker passed to `create`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_raw(raw: *const abi::HostV1) -> Self {
        Self { raw }
    }

    /// The host of a wasm guest: functions imported from module `corral`.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn wasm() -> Self {
        Self {}
    }

    /// Writes a message to the plugin's log.
    pub fn log(&self, level: LogLevel, message: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let host = self.table();
            (host.log)(
                host.ctx,
                level.to_abi(),
                abi::Bytes::new(message.as_bytes()),
            );
        }
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code, reason = "calls a host import")]
        // SAFETY: the host reads `len` bytes at `ptr` from this module's
        // memory during the call.
        unsafe {
            crate::wasm_host::imports::log(level.to_abi(), message.as_ptr(), message.len())
        }
    }

    /// Milliseconds since the Unix epoch, as the host sees it.
    pub fn now_ms(&self) -> u64 {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let host = self.table();
            (host.now_ms)(host.ctx)
        }
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code, reason = "calls a host import")]
        // SAFETY: takes no arguments.
        unsafe {
            crate::wasm_host::imports::now_ms()
        }
    }

    /// The value stored under `key` in the plugin's own storage, `None`
    /// when there is none. Needs `"kv"` in `[permissions] host`.
    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        match self.service(&format!("{}{key}", abi::OP_KV_GET), &[]) {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Stores `value` under `key`, durably (it survives worker and
    /// supervisor restarts), within the plugin's storage quota
    /// (`[limits] storage_mb`). Needs `"kv"`.
    pub fn kv_put(&self, key: &str, value: &[u8]) -> Result<(), RemoteError> {
        self.service(&format!("{}{key}", abi::OP_KV_PUT), value)
            .map(drop)
    }

    /// Removes `key`; `false` when it was not there. Needs `"kv"`.
    pub fn kv_delete(&self, key: &str) -> Result<bool, RemoteError> {
        match self.service(&format!("{}{key}", abi::OP_KV_DELETE), &[]) {
            Ok(_) => Ok(true),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The stored keys starting with `prefix`, sorted. Needs `"kv"`.
    pub fn kv_list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let keys = self.service(&format!("{}{prefix}", abi::OP_KV_LIST), &[])?;
        Ok(String::from_utf8_lossy(&keys)
            .split('\n')
            .filter(|key| !key.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// At most `limit` of the stored keys starting with `prefix`, sorted,
    /// from `start` on (inclusive; `""` = from the first), and where the
    /// next page starts. `limit` is capped at [`kv::MAX_PAGE`]. Needs
    /// `"kv"`.
    ///
    /// ```no_run
    /// # fn keys(host: &corral_plugin_api::Host) -> Result<(), corral_plugin_api::RemoteError> {
    /// let mut start = String::new();
    /// loop {
    ///     let page = host.kv_list_page("user/", &start, 100)?;
    ///     for key in &page.keys { /* ... */ }
    ///     match page.next {
    ///         Some(next) => start = next,
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn kv_list_page(
        &self,
        prefix: &str,
        start: &str,
        limit: u32,
    ) -> Result<KvPage, RemoteError> {
        let reply = self.service(
            &format!("{}{prefix}", abi::OP_KV_PAGE),
            &kv::encode_page_request(start, limit),
        )?;
        kv::decode_page(&reply).map_err(|error| RemoteError::new(ErrorKind::Protocol, error.0))
    }

    /// Applies `writes` together: after it returns, all of them are
    /// stored, durably; after an error (the quota, a bad key), none is.
    /// Deleting a missing key is not an error. Needs `"kv"`.
    pub fn kv_batch(&self, writes: &[KvWrite<'_>]) -> Result<(), RemoteError> {
        self.service(abi::OP_KV_BATCH, &kv::encode_batch(writes))
            .map(drop)
    }

    /// Publishes `payload` on `topic` to every subscriber (plugins whose
    /// manifest subscribes to it, host apps), except this plugin. Returns
    /// once it is queued for them. Needs `"publish"`.
    pub fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), RemoteError> {
        self.service(&format!("{}{topic}", abi::OP_PUBLISH), payload)
            .map(drop)
    }

    /// Calls `method` of `plugin`, which must be one of this plugin's
    /// `[dependencies]`, within what is left of the current call's
    /// deadline. Needs `"call:PLUGIN"`. A call that would come back to a
    /// plugin already waiting in the chain (a calls b calls a) fails at
    /// once instead of deadlocking.
    pub fn call(&self, plugin: &str, method: &str, input: &[u8]) -> Result<Vec<u8>, RemoteError> {
        self.service(&format!("{}{plugin}/{method}", abi::OP_CALL), input)
    }

    /// The plugin's settings as TOML text: its manifest's `[config]`
    /// defaults with the admin's overrides from corral.toml
    /// (`[plugins.NAME.config]`) applied. Empty when it has no
    /// `[config]`. Always allowed; a changed override reloads the plugin,
    /// so reading it in [`Plugin::init`] is enough.
    pub fn config_toml(&self) -> Result<String, RemoteError> {
        let text = self.service(abi::OP_CONFIG, &[])?;
        String::from_utf8(text)
            .map_err(|_| RemoteError::new(ErrorKind::Protocol, "the config is not UTF-8"))
    }

    /// The plugin's settings ([`config_toml`](Self::config_toml)) read
    /// into `T`, typically a `#[derive(Deserialize)]` struct with the same
    /// keys as the manifest's `[config]`.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        let text = self.config_toml()?;
        toml::from_str(&text).map_err(|error| PluginError::new(format!("[config]: {error}")))
    }

    /// One host service call: `op` names the service and its argument.
    fn service(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RemoteError> {
        #[cfg(not(target_arch = "wasm32"))]
        let (code, bytes) = {
            let host = self.table();
            let mut out = abi::Owned::EMPTY;
            let code = (host.call)(
                host.ctx,
                abi::Bytes::new(op.as_bytes()),
                abi::Bytes::new(input),
                &mut out,
            );
            #[allow(unsafe_code, reason = "takes the host's reply buffer")]
            // SAFETY: `out` was filled by the host's `call` (or is empty);
            // it is read once, then released through the host.
            let bytes = unsafe {
                abi::Bytes {
                    ptr: out.ptr,
                    len: out.len,
                }
                .as_slice()
                .to_vec()
            };
            (host.free_owned)(host.ctx, out);
            (code, bytes)
        };
        #[cfg(target_arch = "wasm32")]
        let (code, bytes) = crate::wasm_host::host_call(op, input);
        if code == abi::CALL_OK {
            Ok(bytes)
        } else {
            Err(RemoteError::new(
                ErrorKind::from_code(code),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[allow(
        unsafe_code,
        reason = "dereferences the host table handed over the ABI"
    )]
    fn table(&self) -> &abi::HostV1 {
        // SAFETY: the worker passes a valid host table to `create` and keeps
        // it alive until `destroy`; a `Host` lives inside the instance, so it
        // never outlives the table.
        unsafe { &*self.raw }
    }
}
