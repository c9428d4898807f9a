//! The first frames: `Hello` from the supervisor, `Ready` or `Failed` back.

use crate::channel::{Channel, ChannelError};
use crate::link::Link;
use corral_plugin_api::wire::{
    self, FromWorker, Hello, Layer, PROTOCOL_VERSION, Ready, StatsPage, ToWorker,
};

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

/// Reads `Hello` and the stats page that comes with it (when it maps);
/// `None` when the supervisor closed the channel first.
pub(crate) fn receive_hello(
    channel: &mut Channel,
) -> Result<Option<(Hello, Option<StatsPage>)>, HandshakeError> {
    let Some(mut frame) = channel.recv_frame()? else {
        return Ok(None);
    };
    let stats = frame.fd.take().and_then(|fd| match StatsPage::adopt(&fd) {
        Ok(page) => Some(page),
        Err(error) => {
            tracing::warn!("no stats page, direct calls go uncounted: {error}");
            None
        }
    });
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
    Ok(Some((hello, stats)))
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
    match link.recv()?.map(|received| received.message) {
        Some(ToWorker::Activate) => Ok(true),
        None => Ok(false),
        Some(other) => Err(ChannelError::Wire(wire::WireError::Decode(format!(
            "a spare expects Activate, got {other:?}"
        )))),
    }
}
