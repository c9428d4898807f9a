//! The first frames: `Hello` from the supervisor, `Ready` or `Failed` back.

use crate::channel::{Channel, ChannelError};
use crate::link::Link;
use corral_plugin_api::wire::{self, FromWorker, Hello, Layer, PROTOCOL_VERSION, Ready, ToWorker};

/// The handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error(
        "supervisor speaks protocol {theirs}, this worker speaks {PROTOCOL_VERSION}: run the corral-worker built with this corral"
    )]
    ProtocolMismatch { theirs: u32 },
    #[error("bad hello from the supervisor: {0}")]
    BadHello(wire::WireError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Reads `Hello`; `None` when the supervisor closed the channel first.
pub(crate) fn receive_hello(channel: &mut Channel) -> Result<Option<Hello>, HandshakeError> {
    let Some(frame) = channel.recv_frame()? else {
        return Ok(None);
    };
    let body = channel.body(&frame);
    let hello: Hello = match wire::decode_body(body) {
        Ok(hello) => hello,
        Err(error) => {
            return Err(match wire::decode_prefix::<u32>(body) {
                Some(theirs) if theirs != PROTOCOL_VERSION => {
                    HandshakeError::ProtocolMismatch { theirs }
                }
                _ => HandshakeError::BadHello(error),
            });
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::ProtocolMismatch {
            theirs: hello.protocol,
        });
    }
    channel.set_max_frame(hello.max_frame);
    Ok(Some(hello))
}

/// Tells the supervisor the plugin is loaded.
pub(crate) fn send_ready(
    link: &Link,
    hello: &Hello,
    layers: Vec<Layer>,
) -> Result<(), ChannelError> {
    link.send(&FromWorker::Ready(Ready {
        protocol: PROTOCOL_VERSION,
        plugin: hello.plugin.clone(),
        version: hello.version.clone(),
        layers,
    }))
}

/// Tells the supervisor why the plugin cannot start.
pub(crate) fn send_failed(link: &Link, message: &str) -> Result<(), ChannelError> {
    link.send(&FromWorker::Failed {
        message: message.to_owned(),
    })
}

/// A spare's wait: tells the supervisor the sandbox is in force, then
/// waits for `Activate` (true) or the end of the channel (false: the spare
/// was discarded).
pub(crate) fn stand_by(link: &Link) -> Result<bool, ChannelError> {
    link.send(&FromWorker::Standby)?;
    match link.recv()? {
        Some((ToWorker::Activate, _)) => Ok(true),
        None => Ok(false),
        Some((other, _)) => Err(ChannelError::Wire(wire::WireError::Decode(format!(
            "a spare expects Activate, got {other:?}"
        )))),
    }
}
