//! What both clients share: what each request is and how its answer is
//! read ([`Op`]), the handshake, shared payloads, and the client's error.
//! The async and the blocking client differ only in how they send a
//! request and wait for its reply.

use crate::client::arena::{ClientArenas, Payload, ReplyView};
use corral_plugin_api::wire::{
    self, Action, Call, CallFrame, ClientHello, CrashReport, CrashSummary, Event, Fault,
    FromWorker, KvAnswer, KvRequest, Outcome, PROTOCOL_VERSION, PluginDetails, PluginInfo, Reply,
    RequestBody, Response, ServerHello, SharedBytes, Slot, ToWorker, WireError, share_large,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// The deadline a call gets unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time the client waits beyond a call's deadline for the
/// supervisor's own timeout answer.
pub(crate) const TIMEOUT_SLACK: Duration = Duration::from_secs(1);

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to corral at {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The supervisor does not speak this client's protocol.
    #[error("handshake with corral failed: {0}")]
    Handshake(String),
    /// A frame could not be sent or read.
    #[error("connection to corral failed: {0}")]
    Wire(#[from] WireError),
    /// The supervisor or the plugin answered with an error.
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The connection closed with requests in flight.
    #[error("corral closed the connection")]
    Disconnected,
}

impl ClientError {
    /// The remote error kind, when the supervisor or plugin answered with
    /// an error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Remote(error) => Some(error.kind),
            _ => None,
        }
    }
}

/// One request with one answer: what to send, how long to wait, and how
/// to read the reply.
pub(crate) struct Op<T> {
    pub(crate) body: RequestBody,
    pub(crate) wait: Duration,
    pub(crate) read: fn(Reply) -> Result<T, ClientError>,
}

/// A call of `method` of `plugin`, which the supervisor fails after
/// `timeout`.
pub(crate) fn call(plugin: &str, method: &str, input: Vec<u8>, timeout: Duration) -> Op<Vec<u8>> {
    Op {
        body: RequestBody::Call {
            plugin: plugin.to_owned(),
            method: method.to_owned(),
            input,
            timeout_ms: timeout_ms(timeout),
        },
        wait: timeout + TIMEOUT_SLACK,
        read: |reply| match reply {
            Reply::Called(bytes) => Ok(bytes),
            other => Err(unexpected(&other)),
        },
    }
}

/// Every plugin's status.
pub(crate) fn list() -> Op<Vec<PluginInfo>> {
    Op {
        body: RequestBody::List,
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Plugins(plugins) => Ok(plugins),
            other => Err(unexpected(&other)),
        },
    }
}

/// Of `plugins`, those that provide extension point `point`.
pub(crate) fn providing(mut plugins: Vec<PluginInfo>, point: &str) -> Vec<PluginInfo> {
    plugins.retain(|plugin| plugin.provides.iter().any(|p| p == point));
    plugins
}

/// Everything about one plugin.
pub(crate) fn inspect(plugin: &str) -> Op<PluginDetails> {
    Op {
        body: RequestBody::Inspect {
            plugin: plugin.to_owned(),
        },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Inspected(details) => Ok(*details),
            other => Err(unexpected(&other)),
        },
    }
}

/// The events numbered above `after`.
pub(crate) fn events(after: u64) -> Op<Vec<Event>> {
    Op {
        body: RequestBody::Events { after },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Events(events) => Ok(events),
            other => Err(unexpected(&other)),
        },
    }
}

/// The crash reports, newest first (`plugin`'s only when given).
pub(crate) fn crashes(plugin: Option<&str>) -> Op<Vec<CrashSummary>> {
    Op {
        body: RequestBody::Crashes {
            plugin: plugin.map(str::to_owned),
        },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Crashes(crashes) => Ok(crashes),
            other => Err(unexpected(&other)),
        },
    }
}

/// The crash report `id`.
pub(crate) fn crash(id: &str) -> Op<CrashReport> {
    Op {
        body: RequestBody::Crash { id: id.to_owned() },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Crash(report) => Ok(*report),
            other => Err(unexpected(&other)),
        },
    }
}

/// An admin's storage request on `plugin`.
pub(crate) fn kv(plugin: &str, request: KvRequest) -> Op<KvAnswer> {
    Op {
        body: RequestBody::Kv {
            plugin: plugin.to_owned(),
            request,
        },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Kv(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        },
    }
}

/// A signal to `plugin`'s worker process group.
pub(crate) fn kill(plugin: &str, signal: i32) -> Op<PluginInfo> {
    let body = RequestBody::Kill {
        plugin: plugin.to_owned(),
        signal,
    };
    controls(body, DEFAULT_CALL_TIMEOUT)
}

