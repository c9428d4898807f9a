//! The host-facing server: accepts host apps on the local socket, speaks
//! the host protocol, routes calls to plugins.
//!
//! A connection speaks bincode or JSON, as its hello chooses
//! ([`Encoding`]). Each connection may have many requests in flight (up to
//! [`MAX_IN_FLIGHT`]; past that the server stops reading until some
//! finish). A client that sends a bad frame gets an error response with id
//! 0 and is disconnected; nothing else is affected.

use crate::host::encoding::Encoding;
use crate::host::stream::{Answer, Directs, Stream, Writer};
use crate::observe::crashes::CrashReports;
use crate::observe::events::Events;
use crate::process::worker::Chain;
use crate::services::Services;
use crate::supervise::handle::Order;
use crate::supervise::handle::PluginHandle;
use crate::supervise::registry::Registry;
use crate::transport::framed::{FrameReader, unix_stream};
use crate::transport::payload::Payload;
use corral_plugin_api::manifest::check_topic;
use corral_plugin_api::wire::{
    self, Action, ClientHello, EventKind, Fault, KvAnswer, KvRequest, PROTOCOL_VERSION, Reply,
    Request, RequestBody, Response, ServerHello, SharedBytes,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use interprocess::local_socket::tokio::{Listener, Stream as Connection};
use interprocess::local_socket::traits::tokio::Listener as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot, watch};
use tracing::{debug, warn};

/// Requests one connection may have in flight.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;
/// Time a new connection has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server needs to answer requests.
pub(crate) struct Server {
    pub(crate) registry: Arc<Registry>,
    pub(crate) services: Arc<Services>,
    pub(crate) max_frame: u32,
    pub(crate) events: Arc<Events>,
    pub(crate) access: Access,
    /// Fault injection allowed (`--faults`, for tests).
    pub(crate) faults: bool,
    /// The crash reports.
    pub(crate) crashes: Arc<CrashReports>,
}

/// Who may use the socket, by the peer's uid (`SO_PEERCRED`): root and
/// the supervisor's own uid may do everything; `admin_uids` too;
/// `allowed_uids` may call plugins and read status, not run admin actions.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) own_uid: u32,
    pub(crate) allowed: Vec<u32>,
    pub(crate) admins: Vec<u32>,
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Calls and status.
    App,
    /// Everything, admin actions included.
    Admin,
}

impl Access {
    fn role(&self, uid: u32) -> Option<Role> {
        if uid == 0 || uid == self.own_uid || self.admins.contains(&uid) {
            Some(Role::Admin)
        } else if self.allowed.contains(&uid) {
            Some(Role::App)
        } else {
            None
        }
    }
}

