//! The async client for host apps.
//!
//! One [`Client`] is one connection; it is cheap to share (`&self`
//! methods) and many calls may be in flight on it at once.

use crate::client::arena::{Payload, ReplyView};
use crate::client::direct::{DirectLink, Sent};
use crate::client::lock;
use crate::client::requests::{
    self, ClientError, DEFAULT_CALL_TIMEOUT, check_server_hello, client_hello, share_input,
    unexpected, with_shared_reply,
};
use crate::transport::framed::{FrameReader, FrameWriter, unix_stream};
use corral_plugin_api::wire::{
    self, Action, CrashReport, CrashSummary, DEFAULT_MAX_FRAME, Event, Fault, KvAnswer, KvRequest,
    Message, PluginDetails, PluginInfo, Reply, Request, RequestBody, Response, WireError,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Where the replies to a request in flight go.
enum Slot {
    /// One reply.
    Once(oneshot::Sender<Result<Reply, ClientError>>),
    /// Many: a subscription or followed events.
    Stream(mpsc::Sender<Result<Reply, ClientError>>),
}

type Slots = HashMap<u64, Slot>;

/// Replies a stream may have waiting to be read; when it is full, reading
/// the connection waits for the stream's reader.
const STREAM_BUFFER: usize = 256;

/// The connection, shared by the client's handle and its reader task.
struct Shared {
    writer: tokio::sync::Mutex<FrameWriter>,
    /// `None` once the connection is gone.
    slots: Mutex<Option<Slots>>,
    next_id: AtomicU64,
    /// Sockets that came with replies (direct channels), by request id,
    /// until the request's opener takes them.
    fds: Mutex<HashMap<u64, OwnedFd>>,
    /// Direct channels by plugin.
    directs: Mutex<HashMap<String, Direct>>,
    /// Calls use direct channels ([`Client::set_direct`]).
    use_direct: AtomicBool,
    /// The deadline of calls that name none, in ms
    /// ([`Client::set_call_timeout`]).
    call_timeout_ms: AtomicU64,
    /// Direct channels' reports for the supervisor.
    reports: mpsc::UnboundedSender<RequestBody>,
}

/// A plugin's direct channel, if open.
#[derive(Default)]
struct Direct {
    link: Option<Arc<DirectLink>>,
    /// The supervisor declined one: calls go relayed until then.
    declined_until: Option<tokio::time::Instant>,
    /// Held by the caller that opens the channel.
    opening: Arc<tokio::sync::Mutex<()>>,
}

/// How long calls to a plugin go relayed after it declined a direct
/// channel, before the client asks again.
const DECLINED_FOR: Duration = Duration::from_secs(1);

/// An async connection to a corral supervisor.
pub struct Client {
    shared: Arc<Shared>,
    server: String,
    reader: JoinHandle<()>,
}

impl Client {
    /// Connects to the supervisor listening on `socket` and shakes hands.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = socket.as_ref();
        let connect_error = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
        };
        let name = path
            .to_fs_name::<GenericFilePath>()
            .map_err(connect_error)?;
        let stream = Stream::connect(name).await.map_err(connect_error)?;
        let (read, write) = unix_stream(stream).map_err(connect_error)?.into_split();
        let mut reader = FrameReader::accepting_fds(read, DEFAULT_MAX_FRAME);
        let mut writer = FrameWriter::new(write, DEFAULT_MAX_FRAME);
        writer.send(&client_hello()).await?;
        let body = reader.next_body().await?.ok_or(ClientError::Disconnected)?;
        let server = check_server_hello(body)?;
        let (reports, mut reported) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(writer),
            slots: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            fds: Mutex::new(HashMap::new()),
            directs: Mutex::new(HashMap::new()),
            use_direct: AtomicBool::new(true),
            call_timeout_ms: AtomicU64::new(millis(DEFAULT_CALL_TIMEOUT)),
            reports,
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(report) = reported.recv().await {
                let Some(shared) = weak.upgrade() else { return };
                let _ = shared.send(report, None).await;
            }
        });
        let reader = tokio::spawn(read_responses(reader, shared.clone()));
        Ok(Self {
            shared,
            server,
            reader,
        })
    }

    /// The supervisor's version.
    pub fn server_version(&self) -> &str {
        &self.server
    }

    /// Calls `method` of `plugin` with the client's deadline (30 s unless
    /// [`set_call_timeout`](Self::set_call_timeout) says otherwise).
    pub async fn call(
        &self,
        plugin: &str,
        method: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        self.call_with_timeout(plugin, method, input, self.call_timeout())
            .await
    }

    /// Calls `method` of `plugin`; the call fails with a timeout error if
    /// it takes longer than `timeout`.
    ///
    /// The call goes on a direct channel to the plugin's worker when it
    /// can (opened on the first call, reopened after a restart), and
    /// through the supervisor when not ([`set_direct`](Self::set_direct)).
    pub async fn call_with_timeout(
        &self,
        plugin: &str,
        method: &str,
        input: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        self.call_payload(plugin, method, Payload::Owned(input), timeout)
            .await
            .map(ReplyView::into_vec)
    }

    /// Calls `method` of `plugin` with the client's deadline, and returns
    /// the reply as a [`ReplyView`]: a large reply on a direct channel is
    /// read in place in the worker's shared memory, not copied.
    pub async fn call_view(
        &self,
        plugin: &str,
        method: &str,
        input: &[u8],
    ) -> Result<ReplyView, ClientError> {
        let payload = Payload::Bytes(input);
        self.call_payload(plugin, method, payload, self.call_timeout())
            .await
    }

    /// Calls `method` of `plugin` with an input of `len` bytes that `fill`
    /// writes in place: on a direct channel a large input is written
    /// straight into shared memory the worker reads, and the reply is a
    /// [`ReplyView`] read in place, so neither is copied by corral. The
    /// client's deadline applies.
    pub async fn call_with(
        &self,
        plugin: &str,
        method: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]) + Send,
    ) -> Result<ReplyView, ClientError> {
        let payload = Payload::Fill(len, Box::new(fill));
        self.call_payload(plugin, method, payload, self.call_timeout())
            .await
    }

    /// A call, on the plugin's direct channel when there is one.
    async fn call_payload(
        &self,
        plugin: &str,
        method: &str,
        mut payload: Payload<'_>,
        timeout: Duration,
    ) -> Result<ReplyView, ClientError> {
        // `@` methods are corral's own: the supervisor answers for them.
        if self.shared.use_direct.load(Ordering::Relaxed)
            && !method.starts_with('@')
            && let Some(link) = self.direct(plugin).await
        {
            match link.call(method, &mut payload, timeout).await {
                Sent::Done(result) => return result,
                Sent::Again => {} // the worker was replaced: relayed, to the new one
            }
        }
        self.run(requests::call(plugin, method, payload.take_vec(), timeout))
            .await
            .map(ReplyView::from)
    }

    /// The deadline of `call`, `call_view` and `call_with` (30 s unless
    /// set).
    pub fn set_call_timeout(&self, timeout: Duration) {
        self.shared
            .call_timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.call_timeout_ms.load(Ordering::Relaxed))
    }

    /// Whether calls use direct channels to the workers (the default) or
    /// always go through the supervisor.
    pub fn set_direct(&self, direct: bool) {
        self.shared.use_direct.store(direct, Ordering::Relaxed);
    }

    /// The plugin's direct channel: the open one, or a new one; `None`
    /// when the supervisor declines (calls then go relayed for a while).
    /// One caller opens it while the others wait; calls to other plugins
    /// do not.
    async fn direct(&self, plugin: &str) -> Option<Arc<DirectLink>> {
        let opening = match self.known_direct(plugin) {
            Ok(known) => return known,
            Err(opening) => opening,
        };
        let _opening = opening.lock().await;
        if let Ok(known) = self.known_direct(plugin) {
            return known; // another caller opened it meanwhile
        }
        let opened = self.open_direct(plugin).await;
        let mut directs = lock(&self.shared.directs);
        let entry = directs.entry(plugin.to_owned()).or_default();
        match opened {
            Ok(link) => {
                let link = Arc::new(link);
                entry.link = Some(link.clone());
                Some(link)
            }
            Err(error) => {
                tracing::debug!(plugin, "no direct channel, calls go relayed: {error}");
                entry.declined_until = Some(tokio::time::Instant::now() + DECLINED_FOR);
                None
            }
        }
    }

    /// What is known of the plugin's direct channel: open (`Some`), or
    /// declined a moment ago (`None`); otherwise the lock to open it under.
    fn known_direct(
        &self,
        plugin: &str,
    ) -> Result<Option<Arc<DirectLink>>, Arc<tokio::sync::Mutex<()>>> {
        let mut directs = lock(&self.shared.directs);
        let entry = directs.entry(plugin.to_owned()).or_default();
        if let Some(link) = entry.link.as_ref().filter(|link| !link.is_closed()) {
            return Ok(Some(link.clone()));
        }
        if entry
            .declined_until
            .is_some_and(|until| tokio::time::Instant::now() < until)
        {
            return Ok(None);
        }
        Err(entry.opening.clone())
    }

    async fn open_direct(&self, plugin: &str) -> Result<DirectLink, ClientError> {
        let body = RequestBody::Direct {
            plugin: plugin.to_owned(),
        };
        let mut stream = self.stream(body).await?;
        let channel = match stream.next().await {
            Some(Ok(Reply::Direct(channel))) => channel,
            Some(Ok(other)) => return Err(unexpected(&other)),
            Some(Err(error)) => return Err(error),
            None => return Err(ClientError::Disconnected),
        };
        let socket = lock(&self.shared.fds).remove(&stream.id).ok_or_else(|| {
            ClientError::Wire(WireError::Attachment(
                "a direct channel came without its socket".into(),
            ))
        })?;
        let end = Box::pin(async move { stream.next().await.and_then(Result::ok) });
        DirectLink::start(plugin, socket, &channel, end, self.shared.reports.clone())
    }

    /// Every plugin's status.
    pub async fn list(&self) -> Result<Vec<PluginInfo>, ClientError> {
        self.run(requests::list()).await
    }

    /// The plugins that provide extension point `point` (`[plugin]
    /// provides` in their manifests), in name order.
    pub async fn providing(&self, point: &str) -> Result<Vec<PluginInfo>, ClientError> {
        Ok(requests::providing(self.list().await?, point))
    }

    /// Everything about one plugin: manifest, limits, sandbox layers,
    /// recent exits.
    pub async fn inspect(&self, plugin: &str) -> Result<PluginDetails, ClientError> {
        self.run(requests::inspect(plugin)).await
    }

    /// The supervisor's events numbered above `after` (0: all it keeps),
    /// oldest first; poll with the last `seq` seen to follow them.
    pub async fn events(&self, after: u64) -> Result<Vec<Event>, ClientError> {
        self.run(requests::events(after)).await
    }

    /// The crash reports kept, newest first; only `plugin`'s when given
    /// (admin uids).
    pub async fn crashes(&self, plugin: Option<&str>) -> Result<Vec<CrashSummary>, ClientError> {
        self.run(requests::crashes(plugin)).await
    }

    /// The crash report `id` (admin uids).
    pub async fn crash(&self, id: &str) -> Result<CrashReport, ClientError> {
        self.run(requests::crash(id)).await
    }

    /// Looks at or repairs `plugin`'s storage while it runs (admin uids).
    pub async fn kv(&self, plugin: &str, request: KvRequest) -> Result<KvAnswer, ClientError> {
        self.run(requests::kv(plugin, request)).await
    }

    /// Sends `signal` (a number, e.g. `libc::SIGTERM`) to `plugin`'s
    /// worker process group, as `kill` would; its restart policy decides
    /// what follows.
    pub async fn kill(&self, plugin: &str, signal: i32) -> Result<PluginInfo, ClientError> {
        self.run(requests::kill(plugin, signal)).await
    }

    /// Injects `fault` into `plugin`'s serving worker (for tests: the
    /// supervisor must run with `--faults`); returns once it is sent.
    pub async fn inject(&self, plugin: &str, fault: Fault) -> Result<PluginInfo, ClientError> {
        self.run(requests::inject(plugin, fault)).await
    }

    /// Runs an admin action on `plugin` and returns its status once the
    /// action has settled (a start waits for Ready or failure, up to
    /// `wait`).
    pub async fn control(
        &self,
        plugin: &str,
        action: Action,
        wait: Duration,
    ) -> Result<PluginInfo, ClientError> {
        self.run(requests::control(plugin, action, wait)).await
    }

    /// Publishes `payload` on `topic` to the plugins and host apps that
    /// subscribed; returns how many took it.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<u32, ClientError> {
        self.run(requests::publish(topic, payload)).await
    }

    /// Subscribes to `topics` (exact names, or prefixes ending in `*`):
    /// publications arrive on the returned [`Subscription`] until it or
    /// the connection is dropped.
    pub async fn subscribe(&self, topics: &[&str]) -> Result<Subscription, ClientError> {
        let topics = topics.iter().map(|t| (*t).to_owned()).collect();
        let mut stream = self.stream(RequestBody::Subscribe { topics }).await?;
        match stream.next().await {
            Some(Ok(Reply::Subscribed)) => Ok(Subscription { stream }),
            Some(Ok(other)) => Err(unexpected(&other)),
            Some(Err(error)) => Err(error),
            None => Err(ClientError::Disconnected),
        }
    }

    /// The supervisor's events numbered above `after` (0: all it keeps),
    /// then every new one as it happens.
    pub async fn follow_events(&self, after: u64) -> Result<EventStream, ClientError> {
        let stream = self.stream(RequestBody::FollowEvents { after }).await?;
        Ok(EventStream {
            stream,
            buffered: Vec::new().into_iter(),
        })
    }

    /// Sends a streaming request; its replies arrive on the stream.
    async fn stream(&self, body: RequestBody) -> Result<ReplyStream, ClientError> {
        let (sender, replies) = mpsc::channel(STREAM_BUFFER);
        let id = self.send(body, Slot::Stream(sender)).await?;
        Ok(ReplyStream {
            id,
            replies,
            shared: self.shared.clone(),
        })
    }

    /// Registers `slot` under a fresh id and sends the request.
    async fn send(&self, body: RequestBody, slot: Slot) -> Result<u64, ClientError> {
        self.shared.send(body, Some(slot)).await
    }

    /// Sends `op`'s request and reads its answer.
    async fn run<T>(&self, op: requests::Op<T>) -> Result<T, ClientError> {
        (op.read)(self.request(op.body, op.wait).await?)
    }

    async fn request(&self, body: RequestBody, wait: Duration) -> Result<Reply, ClientError> {
        let (slot, answer) = oneshot::channel();
        let id = self.send(body, Slot::Once(slot)).await?;
        let result = match tokio::time::timeout(wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => Err(ClientError::Remote(RemoteError::new(
                ErrorKind::Timeout,
                format!("no answer from corral within {} ms", wait.as_millis()),
            ))),
        };
        if let Some(slots) = lock(&self.shared.slots).as_mut() {
            slots.remove(&id);
        }
        match result? {
            Reply::Error(error) => Err(ClientError::Remote(error)),
            reply => Ok(reply),
        }
    }
}