/// A fault for `plugin`'s serving worker.
pub(crate) fn inject(plugin: &str, fault: Fault) -> Op<PluginInfo> {
    let body = RequestBody::Fault {
        plugin: plugin.to_owned(),
        fault,
    };
    controls(body, DEFAULT_CALL_TIMEOUT)
}

/// An admin action on `plugin`, waited for up to `wait`.
pub(crate) fn control(plugin: &str, action: Action, wait: Duration) -> Op<PluginInfo> {
    let body = RequestBody::Control {
        plugin: plugin.to_owned(),
        action,
    };
    controls(body, wait)
}

/// A publication of `payload` on `topic`.
pub(crate) fn publish(topic: &str, payload: Vec<u8>) -> Op<u32> {
    Op {
        body: RequestBody::Publish {
            topic: topic.to_owned(),
            payload,
        },
        wait: DEFAULT_CALL_TIMEOUT,
        read: |reply| match reply {
            Reply::Published(count) => Ok(count),
            other => Err(unexpected(&other)),
        },
    }
}

/// A request answered with a plugin's status once it has settled.
fn controls(body: RequestBody, wait: Duration) -> Op<PluginInfo> {
    Op {
        body,
        wait,
        read: controlled,
    }
}

pub(crate) fn client_hello() -> ClientHello {
    ClientHello {
        protocol: PROTOCOL_VERSION,
        client: format!("corral-client {}", env!("CARGO_PKG_VERSION")),
        shared_payloads: true,
    }
}

/// Moves a large call input into a sealed memfd sent beside the request
/// (one copy here, none in the supervisor, none into the plugin).
pub(crate) fn share_input(body: RequestBody) -> (RequestBody, Option<SharedBytes>) {
    match body {
        RequestBody::Call {
            plugin,
            method,
            input,
            timeout_ms,
        } => {
            let (input, shared) = share_large(input);
            let body = RequestBody::Call {
                plugin,
                method,
                input,
                timeout_ms,
            };
            (body, shared)
        }
        body => (body, None),
    }
}

/// Puts a reply's shared payload back in the reply: only a call's reply
/// comes that way.
pub(crate) fn with_shared_reply(
    response: Response,
    shared: Option<SharedBytes>,
) -> Result<Response, WireError> {
    let Some(shared) = shared else {
        return Ok(response);
    };
    match response.reply {
        Reply::Called(bytes) if bytes.is_empty() => Ok(Response {
            id: response.id,
            reply: Reply::Called(shared.to_vec()?),
        }),
        _ => Err(WireError::Attachment(
            "a shared payload with a reply that is not a call's".into(),
        )),
    }
}

/// Checks the supervisor's hello; returns its version.
pub(crate) fn check_server_hello(body: &[u8]) -> Result<String, ClientError> {
    match wire::decode_body::<ServerHello>(body) {
        Ok(hello) if hello.protocol == PROTOCOL_VERSION => Ok(hello.server),
        Ok(hello) => Err(ClientError::Handshake(format!(
            "corral {} speaks protocol {}, this client speaks {PROTOCOL_VERSION}",
            hello.server, hello.protocol
        ))),
        Err(error) => Err(ClientError::Handshake(
            match wire::decode_prefix::<u32>(body) {
                Some(theirs) if theirs != PROTOCOL_VERSION => {
                    format!(
                        "corral speaks protocol {theirs}, this client speaks {PROTOCOL_VERSION}"
                    )
                }
                _ => format!("bad hello from corral: {error}"),
            },
        )),
    }
}

