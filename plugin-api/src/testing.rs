//! Unit-testing a plugin without a supervisor: a [`TestHost`] gives the
//! plugin a [`Host`] whose log goes to stderr, whose settings
//! ([`Host::config`]) are what the test says, whose storage (`kv_*`,
//! paged lists and batches included) is kept in memory, and whose other
//! services (publish, calls into other plugins) answer `unavailable`.
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
use crate::kv::{self, KvPage, KvWrite};
use crate::{ErrorKind, Host, LogLevel};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// A host for a plugin under test.
pub struct TestHost {
    table: Box<HostV1>,
    /// What `ctx` points to.
    state: Box<State>,
}

/// The plugin's settings and storage, at an address that stays put.
struct State {
    toml: String,
    kv: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// A host service's answer: a reply, or an error kind and message.
type Answer = Result<Vec<u8>, (ErrorKind, String)>;

impl TestHost {
    /// A host whose plugin has no settings.
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A host whose plugin's settings are `toml` (as the supervisor would
    /// pass the effective `[config]`).
    pub fn with_config(toml: &str) -> Self {
        let state = Box::new(State {
            toml: toml.to_owned(),
            kv: Mutex::default(),
        });
        let table = Box::new(HostV1 {
            ctx: std::ptr::from_ref::<State>(&state).cast_mut().cast(),
            log,
            now_ms,
            call,
            free_owned,
        });
        Self { table, state }
    }

    /// What the plugin has stored, key by key.
    pub fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.store().clone()
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

extern "C" fn call(ctx: *mut c_void, op: Bytes, input: Bytes, out: *mut Owned) -> i32 {
    // SAFETY: `ctx` is the state the `TestHost` owns, alive while its
    // `run` lends the host out.
    let state = unsafe { &*ctx.cast_const().cast::<State>() };
    // SAFETY: the plugin passes buffers valid for the duration of the call.
    let (op, input) = unsafe { (op.as_slice(), input.as_slice()) };
    let op = String::from_utf8_lossy(op);
    let (code, bytes) = match state.serve(&op, input) {
        Ok(reply) => (abi::CALL_OK, reply),
        Err((kind, message)) => (kind.code(), message.into_bytes()),
    };
    if !out.is_null() {
        // SAFETY: `out` is non-null and points to the plugin's out-parameter.
        unsafe { out.write(Owned::from_vec(bytes)) };
    }
    code
}

impl State {
    fn store(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.kv.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers host service `op` as the supervisor would, storage in
    /// memory and without a quota.
    fn serve(&self, op: &str, input: &[u8]) -> Answer {
        let bad = |problem: &str| (ErrorKind::BadRequest, format!("{op}: {problem}"));
        let key = |key: &str| kv::check_key(key).map_err(&bad);
        let missing = |key: &str| (ErrorKind::NotFound, format!("no key {key:?}"));
        let mut store = self.store();
        if op == abi::OP_CONFIG {
            Ok(self.toml.as_bytes().to_vec())
        } else if let Some(k) = op.strip_prefix(abi::OP_KV_GET) {
            store.get(k).cloned().ok_or_else(|| missing(k))
        } else if let Some(k) = op.strip_prefix(abi::OP_KV_PUT) {
            key(k)?;
            store.insert(k.to_owned(), input.to_vec());
            Ok(Vec::new())
        } else if let Some(k) = op.strip_prefix(abi::OP_KV_DELETE) {
            store
                .remove(k)
                .map(|_| Vec::new())
                .ok_or_else(|| missing(k))
        } else if let Some(prefix) = op.strip_prefix(abi::OP_KV_LIST) {
            let keys: Vec<&str> = store
                .keys()
                .filter(|k| k.starts_with(prefix))
                .map(String::as_str)
                .collect();
            Ok(keys.join("\n").into_bytes())
        } else if let Some(prefix) = op.strip_prefix(abi::OP_KV_PAGE) {
            let (start, limit) = kv::decode_page_request(input).map_err(|e| bad(e.0))?;
            if limit == 0 {
                return Err(bad("a page holds at least one key"));
            }
            let limit = usize::try_from(limit.min(kv::MAX_PAGE)).unwrap_or(usize::MAX);
            let mut keys: Vec<String> = store
                .range::<str, _>((
                    std::ops::Bound::Included(start.max(prefix)),
                    std::ops::Bound::Unbounded,
                ))
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(prefix))
                .take(limit + 1)
                .cloned()
                .collect();
            let next = (keys.len() > limit).then(|| keys.remove(limit));
            Ok(kv::encode_page(&KvPage { keys, next }))
        } else if op == abi::OP_KV_BATCH {
            let writes = kv::decode_batch(input).map_err(|e| bad(e.0))?;
            for write in &writes {
                key(write.key())?;
            }
            for write in writes {
                match write {
                    KvWrite::Put(k, value) => store.insert(k.to_owned(), value.to_vec()),
                    KvWrite::Delete(k) => store.remove(k),
                };
            }
            Ok(Vec::new())
        } else {
            Err((
                ErrorKind::Unavailable,
                format!("host service `{op}` is not available under a TestHost"),
            ))
        }
    }
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
            let error = host.publish("topic", b"x").unwrap_err();
            assert_eq!(error.kind, ErrorKind::Unavailable);
            assert!(error.message.contains("TestHost"), "{error:?}");
            assert!(host.now_ms() > 1_600_000_000_000);
            host.log(LogLevel::Info, "logged to stderr");
        });
        TestHost::new().run(|host| assert_eq!(host.config_toml().unwrap(), ""));
    }

    #[test]
    fn storage_pages_and_batches_in_memory() {
        let test = TestHost::new();
        test.run(|host| {
            assert_eq!(host.kv_get("a").unwrap(), None);
            for key in ["u/3", "u/1", "u/2", "v/1"] {
                host.kv_put(key, key.as_bytes()).unwrap();
            }
            assert!(host.kv_delete("v/1").unwrap());
            assert!(!host.kv_delete("v/1").unwrap());
            assert_eq!(host.kv_list("u/").unwrap(), ["u/1", "u/2", "u/3"]);
            let page = host.kv_list_page("u/", "", 2).unwrap();
            assert_eq!(
                (page.keys, page.next.as_deref()),
                (vec!["u/1".to_owned(), "u/2".to_owned()], Some("u/3"))
            );
            let last = host.kv_list_page("u/", "u/3", 2).unwrap();
            assert_eq!((last.keys, last.next), (vec!["u/3".to_owned()], None));
            assert_eq!(
                host.kv_list_page("u/", "", 0).unwrap_err().kind,
                ErrorKind::BadRequest
            );
            host.kv_batch(&[
                KvWrite::Put("b", b"1"),
                KvWrite::Delete("u/1"),
                KvWrite::Delete("none"),
            ])
            .unwrap();
            let error = host
                .kv_batch(&[KvWrite::Delete("b"), KvWrite::Put("bad\nkey", b"")])
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::BadRequest);
        });
        let stored: Vec<String> = test.stored().into_keys().collect();
        assert_eq!(stored, ["b", "u/2", "u/3"]);
    }
}
