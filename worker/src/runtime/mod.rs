//! Plugin runtimes: how the worker loads a plugin and calls into it.

pub(crate) mod native;

/// The plugin could not be loaded or initialized.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot load {path}: {source}")]
    Open {
        path: String,
        source: libloading::Error,
    },
    #[error(
        "{path} is not a corral plugin: it does not export `corral_plugin_v1_entry` (use export_plugin! or include corral_plugin.h)"
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
    #[error("kind = \"wasm\" is not supported by this worker yet")]
    WasmUnsupported,
}