pub(crate) fn timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The plugin status an admin action answers with.
pub(crate) fn controlled(reply: Reply) -> Result<PluginInfo, ClientError> {
    match reply {
        Reply::Controlled(info) => Ok(*info),
        Reply::Error(error) => Err(ClientError::Remote(error)),
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn unexpected(reply: &Reply) -> ClientError {
    let what = match reply {
        Reply::Called(_) => "call reply",
        Reply::Plugins(_) => "plugin list",
        Reply::Inspected(_) => "plugin details",
        Reply::Controlled(_) => "plugin status",
        Reply::Events(_) => "events",
        Reply::Error(_) => "error",
        Reply::Published(_) => "publish receipt",
        Reply::Subscribed => "subscription receipt",
        Reply::Message(_) => "published message",
        Reply::Logs { .. } => "log lines",
        Reply::Direct(_) => "direct channel",
        Reply::DirectEnded { .. } => "direct channel's end",
        Reply::Crashes(_) => "crash reports",
        Reply::Crash(_) => "crash report",
        Reply::Kv(_) => "storage answer",
    };
    ClientError::Remote(RemoteError::new(
        ErrorKind::Protocol,
        format!("unexpected {what} from corral"),
    ))
}

/// A call encoded for a direct channel.
pub(crate) struct DirectFrame {
    /// The frames: releases of reply slots, then the call.
    pub(crate) bytes: Vec<u8>,
    /// The fd that goes with them: a sealed memfd holding the input, or a
    /// segment of the arena the input is in, new to the worker.
    pub(crate) fd: Option<OwnedFd>,
    /// The input's slot, to free when the call is over.
    pub(crate) slot: Option<Slot>,
}

/// Encodes a call for a direct channel, with the reply slots released
/// since the last one: a large input goes in a slot of the channel's
/// arena (or, when it is full, a sealed memfd of its own).
pub(crate) fn direct_call(
    id: u64,
    method: &str,
    payload: &mut Payload<'_>,
    wait: Duration,
    arenas: &mut ClientArenas,
    max: u32,
) -> Result<DirectFrame, WireError> {
    let deadline_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
    let mut bytes = Vec::new();
    let released = arenas.take_released();
    if !released.is_empty() {
        wire::encode_frame(&ToWorker::Release { slots: released }, &mut bytes, max)?;
    }
    let start = bytes.len();
    if let Some(slot) = arenas.place(payload) {
        let call = Call {
            id,
            method: method.to_owned(),
            input: Vec::new(),
            deadline_ms,
        };
        if let Err(error) = wire::encode_frame(&ToWorker::CallIn { call, slot }, &mut bytes, max) {
            arenas.free_input(slot);
            return Err(error);
        }
        let fd = match arenas.announce(slot) {
            Some(fd) => {
                wire::mark_shared(&mut bytes[start..]);
                Some(fd.try_clone_to_owned()?)
            }
            None => None,
        };
        return Ok(DirectFrame {
            bytes,
            fd,
            slot: Some(slot),
        });
    }
    let input = payload.bytes();
    let shared = (input.len() >= wire::SHARED_MIN)
        .then(|| SharedBytes::copy_from(input).ok())
        .flatten();
    let frame = CallFrame::Call {
        id,
        method,
        input: if shared.is_some() { &[] } else { input },
        deadline_ms,
    };
    wire::encode_shared_frame(&frame, shared.as_ref(), &mut bytes, max)?;
    let fd = match shared {
        Some(shared) => Some(shared.as_fd().try_clone_to_owned()?),
        None => None,
    };
    Ok(DirectFrame {
        bytes,
        fd,
        slot: None,
    })
}

/// A frame from a worker on a direct channel, read.
pub(crate) enum FromDirect {
    /// The reply to call `0`.
    Reply(u64, Result<ReplyView, ClientError>),
    /// The worker is replaced; it reads no more.
    Goodbye,
    /// What the protocol forbids, and why.
    Broken(String),
}

/// Reads a frame from a worker on a direct channel, with the fd that came
/// with it (a segment of the worker's arena).
pub(crate) fn from_direct(
    body: &[u8],
    shared: Option<SharedBytes>,
    fd: Option<OwnedFd>,
    arenas: &mut ClientArenas,
) -> FromDirect {
    if let Some(fd) = fd
        && let Err(error) = arenas.adopt(fd)
    {
        return FromDirect::Broken(error.to_string());
    }
    match (wire::decode_body::<FromWorker>(body), shared) {
        (Ok(FromWorker::Reply { id, outcome }), shared) => match (outcome, shared) {
            (Outcome::Ok(bytes), None) => FromDirect::Reply(id, Ok(bytes.into())),
            (Outcome::Ok(bytes), Some(shared)) if bytes.is_empty() => match shared.to_vec() {
                Ok(bytes) => FromDirect::Reply(id, Ok(bytes.into())),
                Err(error) => FromDirect::Broken(format!("unreadable reply: {error}")),
            },
            (Outcome::Err(error), None) => FromDirect::Reply(id, Err(ClientError::Remote(error))),
            _ => FromDirect::Broken("a shared payload where none belongs".into()),
        },
        (Ok(FromWorker::ReplyIn { id, slot }), None) => match arenas.reply(slot) {
            Ok(view) => FromDirect::Reply(id, Ok(view)),
            Err(error) => FromDirect::Broken(error.to_string()),
        },
        (Ok(FromWorker::Goodbye), None) => FromDirect::Goodbye,
        (Ok(other), _) => FromDirect::Broken(format!("unexpected {} frame", other.name())),
        (Err(error), _) => FromDirect::Broken(error.to_string()),
    }
}

/// A direct call's timeout.
pub(crate) fn direct_timeout(plugin: &str, wait: Duration) -> ClientError {
    ClientError::Remote(RemoteError::new(
        ErrorKind::Timeout,
        format!(
            "plugin `{plugin}` did not answer within {} ms",
            wait.as_millis()
        ),
    ))
}
