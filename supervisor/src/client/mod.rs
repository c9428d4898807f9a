//! The Rust client for host apps: [`Client`] (async, tokio) and
//! [`blocking::Client`], the same requests over one connection each.
//!
//! Layer: may import `transport` only: a host app's client knows nothing
//! of the supervisor's insides.

mod arena;
pub(crate) mod async_client;
pub mod blocking;
mod blocking_direct;
mod direct;
pub(crate) mod requests;

pub use arena::ReplyView;
pub use async_client::{Client, EventStream, Subscription};
pub use requests::{ClientError, DEFAULT_CALL_TIMEOUT};

/// Locks `mutex`, taking it even when poisoned: a caller that panicked
/// while holding it does not stop the client's other calls.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
