//! The host-facing server: accepts host apps on the local socket, speaks
//! the host protocol, routes calls to plugins.
//!
//! Each connection may have many requests in flight (up to
//! [`MAX_IN_FLIGHT`]; past that the server stops reading until some
//! finish). A client that sends a bad frame gets an error response with id
//! 0 and is disconnected; nothing else is affected.

use crate::controller::Order;
use crate::events::Events;
use crate::framed::{FrameReader, FrameWriter, unix_stream};
use crate::plugin::PluginHandle;
use crate::registry::Registry;
use corral_plugin_api::wire::{
    self, Action, ClientHello, EventKind, PROTOCOL_VERSION, Reply, Request, RequestBody, Response,
    ServerHello,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Semaphore, oneshot};
use tracing::{debug, warn};

/// Requests one connection may have in flight.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;
/// Time a new connection has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server needs to answer requests.
pub(crate) struct Server {
    pub(crate) registry: Arc<Registry>,
    pub(crate) max_frame: u32,
    pub(crate) events: Arc<Events>,
    pub(crate) access: Access,
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

type Writer = Arc<Mutex<FrameWriter<OwnedWriteHalf>>>;

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

    async fn connection(self: Arc<Self>, stream: Stream) {
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
        let writer: Writer = Arc::new(Mutex::new(FrameWriter::new(write, self.max_frame)));
        match tokio::time::timeout(HELLO_TIMEOUT, self.greet(&mut reader, &writer)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return refuse(&writer, error).await,
            Err(_) => {
                let error = RemoteError::new(ErrorKind::Protocol, "no hello within 5 s");
                return refuse(&writer, error).await;
            }
        }
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
        loop {
            let request = match reader.next_body().await {
                Ok(Some(body)) => wire::decode_body::<Request>(body),
                Ok(None) => return,
                Err(wire::WireError::Io(error)) => {
                    debug!("client read failed: {error}");
                    return;
                }
                Err(error) => Err(error),
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
            let (server, writer) = (self.clone(), writer.clone());
            tokio::spawn(async move {
                let admin_only = match &request.body {
                    RequestBody::Control { action, .. } => Some(action.as_str()),
                    RequestBody::Kill { .. } => Some("kill"),
                    _ => None,
                };
                let reply = match admin_only.filter(|_| role == Role::App) {
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
                    }
                    None => server.answer(request.body).await,
                };
                let response = Response {
                    id: request.id,
                    reply,
                };
                if let Err(error) = writer.lock().await.send(&response).await {
                    debug!("cannot answer client: {error}");
                }
                drop(permit);
            });
        }
    }

    /// Reads the client's hello and answers with ours.
    async fn greet(
        &self,
        reader: &mut FrameReader<OwnedReadHalf>,
        writer: &Writer,
    ) -> Result<(), RemoteError> {
        let protocol_error = |message: String| RemoteError::new(ErrorKind::Protocol, message);
        let body = reader
            .next_body()
            .await
            .map_err(|e| protocol_error(format!("bad hello: {e}")))?
            .ok_or_else(|| protocol_error("closed before hello".into()))?;
        let theirs = match wire::decode_body::<ClientHello>(body) {
            Ok(hello) => hello.protocol,
            Err(error) => wire::decode_prefix::<u32>(body)
                .filter(|&p| p != PROTOCOL_VERSION)
                .ok_or_else(|| protocol_error(format!("bad hello: {error}")))?,
        };
        let hello = ServerHello {
            protocol: PROTOCOL_VERSION,
            server: env!("CARGO_PKG_VERSION").to_owned(),
        };
        writer
            .lock()
            .await
            .send(&hello)
            .await
            .map_err(|e| protocol_error(e.to_string()))?;
        if theirs != PROTOCOL_VERSION {
            return Err(protocol_error(format!(
                "client speaks protocol {theirs}, corral {} speaks {PROTOCOL_VERSION}",
                env!("CARGO_PKG_VERSION")
            )));
        }
        Ok(())
    }

    async fn answer(&self, request: RequestBody) -> Reply {
        self.reply(request).await.unwrap_or_else(Reply::Error)
    }

    async fn reply(&self, request: RequestBody) -> Result<Reply, RemoteError> {
        Ok(match request {
            RequestBody::Call {
                plugin,
                method,
                input,
                timeout_ms,
            } => {
                let timeout =
                    (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
                Reply::Called(self.plugin(&plugin)?.call(method, input, timeout).await?)
            }
            RequestBody::List => Reply::Plugins(self.registry.list()),
            RequestBody::Events { after } => Reply::Events(self.events.after(after)),
            RequestBody::Kill { plugin, signal } => self.kill(&plugin, signal)?,
            RequestBody::Control { plugin, action } => self.control(&plugin, action).await?,
            RequestBody::Inspect { plugin } => {
                Reply::Inspected(Box::new(self.plugin(&plugin)?.details()))
            }
        })
    }

    fn plugin(&self, name: &str) -> Result<Arc<PluginHandle>, RemoteError> {
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
        let worker = handle.serving().ok_or_else(|| {
            RemoteError::new(
                ErrorKind::Unavailable,
                format!(
                    "plugin `{plugin}` has no worker to signal (it is {})",
                    handle.info().state.as_str()
                ),
            )
        })?;
        handle.event(
            EventKind::Admin,
            format!("corral kill -s {signal} {plugin} (worker {})", worker.pid()),
        );
        worker.kill(signal);
        Ok(Reply::Controlled(Box::new(handle.info())))
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

/// Sends a connection-level error (id 0); the caller then drops the
/// connection.
async fn refuse(writer: &Writer, error: RemoteError) {
    debug!("closing client connection: {error}");
    let response = Response {
        id: 0,
        reply: Reply::Error(error),
    };
    let _ = writer.lock().await.send(&response).await;
}
