//! A blocking client for host apps without an async runtime: one request
//! at a time on one connection, plain blocking socket I/O.
//!
//! ```no_run
//! let mut client = corral::blocking::Client::connect("/run/corral/corral.sock")?;
//! assert_eq!(client.call("hello", "echo", b"hi")?, b"hi");
//! # Ok::<(), corral::ClientError>(())
//! ```

use crate::client::arena::{Payload, ReplyView};
use crate::client::blocking_direct::{BlockingDirect, Called};
use crate::client::requests::{
    self, ClientError, DEFAULT_CALL_TIMEOUT, check_server_hello, client_hello, share_input,
    unexpected, with_shared_reply,
};
use corral_plugin_api::RemoteError;
use corral_plugin_api::wire::{
    self, Action, CrashReport, CrashSummary, DEFAULT_MAX_FRAME, DirectReport, Event, Fault,
    FrameBuffer, KvAnswer, KvRequest, Message, PluginDetails, PluginInfo, Reply, Request,
    RequestBody, Response, WireError,
};
use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// A blocking connection to a corral supervisor.
pub struct Client {
    stream: Stream,
    frames: FrameBuffer,
    write_buf: Vec<u8>,
    next_id: u64,
    server: String,
    /// The receive timeout set on the socket now.
    recv_timeout: Option<Duration>,
    /// Set after a timeout or I/O error: the stream may be mid-frame.
    broken: bool,
    /// Calls use direct channels ([`set_direct`](Self::set_direct)).
    use_direct: bool,
    /// The deadline of calls that name none
    /// ([`set_call_timeout`](Self::set_call_timeout)).
    call_timeout: Duration,
    /// Direct channels by plugin.
    directs: HashMap<String, Direct>,
    /// How workers behind direct channels ended, by the id of the request
    /// that opened the channel, as the supervisor said.
    ended: HashMap<u64, (bool, RemoteError)>,
    /// The fd that came with the reply read last.
    fd: Option<OwnedFd>,
}

/// A plugin's direct channel, or why there is none for now.
enum Direct {
    Open(Box<BlockingDirect>),
    /// The supervisor declined: calls go relayed until then.
    Declined(Instant),
}

/// How long calls to a plugin go relayed after it declined a direct
/// channel, before the client asks again.
const DECLINED_FOR: Duration = Duration::from_secs(1);

/// How long a closed direct channel waits for the supervisor to say how
/// its worker ended.
const END_WAIT: Duration = Duration::from_secs(1);

