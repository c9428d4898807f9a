//! Unit-testing a plugin without a supervisor: a [`TestHost`] gives the
//! plugin a [`Host`] whose log goes to stderr, whose settings
//! ([`Host::config`]) are what the test says, and whose other services
//! answer `unavailable`.
//!
//! ```
//! use corral_plugin_api::testing::TestHost;
//! use corral_plugin_api::{Host, Plugin, PluginError};
//!
//! #[derive(Default)]
//! struct Greeter { greeting: String }
//!
//! impl Plugin for Greeter {
//!     fn init(&mut self, host: &Host) -> Result<(), PluginError> {
//!         #[derive(serde::Deserialize)]
//!         struct Settings { greeting: String }
//!         self.greeting = host.config::<Settings>()?.greeting;
//!         Ok(())
//!     }
//!     fn call(&mut self, _host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
//!         match method {
//!             "greet" => Ok(format!("{}, {}!", self.greeting, String::from_utf8_lossy(input)).into_bytes()),
//!             other => Err(PluginError::unknown_method(other)),
//!         }
//!     }
//! }
//!
//! let mut plugin = Greeter::default();
//! TestHost::with_config("greeting = \"Hi\"").run(|host| {
//!     plugin.init(host).unwrap();
//!     assert_eq!(plugin.call(host, "greet", b"corral").unwrap(), b"Hi, corral!");
//! });
//! ```
#![allow(unsafe_code, reason = "implements the host side of the C ABI")]
#![allow(
    clippy::print_stderr,
    reason = "a test host's log is the test's stderr"
)]

use crate::abi::{self, Bytes, HostV1, Owned};
use crate::{ErrorKind, Host, LogLevel};
use std::ffi::c_void;
use std::time::{SystemTime, UNIX_EPOCH};

/// A host for a plugin under test.
pub struct TestHost {
    table: Box<HostV1>,
    /// What `ctx` points to.
    _settings: Box<Settings>,
}

/// The plugin's settings, at an address that stays put.
struct Settings {
    toml: String,
}

impl TestHost {
    /// A host whose plugin has no settings.
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A host whose plugin's settings are `toml` (as the supervisor would
    /// pass the effective `[config]`).
    pub fn with_config(toml: &str) -> Self {
        let settings = Box::new(Settings {
            toml: toml.to_owned(),
        });
        let table = Box::new(HostV1 {
            ctx: std::ptr::from_ref::<Settings>(&settings).cast_mut().cast(),
            log,
            now_ms,
            call,
            free_owned,
        });
        Self {
            table,
            _settings: settings,
        }
    }

    /// Runs `test` with this host: pass it to the plugin's methods.
    pub fn run<R>(&self, test: impl FnOnce(&Host) -> R) -> R {
        let host = Host::from_raw(&*self.table);
        test(&host)
    }
}

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

extern "C" fn log(_ctx: *mut c_void, level: i32, message: Bytes) {
    // SAFETY: the plugin passes a buffer valid for the duration of the call.
    let message = String::from_utf8_lossy(unsafe { message.as_slice() });
    eprintln!("[{:?}] {message}", LogLevel::from_abi(level));
}

extern "C" fn now_ms(_ctx: *mut c_void) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

extern "C" fn call(ctx: *mut c_void, op: Bytes, _input: Bytes, out: *mut Owned) -> i32 {
    // SAFETY: `ctx` is the settings the `TestHost` owns, alive while its
    // `run` lends the host out.
    let settings = unsafe { &*ctx.cast_const().cast::<Settings>() };
    // SAFETY: the plugin passes a buffer valid for the duration of the call.
    let op = String::from_utf8_lossy(unsafe { op.as_slice() });
    let (code, bytes) = if op == abi::OP_CONFIG {
        (abi::CALL_OK, settings.toml.as_bytes().to_vec())
    } else {
        let message = format!("host service `{op}` is not available under a TestHost");
        (ErrorKind::Unavailable.code(), message.into_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_served_and_other_services_are_unavailable() {
        TestHost::with_config("k = 1").run(|host| {
            assert_eq!(host.config_toml().unwrap(), "k = 1");
            let error = host.kv_get("x").unwrap_err();
            assert_eq!(error.kind, ErrorKind::Unavailable);
            assert!(error.message.contains("TestHost"), "{error:?}");
            assert!(host.now_ms() > 1_600_000_000_000);
            host.log(LogLevel::Info, "logged to stderr");
        });
        TestHost::new().run(|host| assert_eq!(host.config_toml().unwrap(), ""));
    }
}
