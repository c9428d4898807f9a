//! The serve loop: one frame in, one frame out, until `Shutdown` or the
//! supervisor goes away. Calls run one at a time in arrival order; the
//! supervisor may pipeline many, and replies carry the call's id.

use crate::channel::ChannelError;
use crate::link::Link;
use crate::runtime::Runtime;
use corral_plugin_api::wire::{
    Fault, FromWorker, HEALTH_METHOD, Mapping, Outcome, SharedBytes, ToWorker, WireError,
    share_large,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::time::Duration;
use tracing::debug;

/// Allocates and touches memory until an allocation fails, which aborts
/// the process: the fault a test injects to see the memory limit at work.
fn fill_memory() -> ! {
    tracing::warn!("fault injected: filling memory");
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![0x5a; 1 << 20]);
    }
}

/// Serves until `Shutdown` (or end of stream), then releases the plugin.
pub(crate) fn serve(link: &Link, plugin: &mut dyn Runtime) -> Result<(), ChannelError> {
    let mut crash_on_next_call = false;
    loop {
        match link.recv()? {
            Some((ToWorker::Call(call), _)) if crash_on_next_call => {
                tracing::warn!("fault injected: aborting at call {}", call.id);
                std::process::abort();
            }
            Some((ToWorker::Call(call), _)) if call.method == HEALTH_METHOD => {
                let outcome = if link.serving(call.id, || plugin.health()) {
                    Outcome::Ok(b"healthy".to_vec())
                } else {
                    Outcome::Err(RemoteError::new(
                        ErrorKind::Plugin,
                        "the plugin reports itself unhealthy",
                    ))
                };
                send_reply(link, call.id, outcome)?;
                link.serving(0, || plugin.recover());
            }
            Some((ToWorker::Call(call), shared)) => {
                let deadline = Duration::from_millis(u64::from(call.deadline_ms));
                let input = match shared.as_ref().map(SharedBytes::map).transpose() {
                    Ok(mapped) => Input(mapped, call.input),
                    Err(error) => {
                        let message = format!("cannot map the call's shared input: {error}");
                        let outcome =
                            Outcome::Err(RemoteError::new(ErrorKind::Unavailable, message));
                        send_reply(link, call.id, outcome)?;
                        continue;
                    }
                };
                let result = link.serving(call.id, || {
                    plugin.call(&call.method, input.bytes(), deadline)
                });
                drop(input);
                let outcome = match result {
                    Ok(reply) => Outcome::Ok(reply),
                    Err(error) => Outcome::Err(error),
                };
                send_reply(link, call.id, outcome)?;
                link.serving(0, || plugin.recover());
            }
            Some((ToWorker::Ping { nonce }, _)) => link.send(&FromWorker::Pong { nonce })?,
            Some((ToWorker::HostReply { id, .. }, _)) => {
                debug!("host reply {id} arrived after its call ended");
            }
            Some((ToWorker::Activate, _)) => debug!("Activate, but this worker is no spare"),
            Some((ToWorker::Fault(Fault::CrashOnNextCall), _)) => crash_on_next_call = true,
            Some((ToWorker::Fault(Fault::FillMemory), _)) => fill_memory(),
            Some((ToWorker::Shutdown, _)) => {
                debug!("shutdown requested");
                return Ok(());
            }
            None => {
                debug!("supervisor closed the channel");
                return Ok(());
            }
        }
    }
}

/// A call's input: the mapped shared payload, or the frame's bytes.
struct Input(Option<Mapping>, Vec<u8>);

impl Input {
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Some(mapped) => mapped,
            None => &self.1,
        }
    }
}

/// Sends a call's reply; a large reply goes in a sealed memfd.
fn send_reply(link: &Link, id: u64, outcome: Outcome) -> Result<(), ChannelError> {
    let (outcome, shared) = match outcome {
        Outcome::Ok(bytes) => {
            let (bytes, shared) = share_large(bytes);
            (Outcome::Ok(bytes), shared)
        }
        outcome => (outcome, None),
    };
    match link.send_shared(&FromWorker::Reply { id, outcome }, shared.as_ref()) {
        Err(ChannelError::Wire(WireError::TooLarge { len, max })) => {
            let message = format!("reply of {len} bytes exceeds the frame limit of {max} bytes");
            let outcome = Outcome::Err(RemoteError::new(ErrorKind::Plugin, message));
            link.send(&FromWorker::Reply { id, outcome })
        }
        other => other,
    }
}