impl Server {
    /// Accepts connections until the task is dropped.
    pub(crate) async fn run(self: Arc<Self>, listener: Listener) {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    tokio::spawn(self.clone().connection(stream));
                }
                Err(error) => {
                    warn!("accept failed: {error}");
                    // Out of fds, most likely: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn connection(self: Arc<Self>, stream: Connection) {
        let stream = match unix_stream(stream) {
            Ok(stream) => stream,
            Err(error) => return warn!("cannot take client connection: {error}"),
        };
        let peer = match stream.peer_cred() {
            Ok(credentials) => credentials.uid(),
            Err(error) => return warn!("cannot read a client's credentials: {error}"),
        };
        let role = self.access.role(peer);
        let (read, write) = stream.into_split();
        let mut reader = FrameReader::new(read, self.max_frame);
        let mut writer = Writer::start(write, self.max_frame);
        let shared_replies =
            match tokio::time::timeout(HELLO_TIMEOUT, self.greet(&mut reader, &mut writer)).await {
                Ok(Ok(shared_replies)) => shared_replies,
                Ok(Err(error)) => return refuse(&writer, error).await,
                Err(_) => {
                    let error = RemoteError::new(ErrorKind::Protocol, "no hello within 5 s");
                    return refuse(&writer, error).await;
                }
            };
        let Some(role) = role else {
            warn!(uid = peer, "refused a client: uid {peer} is not allowed");
            self.events.record(
                "",
                0,
                EventKind::Denied,
                format!("refused a client with uid {peer} (not in allowed_uids)"),
            );
            let error = RemoteError::new(
                ErrorKind::PermissionDenied,
                format!("uid {peer} may not use this corral (allowed_uids in corral.toml)"),
            );
            refuse(&writer, error).await;
            // Closing now could fail the client's first write (EPIPE)
            // before it reads why: wait for that request, briefly.
            let _ = tokio::time::timeout(HELLO_TIMEOUT, reader.next_body()).await;
            return;
        };
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        // Dropped when this connection ends: its streams stop.
        let (_open, open) = watch::channel(());
        let directs = Directs::default();
        let encoding = writer.encoding;
        loop {
            let (request, shared) = match reader.next().await {
                Ok(Some((_, Some(_)))) if encoding == Encoding::Json => (
                    Err(wire::WireError::Attachment(
                        "a JSON connection takes no shared payloads".into(),
                    )),
                    None,
                ),
                Ok(Some((body, shared))) => (encoding.decode::<Request>(body), shared),
                Ok(None) => return,
                Err(wire::WireError::Io(error)) => {
                    debug!("client read failed: {error}");
                    return;
                }
                Err(error) => (Err(error), None),
            };
            let request = match request {
                Ok(request) => request,
                Err(error) => {
                    let error =
                        RemoteError::new(ErrorKind::Protocol, format!("bad request: {error}"));
                    return refuse(&writer, error).await;
                }
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let (server, writer, open) = (self.clone(), writer.clone(), open.clone());
            let directs = directs.clone();
            tokio::spawn(async move {
                let admin_only = match &request.body {
                    RequestBody::Control { action, .. } => Some(action.as_str()),
                    RequestBody::Kill { .. } => Some("kill"),
                    RequestBody::Fault { .. } => Some("inject faults into"),
                    RequestBody::Logs { .. } => Some("read the logs of"),
                    RequestBody::Crashes { .. } | RequestBody::Crash { .. } => {
                        Some("read the crash reports of")
                    }
                    RequestBody::Kv { .. } => Some("read or change the storage of"),
                    _ => None,
                };
                let stream = Stream {
                    id: request.id,
                    writer,
                    open,
                    shared_replies,
                    directs,
                };
                let answer = match admin_only.filter(|_| role == Role::App) {
                    Some(what) => {
                        warn!(uid = peer, "refused `{what}`: not an admin uid");
                        server.events.record(
                            "",
                            0,
                            EventKind::Denied,
                            format!("refused `{what}` from uid {peer} (not in admin_uids)"),
                        );
                        Reply::Error(RemoteError::new(
                            ErrorKind::PermissionDenied,
                            format!(
                                "uid {peer} may not {what} plugins (admin_uids in corral.toml)"
                            ),
                        ))
                        .into()
                    }
                    None => match server.reply(request.body, shared, &stream).await {
                        Ok(Some(answer)) => answer,
                        Ok(None) => return drop(permit), // a stream, ended
                        Err(error) => Reply::Error(error).into(),
                    },
                };
                stream.answer(answer).await;
                drop(permit);
            });
        }
    }

    /// Reads the client's hello and answers with ours, in the encoding the
    /// hello chose (which `writer` keeps); returns whether the client
    /// takes shared payloads.
    async fn greet(
        &self,
        reader: &mut FrameReader,
        writer: &mut Writer,
    ) -> Result<bool, RemoteError> {
        let protocol_error = |message: String| RemoteError::new(ErrorKind::Protocol, message);
        let body = reader
            .next_body()
            .await
            .map_err(|e| protocol_error(format!("bad hello: {e}")))?
            .ok_or_else(|| protocol_error("closed before hello".into()))?;
        writer.encoding = Encoding::of_hello(body);
        let (theirs, shared_replies) = match writer.encoding.decode::<ClientHello>(body) {
            Ok(hello) => (
                hello.protocol,
                hello.shared_payloads && writer.encoding == Encoding::Bincode,
            ),
            Err(error) => protocol_of(writer.encoding, body)
                .filter(|&p| p != PROTOCOL_VERSION)
                .map(|protocol| (protocol, false))
                .ok_or_else(|| protocol_error(format!("bad hello: {error}")))?,
        };
        let hello = ServerHello {
            protocol: PROTOCOL_VERSION,
            server: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if !writer.send(&hello, None).await {
            return Err(protocol_error("the client went away".into()));
        }
        if theirs != PROTOCOL_VERSION {
            return Err(protocol_error(format!(
                "client speaks protocol {theirs}, corral {} speaks {PROTOCOL_VERSION}",
                env!("CARGO_PKG_VERSION")
            )));
        }
        Ok(shared_replies)
    }

    /// The answer to `request`; `None` when it was a stream, whose
    /// replies went out on `stream` until it ended.
    async fn reply(
        &self,
        request: RequestBody,
        shared: Option<SharedBytes>,
        stream: &Stream,
    ) -> Result<Option<Answer>, RemoteError> {
        if shared.is_some() && !matches!(request, RequestBody::Call { .. }) {
            return Err(RemoteError::new(
                ErrorKind::BadRequest,
                "only a call's input may be a shared payload",
            ));
        }
        Ok(Some(Answer::from(match request {
            RequestBody::Call {
                plugin,
                method,
                input,
                timeout_ms,
            } => {
                if method.starts_with('@') {
                    return Err(crate::services::reserved(&method));
                }
                let timeout =
                    (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
                let handle = self.plugin(&plugin)?;
                let input = Payload::received(input, shared)
                    .map_err(|error| RemoteError::new(ErrorKind::BadRequest, error.to_string()))?;
                let reply = handle
                    .call(method, input, timeout, Chain::default())
                    .await?;
                let (bytes, shared) = reply.for_frame(stream.shared_replies)?;
                return Ok(Some(Answer {
                    reply: Reply::Called(bytes),
                    shared,
                }));
            }
            RequestBody::Publish { topic, payload } => {
                check_topic(&topic, false).map_err(|problem| {
                    RemoteError::new(ErrorKind::BadRequest, format!("topic {topic:?}: {problem}"))
                })?;
                Reply::Published(self.services.bus.publish("", &topic, payload))
            }
            RequestBody::Subscribe { topics } => {
                for topic in &topics {
                    check_topic(topic, true).map_err(|problem| {
                        RemoteError::new(
                            ErrorKind::BadRequest,
                            format!("topic {topic:?}: {problem}"),
                        )
                    })?;
                }
                let messages = self.services.bus.subscribe(topics);
                stream.send(Reply::Subscribed).await;
                stream.messages(messages).await;
                return Ok(None);
            }
            RequestBody::FollowEvents { after } => {
                stream.events(&self.events, after).await;
                return Ok(None);
            }
            RequestBody::Logs {
                plugin,
                since_unix_ms,
                follow,
            } => {
                let log = self.plugin(&plugin)?.log().ok_or_else(|| {
                    RemoteError::new(
                        ErrorKind::Unavailable,
                        "no log files: this supervisor has no state folder (--state-dir)",
                    )
                })?;
                stream.logs(log, since_unix_ms, follow).await;
                return Ok(None);
            }
            RequestBody::List => Reply::Plugins(self.registry.list()),
            RequestBody::Crashes { plugin } => {
                let crashes = self.crashes.clone();
                let list = tokio::task::spawn_blocking(move || crashes.list(plugin.as_deref()));
                Reply::Crashes(list.await.unwrap_or_default())
            }
            RequestBody::Crash { id } => {
                let crashes = self.crashes.clone();
                let wanted = id.clone();
                match tokio::task::spawn_blocking(move || crashes.get(&wanted)).await {
                    Ok(Some(report)) => Reply::Crash(Box::new(report)),
                    _ => {
                        return Err(RemoteError::new(
                            ErrorKind::NotFound,
                            format!("no crash report `{id}` (corral crashes lists them)"),
                        ));
                    }
                }
            }
            RequestBody::Kv { plugin, request } => Reply::Kv(self.kv(plugin, request).await?),
            RequestBody::Events { after } => Reply::Events(self.events.after(after)),
            RequestBody::Kill { plugin, signal } => self.kill(&plugin, signal)?,
            RequestBody::Fault { plugin, fault } => self.inject(&plugin, fault)?,
            RequestBody::Control { plugin, action } => self.control(&plugin, action).await?,
            RequestBody::Inspect { plugin } => {
                Reply::Inspected(Box::new(self.plugin(&plugin)?.details()))
            }
            RequestBody::Direct { plugin } => {
                self.direct(&plugin, stream).await?;
                return Ok(None);
            }
            RequestBody::DirectReport { plugin, report } => {
                self.direct_report(&plugin, report, stream).await?
            }
        })))
    }

    pub(super) fn plugin(&self, name: &str) -> Result<Arc<PluginHandle>, RemoteError> {
        self.registry.get(name).ok_or_else(|| {
            RemoteError::new(
                ErrorKind::UnknownPlugin,
                format!("no plugin named `{name}`"),
            )
        })
    }

    /// Signals the serving worker's process group (`corral kill`).
    fn kill(&self, plugin: &str, signal: i32) -> Result<Reply, RemoteError> {
        let handle = self.plugin(plugin)?;
        let signal = nix::sys::signal::Signal::try_from(signal).map_err(|_| {
            RemoteError::new(ErrorKind::BadRequest, format!("{signal} is not a signal"))
        })?;
        let worker = serving(&handle, "signal")?;
        handle.event(
            EventKind::Admin,
            format!("corral kill -s {signal} {plugin} (worker {})", worker.pid()),
        );
        worker.kill(signal);
        Ok(Reply::Controlled(Box::new(handle.info())))
    }

    /// Sends `fault` to the plugin's serving worker, when `--faults` allows.
    fn inject(&self, plugin: &str, fault: Fault) -> Result<Reply, RemoteError> {
        if !self.faults {
            return Err(RemoteError::new(
                ErrorKind::PermissionDenied,
                "fault injection is off: it is for tests, with `corral serve --faults`",
            ));
        }
        let handle = self.plugin(plugin)?;
        let worker = serving(&handle, "inject a fault into")?;
        handle.event(
            EventKind::Admin,
            format!("fault {fault:?} injected into worker {}", worker.pid()),
        );
        worker.inject(fault);
        Ok(Reply::Controlled(Box::new(handle.info())))
    }

    /// An admin's look at or change of a plugin's storage; a change is
    /// recorded as an event.
    async fn kv(&self, plugin: String, request: KvRequest) -> Result<KvAnswer, RemoteError> {
        let handle = self.plugin(&plugin)?;
        let kv = self
            .services
            .kv()
            .cloned()
            .ok_or_else(crate::services::storage_off)?;
        let change = match &request {
            KvRequest::Put { key, value } => Some(format!(
                "storage: {key:?} put by an admin ({} bytes)",
                value.len()
            )),
            KvRequest::Delete { key } => Some(format!("storage: {key:?} deleted by an admin")),
            KvRequest::List { .. } | KvRequest::Get { .. } => None,
        };
        let answer = tokio::task::spawn_blocking(move || match request {
            KvRequest::List {
                prefix,
                start,
                limit,
            } => kv.page(&plugin, &prefix, &start, limit).map(KvAnswer::Page),
            KvRequest::Get { key } => kv.get(&plugin, &key).map(KvAnswer::Value),
            KvRequest::Put { key, value } => kv
                .put(&plugin, &key, &value, crate::services::kv::Quota::NONE)
                .map(|()| KvAnswer::Done),
            KvRequest::Delete { key } => kv.delete(&plugin, &key).map(|()| KvAnswer::Done),
        })
        .await
        .map_err(|error| RemoteError::new(ErrorKind::Unavailable, format!("storage: {error}")))??;
        if let Some(change) = change {
            handle.event(EventKind::Admin, change);
        }
        Ok(answer)
    }

    /// Hands an admin action to the plugin's controller and waits until it
    /// has settled.
    async fn control(&self, plugin: &str, action: Action) -> Result<Reply, RemoteError> {
        let handle = self.plugin(plugin)?;
        let gone = |what: &str| {
            RemoteError::new(ErrorKind::Unavailable, format!("plugin `{plugin}` {what}"))
        };
        let (done, outcome) = oneshot::channel();
        if !handle.order(Order::Admin { action, done }) {
            return Err(gone("is going away"));
        }
        outcome.await.map_err(|_| gone("went away"))??;
        Ok(Reply::Controlled(Box::new(handle.info())))
    }
}

/// The plugin's serving worker, for an admin to `what`; `unavailable`
/// when it has none.
fn serving(
    handle: &PluginHandle,
    what: &str,
) -> Result<Arc<crate::process::worker::Worker>, RemoteError> {
    handle.serving().ok_or_else(|| {
        RemoteError::new(
            ErrorKind::Unavailable,
            format!(
                "plugin `{}` has no worker to {what} (it is {})",
                handle.name(),
                handle.info().state.as_str()
            ),
        )
    })
}

/// The protocol version of a hello this build cannot otherwise read.
fn protocol_of(encoding: Encoding, body: &[u8]) -> Option<u32> {
    match encoding {
        Encoding::Bincode => wire::decode_prefix::<u32>(body),
        Encoding::Json => serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get("protocol")?
            .as_u64()
            .and_then(|protocol| u32::try_from(protocol).ok()),
    }
}

/// Sends a connection-level error (id 0); the caller then drops the
/// connection.
async fn refuse(writer: &Writer, error: RemoteError) {
    debug!("closing client connection: {error}");
    let response = Response {
        id: 0,
        reply: Reply::Error(error),
    };
    writer.send(&response, None).await;
}
