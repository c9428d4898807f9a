//! Plugin runtimes: how the worker loads a plugin and calls into it. One
//! trait, three implementations: native libraries, wasm modules and
//! JavaScript modules.

pub(crate) mod js;
pub(crate) mod native;
mod wasi;
pub(crate) mod wasm;

use crate::link::Link;
use crate::reply::ReplyBuf;
use corral_plugin_api::wire::{Hello, PluginKind};
use corral_plugin_api::{ErrorKind, RemoteError, abi};
use std::sync::Arc;
use std::time::Duration;

/// A loaded plugin the serve loop calls.
pub(crate) trait Runtime {
    /// Calls `method` with `input`, the reply going to `out`; `deadline`
    /// is the time the caller allows (a runtime that can stop a call
    /// enforces it).
    fn call(
        &mut self,
        method: &str,
        input: &[u8],
        deadline: Duration,
        out: &mut ReplyBuf<'_>,
    ) -> Result<(), RemoteError>;

    /// The plugin's own health check: `true` when healthy.
    fn health(&mut self) -> bool;

    /// Housekeeping between calls, after a reply is sent.
    fn recover(&mut self) {}

    /// An address in the plugin's own machine code (native plugins), for
    /// the crash handler to find its library.
    fn code_address(&self) -> Option<usize> {
        None
    }
}

/// Loads the plugin a `Hello` names.
pub(crate) type Loader = fn(&Hello, &Arc<Link>) -> Result<Box<dyn Runtime>, LoadError>;

/// The plugin runtimes a worker binary carries. `corral-worker` has
/// [`ALL`]; `corral-worker-native` has [`NATIVE`], and since nothing it
/// runs refers to the wasm runtime, the linker leaves wasmtime out of it.
#[derive(Clone, Copy)]
pub(crate) struct Runtimes {
    /// Loads the plugin a `Hello` names; its host services go over the link.
    pub(crate) load: Loader,
    /// Prepares, in a zygote, what every worker it forks shares.
    pub(crate) prepare: fn(),
}

/// Native libraries, wasm modules and JavaScript.
pub(crate) const ALL: Runtimes = Runtimes {
    load: |hello, link| {
        Ok(match hello.kind {
            PluginKind::Native => Box::new(native::NativePlugin::load(hello, link)?),
            PluginKind::Wasm => Box::new(wasm::WasmPlugin::load(hello, link.clone())?),
            PluginKind::Js => Box::new(js::JsPlugin::load(hello, link.clone())?),
        })
    },
    prepare: wasm::prepare,
};

/// Native libraries only.
pub(crate) const NATIVE: Runtimes = Runtimes {
    load: |hello, link| match hello.kind {
        PluginKind::Native => Ok(Box::new(native::NativePlugin::load(hello, link)?)),
        PluginKind::Wasm | PluginKind::Js => Err(LoadError::NoRuntime {
            path: hello.entry.clone(),
        }),
    },
    prepare: || {},
};

/// A call's result from its ABI code, `out` holding the reply or, on
/// failure, a UTF-8 message (taken out).
pub(crate) fn outcome(code: i32, out: &mut ReplyBuf<'_>) -> Result<(), RemoteError> {
    match code {
        abi::CALL_OK => Ok(()),
        abi::CALL_ERR_UNKNOWN_METHOD => Err(RemoteError::new(
            ErrorKind::UnknownMethod,
            out.take_message(),
        )),
        _ => Err(RemoteError::new(ErrorKind::Plugin, out.take_message())),
    }
}

/// The plugin's entry file: from the fd the supervisor passed (opened and
/// checked by it), or by its path.
pub(crate) fn read_entry(hello: &Hello) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut bytes = Vec::new();
    let read = match hello.entry_fd {
        Some(fd) => {
            #[allow(unsafe_code, reason = "adopts the entry fd the supervisor passed")]
            // SAFETY: the supervisor passes the entry open on this fd for
            // the worker alone; reading it once consumes nothing else.
            let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
            file.read_to_end(&mut bytes)
        }
        None => std::fs::File::open(&hello.entry).and_then(|mut file| file.read_to_end(&mut bytes)),
    };
    read.map_err(|source| LoadError::Read {
        path: hello.entry.clone(),
        source,
    })?;
    Ok(bytes)
}

/// How long a runtime that can stop a call lets it run: less than the
/// caller's `deadline` (by a fifth, at least 100 ms), so that the caller
/// gets this worker's timeout error before the supervisor's deadline
/// kills the worker, and the worker lives.
pub(crate) fn stop_within(deadline: Duration) -> Duration {
    deadline.saturating_sub((deadline / 5).max(Duration::from_millis(100)))
}

/// A reply over the frame limit.
pub(crate) fn too_large(len: usize) -> RemoteError {
    RemoteError::new(
        ErrorKind::Plugin,
        format!("a reply of {len} bytes exceeds the frame limit"),
    )
}

/// The plugin could not be loaded or initialized.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot load {path}: {source}")]
    Open {
        path: String,
        source: libloading::Error,
    },
    #[error(
        "{path} is not a corral plugin: it exports neither `corral_plugin_v2_entry` nor `corral_plugin_v1_entry` (use export_plugin! or include corral_plugin.h)"
    )]
    MissingEntry { path: String },
    #[error(
        "{path} speaks plugin ABI {found}, this worker speaks ABI {expected}: rebuild the plugin against this corral-plugin-api"
    )]
    AbiMismatch {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("{path}: the plugin table has a null `{function}`")]
    NullFunction {
        path: String,
        function: &'static str,
    },
    #[error("{path}: plugin init failed (create returned NULL; see the plugin's log)")]
    InitFailed { path: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Wasm { path: String, message: String },
    #[error("{path}: {message}")]
    Js { path: String, message: String },
    #[error(
        "{path}: corral-worker-native has only the native runtime; wasm and JavaScript plugins run in corral-worker"
    )]
    NoRuntime { path: String },
}