impl Client {
    /// Connects to the supervisor listening on `socket` and shakes hands.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = socket.as_ref();
        let connect_error = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
        };
        let name = path
            .to_fs_name::<GenericFilePath>()
            .map_err(connect_error)?;
        let stream = Stream::connect(name).map_err(connect_error)?;
        let mut frames = FrameBuffer::new(DEFAULT_MAX_FRAME);
        frames.accept_fds(); // direct channels' sockets
        let mut client = Self {
            stream,
            frames,
            write_buf: Vec::new(),
            next_id: 1,
            server: String::new(),
            recv_timeout: None,
            broken: false,
            use_direct: true,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            directs: HashMap::new(),
            ended: HashMap::new(),
            fd: None,
        };
        wire::write_message(
            unix_fd(&client.stream),
            &client_hello(),
            None,
            &mut client.write_buf,
            DEFAULT_MAX_FRAME,
        )?;
        let Some(frame) = client.frames.read_frame(unix_fd(&client.stream))? else {
            return Err(ClientError::Disconnected);
        };
        client.server = check_server_hello(client.frames.body(&frame))?;
        Ok(client)
    }

    /// The supervisor's version.
    pub fn server_version(&self) -> &str {
        &self.server
    }

    /// Calls `method` of `plugin` with the client's deadline (30 s unless
    /// [`set_call_timeout`](Self::set_call_timeout) says otherwise).
    pub fn call(
        &mut self,
        plugin: &str,
        method: &str,
        input: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.call_with_timeout(plugin, method, input, self.call_timeout)
    }

    /// Calls `method` of `plugin`; the call fails with a timeout error if
    /// it takes longer than `timeout`.
    ///
    /// The call goes on a direct channel to the plugin's worker when it
    /// can (opened on the first call, reopened after a restart), and
    /// through the supervisor when not ([`set_direct`](Self::set_direct)).
    pub fn call_with_timeout(
        &mut self,
        plugin: &str,
        method: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        self.call_payload(plugin, method, Payload::Bytes(input), timeout)
            .map(ReplyView::into_vec)
    }

    /// Calls `method` of `plugin` with the client's deadline, and returns
    /// the reply as a [`ReplyView`]: a large reply on a direct channel is
    /// read in place in the worker's shared memory, not copied.
    pub fn call_view(
        &mut self,
        plugin: &str,
        method: &str,
        input: &[u8],
    ) -> Result<ReplyView, ClientError> {
        self.call_payload(plugin, method, Payload::Bytes(input), self.call_timeout)
    }

    /// Calls `method` of `plugin` with an input of `len` bytes that `fill`
    /// writes in place: on a direct channel a large input is written
    /// straight into shared memory the worker reads, and the reply is a
    /// [`ReplyView`] read in place, so neither is copied by corral. The
    /// client's deadline applies.
    ///
    /// ```no_run
    /// # fn frame(client: &mut corral::blocking::Client) -> Result<(), corral::ClientError> {
    /// let (width, height) = (1920, 1080);
    /// let reply = client.call_with("blur", "frame", width * height * 4, |pixels| {
    ///     pixels.fill(0x80); // decode or render the frame here
    /// })?;
    /// assert_eq!(reply.len(), width * height * 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn call_with(
        &mut self,
        plugin: &str,
        method: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]) + Send,
    ) -> Result<ReplyView, ClientError> {
        let payload = Payload::Fill(len, Box::new(fill));
        self.call_payload(plugin, method, payload, self.call_timeout)
    }

    /// A call, on the plugin's direct channel when there is one.
    fn call_payload(
        &mut self,
        plugin: &str,
        method: &str,
        mut payload: Payload<'_>,
        timeout: Duration,
    ) -> Result<ReplyView, ClientError> {
        // `@` methods are corral's own: the supervisor answers for them.
        let direct = if method.starts_with('@') {
            None
        } else {
            self.direct(plugin)
        };
        if let Some(mut direct) = direct {
            match direct.call(plugin, method, &mut payload, timeout) {
                Called::Overdue(error) => {
                    self.directs.insert(plugin.to_owned(), Direct::Open(direct));
                    let report = RequestBody::DirectReport {
                        plugin: plugin.to_owned(),
                        report: DirectReport::Overdue,
                    };
                    let _ = self.request(report, END_WAIT * 5);
                    return Err(error);
                }
                Called::Done(result) => {
                    self.directs.insert(plugin.to_owned(), Direct::Open(direct));
                    return result;
                }
                // Replaced: relayed, to the new worker. The channel's end,
                // if it came already, is of no use now.
                Called::Again => {
                    self.ended.remove(&direct.request);
                }
                Called::Closed => match self.direct_end(direct.request) {
                    Some((true, _)) => {}
                    Some((false, error)) => return Err(error.into()),
                    None => {
                        return Err(RemoteError::new(
                            corral_plugin_api::ErrorKind::Crashed,
                            format!("plugin `{plugin}`: its direct channel closed"),
                        )
                        .into());
                    }
                },
                Called::Broken(why) => {
                    tracing::warn!(
                        plugin,
                        "the worker broke the protocol on its direct channel: {why}"
                    );
                    let report = RequestBody::DirectReport {
                        plugin: plugin.to_owned(),
                        report: DirectReport::Broken { why: why.clone() },
                    };
                    let _ = self.request(report, END_WAIT * 5);
                    return Err(RemoteError::new(
                        corral_plugin_api::ErrorKind::Protocol,
                        format!(
                            "plugin `{plugin}` broke the protocol on its direct channel: {why}"
                        ),
                    )
                    .into());
                }
            }
        }
        self.run(requests::call(plugin, method, payload.take_vec(), timeout))
            .map(ReplyView::from)
    }

    /// The deadline of `call`, `call_view` and `call_with` (30 s unless
    /// set).
    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Whether calls use direct channels to the workers (the default) or
    /// always go through the supervisor.
    pub fn set_direct(&mut self, direct: bool) {
        self.use_direct = direct;
        if !direct {
            self.directs.clear();
        }
    }

    /// Takes the plugin's direct channel out of the map (the caller puts
    /// it back while it serves): the open one, or a new one; `None` when
    /// there is none for now.
    fn direct(&mut self, plugin: &str) -> Option<Box<BlockingDirect>> {
        if !self.use_direct || self.broken {
            return None;
        }
        match self.directs.remove(plugin) {
            Some(Direct::Open(direct)) => return Some(direct),
            Some(Direct::Declined(until)) if Instant::now() < until => {
                self.directs
                    .insert(plugin.to_owned(), Direct::Declined(until));
                return None;
            }
            _ => {}
        }
        match self.open_direct(plugin) {
            Ok(direct) => Some(Box::new(direct)),
            Err(error) => {
                tracing::debug!(plugin, "no direct channel, calls go relayed: {error}");
                let until = Instant::now() + DECLINED_FOR;
                self.directs
                    .insert(plugin.to_owned(), Direct::Declined(until));
                None
            }
        }
    }

    fn open_direct(&mut self, plugin: &str) -> Result<BlockingDirect, ClientError> {
        let body = RequestBody::Direct {
            plugin: plugin.to_owned(),
        };
        self.fd = None;
        let reply = self.request(body, DEFAULT_CALL_TIMEOUT)?;
        let Reply::Direct(channel) = reply else {
            return Err(unexpected(&reply));
        };
        let socket = self.fd.take().ok_or_else(|| {
            WireError::Attachment("a direct channel came without its socket".into())
        })?;
        Ok(BlockingDirect::new(self.next_id - 1, socket, &channel))
    }

    /// How the worker behind the direct channel that request `request`
    /// opened ended (replaced, why), as the supervisor says within
    /// [`END_WAIT`].
    fn direct_end(&mut self, request: u64) -> Option<(bool, RemoteError)> {
        if let Some(end) = self.ended.remove(&request) {
            return Some(end);
        }
        if self.broken || self.stream.set_recv_timeout(Some(END_WAIT)).is_err() {
            return None;
        }
        self.recv_timeout = Some(END_WAIT);
        match self.read_reply(request) {
            Ok(Reply::DirectEnded { retired, error }) => Some((retired, error)),
            _ => None,
        }
    }

    /// Every plugin's status.
    pub fn list(&mut self) -> Result<Vec<PluginInfo>, ClientError> {
        self.run(requests::list())
    }

    /// The plugins that provide extension point `point` (`[plugin]
    /// provides` in their manifests), in name order.
    pub fn providing(&mut self, point: &str) -> Result<Vec<PluginInfo>, ClientError> {
        Ok(requests::providing(self.list()?, point))
    }

    /// Everything about one plugin: manifest, limits, sandbox layers,
    /// recent exits.
    pub fn inspect(&mut self, plugin: &str) -> Result<PluginDetails, ClientError> {
        self.run(requests::inspect(plugin))
    }

    /// The supervisor's events numbered above `after` (0: all it keeps),
    /// oldest first; poll with the last `seq` seen to follow them.
    pub fn events(&mut self, after: u64) -> Result<Vec<Event>, ClientError> {
        self.run(requests::events(after))
    }

    /// The crash reports kept, newest first; only `plugin`'s when given
    /// (admin uids).
    pub fn crashes(&mut self, plugin: Option<&str>) -> Result<Vec<CrashSummary>, ClientError> {
        self.run(requests::crashes(plugin))
    }

    /// The crash report `id` (admin uids).
    pub fn crash(&mut self, id: &str) -> Result<CrashReport, ClientError> {
        self.run(requests::crash(id))
    }

    /// Looks at or repairs `plugin`'s storage while it runs (admin uids).
    pub fn kv(&mut self, plugin: &str, request: KvRequest) -> Result<KvAnswer, ClientError> {
        self.run(requests::kv(plugin, request))
    }

    /// Sends `signal` (a number, e.g. `libc::SIGTERM`) to `plugin`'s
    /// worker process group, as `kill` would; its restart policy decides
    /// what follows.
    pub fn kill(&mut self, plugin: &str, signal: i32) -> Result<PluginInfo, ClientError> {
        self.run(requests::kill(plugin, signal))
    }

    /// Injects `fault` into `plugin`'s serving worker (for tests: the
    /// supervisor must run with `--faults`); returns once it is sent.
    pub fn inject(&mut self, plugin: &str, fault: Fault) -> Result<PluginInfo, ClientError> {
        self.run(requests::inject(plugin, fault))
    }

    /// Runs an admin action on `plugin` and returns its status once the
    /// action has settled (a start waits for Ready or failure, up to
    /// `wait`).
    pub fn control(
        &mut self,
        plugin: &str,
        action: Action,
        wait: Duration,
    ) -> Result<PluginInfo, ClientError> {
        self.run(requests::control(plugin, action, wait))
    }

    /// Publishes `payload` on `topic` to the plugins and host apps that
    /// subscribed; returns how many took it.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<u32, ClientError> {
        self.run(requests::publish(topic, payload.to_vec()))
    }

    /// Turns this connection into a subscription to `topics` (exact names,
    /// or prefixes ending in `*`): publications as they come, until the
    /// connection ends.
    pub fn subscribe(
        self,
        topics: &[&str],
    ) -> Result<impl Iterator<Item = Result<Message, ClientError>>, ClientError> {
        let topics = topics.iter().map(|t| (*t).to_owned()).collect();
        let mut replies = self.stream(RequestBody::Subscribe { topics })?;
        match replies.next() {
            Some(Ok(Reply::Subscribed)) => {}
            Some(Ok(other)) => return Err(unexpected(&other)),
            Some(Err(error)) => return Err(error),
            None => return Err(ClientError::Disconnected),
        }
        Ok(replies.map(|reply| match reply? {
            Reply::Message(message) => Ok(message),
            other => Err(unexpected(&other)),
        }))
    }

    /// Turns this connection into a stream of the supervisor's events
    /// numbered above `after` (0: all it keeps), then every new one as it
    /// happens.
    pub fn follow_events(
        self,
        after: u64,
    ) -> Result<impl Iterator<Item = Result<Event, ClientError>>, ClientError> {
        let replies = self.stream(RequestBody::FollowEvents { after })?;
        Ok(replies.flat_map(|reply| match reply {
            Ok(Reply::Events(events)) => events.into_iter().map(Ok).collect(),
            Ok(other) => vec![Err(unexpected(&other))],
            Err(error) => vec![Err(error)],
        }))
    }

    /// Turns this connection into `plugin`'s log lines written since
    /// `since_unix_ms` (0: all kept), oldest first; with `follow`, new
    /// lines keep coming as they are written.
    pub fn logs(
        self,
        plugin: &str,
        since_unix_ms: u64,
        follow: bool,
    ) -> Result<impl Iterator<Item = Result<String, ClientError>>, ClientError> {
        let body = RequestBody::Logs {
            plugin: plugin.to_owned(),
            since_unix_ms,
            follow,
        };
        let mut replies = self.stream(body)?;
        let mut lines = Vec::new().into_iter();
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            loop {
                if let Some(line) = lines.next() {
                    return Some(Ok(line));
                }
                if done {
                    return None;
                }
                match replies.next()? {
                    Ok(Reply::Logs {
                        lines: more,
                        done: last,
                    }) => {
                        done = last;
                        lines = more.into_iter();
                    }
                    Ok(other) => {
                        done = true;
                        return Some(Err(unexpected(&other)));
                    }
                    Err(error) => {
                        done = true;
                        return Some(Err(error));
                    }
                }
            }
        }))
    }

    /// Sends a streaming request; its replies come as they arrive, with no
    /// deadline, until an error ends them.
    fn stream(
        mut self,
        body: RequestBody,
    ) -> Result<impl Iterator<Item = Result<Reply, ClientError>>, ClientError> {
        if self.broken {
            return Err(ClientError::Disconnected);
        }
        self.stream.set_recv_timeout(None).map_err(WireError::Io)?;
        let id = self.send(body)?;
        let mut ended = false;
        Ok(std::iter::from_fn(move || {
            if ended {
                return None;
            }
            let reply = self.read_reply(id);
            ended = reply.is_err();
            match reply {
                Err(ClientError::Disconnected) => None,
                reply => Some(reply),
            }
        }))
    }

    /// Sends `op`'s request and reads its answer.
    fn run<T>(&mut self, op: requests::Op<T>) -> Result<T, ClientError> {
        (op.read)(self.request(op.body, op.wait)?)
    }

    /// Sends `body` and waits up to `wait` for its answer. After a timeout
    /// or an I/O error the connection is unusable (`Disconnected`).
    fn request(&mut self, body: RequestBody, wait: Duration) -> Result<Reply, ClientError> {
        if self.broken {
            return Err(ClientError::Disconnected);
        }
        let result = self.exchange(body, wait);
        if let Err(ClientError::Wire(_)) = &result {
            self.broken = true;
        }
        match result {
            Err(ClientError::Wire(WireError::Io(error)))
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Err(ClientError::Remote(RemoteError::new(
                    corral_plugin_api::ErrorKind::Timeout,
                    format!("no answer from corral within {} ms", wait.as_millis()),
                )))
            }
            other => other,
        }
    }

    fn exchange(&mut self, body: RequestBody, wait: Duration) -> Result<Reply, ClientError> {
        if self.recv_timeout != Some(wait) {
            self.stream
                .set_recv_timeout(Some(wait))
                .map_err(WireError::Io)?;
            self.recv_timeout = Some(wait);
        }
        let id = self.send(body)?;
        self.read_reply(id)
    }

    /// Sends `body` as a request with a fresh id; returns the id.
    fn send(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let (body, shared) = share_input(body);
        wire::write_message(
            unix_fd(&self.stream),
            &Request { id, body },
            shared.as_ref(),
            &mut self.write_buf,
            DEFAULT_MAX_FRAME,
        )?;
        Ok(id)
    }

    /// Reads responses until the one for request `id`, keeping the ends of
    /// direct channels that come meanwhile.
    fn read_reply(&mut self, id: u64) -> Result<Reply, ClientError> {
        loop {
            let Some(frame) = self.frames.read_frame(unix_fd(&self.stream))? else {
                return Err(ClientError::Disconnected);
            };
            let response: Response = wire::decode_body(self.frames.body(&frame))?;
            let response = with_shared_reply(response, frame.shared)?;
            match response {
                Response {
                    id: got,
                    reply: Reply::DirectEnded { retired, error },
                } if got != id => {
                    self.ended.insert(got, (retired, error));
                }
                Response { id: got, reply } if got == id => {
                    self.fd = frame.fd;
                    return match reply {
                        Reply::Error(error) => Err(ClientError::Remote(error)),
                        reply => Ok(reply),
                    };
                }
                Response {
                    id: 0,
                    reply: Reply::Error(error),
                } => return Err(error.into()),
                // An answer to an earlier request we stopped waiting for.
                Response { .. } => {}
            }
        }
    }
}

/// The Unix socket under an interprocess stream.
fn unix_fd(stream: &Stream) -> BorrowedFd<'_> {
    let Stream::UdSocket(stream) = stream;
    stream.as_fd()
}