impl Shared {
    /// Registers `slot` (none: the answer is not awaited) under a fresh id
    /// and sends the request.
    async fn send(&self, body: RequestBody, slot: Option<Slot>) -> Result<u64, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (body, shared) = share_input(body);
        match (lock(&self.slots).as_mut(), slot) {
            (Some(slots), Some(slot)) => {
                slots.insert(id, slot);
            }
            (Some(_), None) => {}
            (None, _) => return Err(ClientError::Disconnected),
        }
        let sent = self
            .writer
            .lock()
            .await
            .send_shared(&Request { id, body }, shared.as_ref())
            .await;
        if let Err(error) = sent {
            if let Some(slots) = lock(&self.slots).as_mut() {
                slots.remove(&id);
            }
            return Err(error.into());
        }
        Ok(id)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_responses(mut reader: FrameReader, shared: Arc<Shared>) {
    let failure = loop {
        let response = match reader.next().await {
            Ok(Some((body, payload))) => wire::decode_body::<Response>(body)
                .and_then(|response| with_shared_reply(response, payload)),
            Ok(None) => break ClientError::Disconnected,
            Err(error) => Err(error),
        };
        if let (Some(fd), Ok(response)) = (reader.take_fd(), &response) {
            lock(&shared.fds).insert(response.id, fd);
        }
        match response {
            Ok(Response {
                id: 0,
                reply: Reply::Error(error),
            }) => break ClientError::Remote(error),
            Ok(Response { id, reply }) => {
                let stream = {
                    let mut slots = lock(&shared.slots);
                    let Some(slots) = slots.as_mut() else {
                        continue;
                    };
                    match slots.remove(&id) {
                        Some(Slot::Once(slot)) => {
                            let _ = slot.send(Ok(reply));
                            continue;
                        }
                        Some(Slot::Stream(stream)) => {
                            slots.insert(id, Slot::Stream(stream.clone()));
                            stream
                        }
                        None => continue,
                    }
                };
                if stream.send(Ok(reply)).await.is_err() {
                    // Its reader is gone.
                    if let Some(slots) = lock(&shared.slots).as_mut() {
                        slots.remove(&id);
                    }
                }
            }
            Err(error) => break error.into(),
        }
    };
    // Fail everything in flight with the same cause; later requests get
    // `Disconnected`.
    let slots = lock(&shared.slots).take().unwrap_or_default();
    for (_, slot) in slots {
        let error = match &failure {
            ClientError::Remote(error) => ClientError::Remote(error.clone()),
            _ => ClientError::Disconnected,
        };
        match slot {
            Slot::Once(slot) => {
                let _ = slot.send(Err(error));
            }
            Slot::Stream(stream) => {
                let _ = stream.try_send(Err(error));
            }
        }
    }
}

/// The replies to one streaming request.
struct ReplyStream {
    id: u64,
    replies: mpsc::Receiver<Result<Reply, ClientError>>,
    shared: Arc<Shared>,
}

impl ReplyStream {
    async fn next(&mut self) -> Option<Result<Reply, ClientError>> {
        match self.replies.recv().await? {
            Ok(Reply::Error(error)) => Some(Err(ClientError::Remote(error))),
            other => Some(other),
        }
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        if let Some(slots) = lock(&self.shared.slots).as_mut() {
            slots.remove(&self.id);
        }
        lock(&self.shared.fds).remove(&self.id);
    }
}

/// Publications on the topics of [`Client::subscribe`].
pub struct Subscription {
    stream: ReplyStream,
}

impl Subscription {
    /// The next publication; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Message, ClientError>> {
        Some(match self.stream.next().await? {
            Ok(Reply::Message(message)) => Ok(message),
            Ok(other) => Err(unexpected(&other)),
            Err(ClientError::Disconnected) => return None,
            Err(error) => Err(error),
        })
    }
}

/// The supervisor's events as they happen ([`Client::follow_events`]).
pub struct EventStream {
    stream: ReplyStream,
    buffered: std::vec::IntoIter<Event>,
}

impl EventStream {
    /// The next event; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if let Some(event) = self.buffered.next() {
                return Some(Ok(event));
            }
            match self.stream.next().await? {
                Ok(Reply::Events(events)) => self.buffered = events.into_iter(),
                Ok(other) => return Some(Err(unexpected(&other))),
                Err(ClientError::Disconnected) => return None,
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}
