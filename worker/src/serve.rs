//! The serve loop: one frame in, one frame out, until `Shutdown` or the
//! supervisor goes away. Calls run one at a time in arrival order; the
//! supervisor may pipeline many, and replies carry the call's id.

use crate::channel::ChannelError;
use crate::link::Link;
use crate::runtime::Runtime;
use corral_plugin_api::wire::{FromWorker, HEALTH_METHOD, Outcome, ToWorker, WireError};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::time::Duration;
use tracing::debug;

/// Serves until `Shutdown` (or end of stream), then releases the plugin.
pub(crate) fn serve(link: &Link, plugin: &mut dyn Runtime) -> Result<(), ChannelError> {
    loop {
        match link.recv()? {
            Some(ToWorker::Call(call)) if call.method == HEALTH_METHOD => {
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
            Some(ToWorker::Call(call)) => {
                let deadline = Duration::from_millis(u64::from(call.deadline_ms));
                let result =
                    link.serving(call.id, || plugin.call(&call.method, &call.input, deadline));
                let outcome = match result {
                    Ok(reply) => Outcome::Ok(reply),
                    Err(error) => Outcome::Err(error),
                };
                send_reply(link, call.id, outcome)?;
                link.serving(0, || plugin.recover());
            }
            Some(ToWorker::Ping { nonce }) => link.send(&FromWorker::Pong { nonce })?,
            Some(ToWorker::HostReply { id, .. }) => {
                debug!("host reply {id} arrived after its call ended");
            }
            Some(ToWorker::Shutdown) => {
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

fn send_reply(link: &Link, id: u64, outcome: Outcome) -> Result<(), ChannelError> {
    match link.send(&FromWorker::Reply { id, outcome }) {
        Err(ChannelError::Wire(WireError::TooLarge { len, max })) => {
            let message = format!("reply of {len} bytes exceeds the frame limit of {max} bytes");
            let outcome = Outcome::Err(RemoteError::new(ErrorKind::Plugin, message));
            link.send(&FromWorker::Reply { id, outcome })
        }
        other => other,
    }
}
