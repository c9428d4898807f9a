//! One running worker process, from the supervisor's side: its process
//! (watched through a pidfd), its channel, and the calls in flight to it.
//!
//! A call registers a one-shot reply slot under a fresh id, writes one
//! frame and waits. The reader task completes slots as replies arrive. When
//! the worker dies, every slot still open is failed with how it died:
//! callers never hang on a dead worker.

use crate::exit::{exit_info, with_output};
use crate::framed::{FrameReader, FrameWriter, Outgoing, write_queued};
use crate::payload::Payload;
use crate::services::{Chain, HostContext, Origin};
use crate::spawn::SpawnedWorker;
use corral_plugin_api::wire::{
    self, Call, ExitCause, ExitInfo, Fault, FromWorker, Hello, HostCall, Layer, Outcome,
    PROTOCOL_VERSION, ToWorker, WireError,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tracing::{debug, warn};

type ReplySlot = oneshot::Sender<Result<Payload, RemoteError>>;

/// A worker's process, watched through its pidfd.
pub(crate) struct Process {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
}

impl Process {
    #[allow(unsafe_code, reason = "registers the pidfd with tokio")]
    fn new(pid: u32, pidfd: OwnedFd) -> io::Result<Self> {
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the
        // same for the AsyncFd's whole life.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { pid, pidfd })
    }

    /// Waits for the process to exit and reaps it. Cancel-safe.
    async fn wait(&self) -> WaitStatus {
        let pidfd = || Id::PIDFd(self.pidfd.get_ref().as_fd());
        loop {
            let mut ready = match self.pidfd.readable().await {
                Ok(ready) => ready,
                Err(error) => {
                    warn!(pid = self.pid, "pidfd poll failed: {error}");
                    return WaitStatus::StillAlive;
                }
            };
            let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(pidfd(), peek) {
                Ok(WaitStatus::StillAlive) => {
                    ready.clear_ready();
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                _ => {}
            }
            // Exited but not reaped: kill what it left in its process group
            // while the group id cannot be reused, then reap.
            self.signal_group(Signal::SIGKILL);
            match waitid(pidfd(), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
                Ok(status) => return status,
                Err(error) => {
                    warn!(pid = self.pid, "waitid failed: {error}");
                    return WaitStatus::StillAlive;
                }
            }
        }
    }

    /// Sends `signal` to the worker's process group (the worker leads its
    /// own session). Only valid before the worker is reaped.
    fn signal_group(&self, signal: Signal) {
        let pgid = nix::unistd::Pid::from_raw(self.pid as i32);
        match nix::sys::signal::killpg(pgid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => warn!(pid = self.pid, "killpg({signal}) failed: {error}"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

/// A call in flight: where its reply goes, who is waiting for it, and
/// when its time is up.
struct Slot {
    reply: ReplySlot,
    chain: Chain,
    deadline: Instant,
}

/// Host calls a worker may have in flight at once; its own side sends one
/// at a time per thread, so more is a worker breaking the protocol.
const MAX_HOST_CALLS: usize = 64;

#[derive(Default)]
struct Pending {
    calls: HashMap<u64, Slot>,
    /// Host calls being served.
    host_calls: usize,
    /// Set once the worker is gone: new calls fail with it at once.
    closed: Option<RemoteError>,
    /// Why the worker is to be killed, once condemned.
    condemned_for: Option<(ExitCause, String)>,
    /// The syscall the seccomp filter caught, as the worker reported it.
    violation: Option<u32>,
    /// Signals an admin asked to send (`corral kill`).
    signals: Vec<Signal>,
    /// A newer generation took over: `Shutdown` is queued, and calls are
    /// handed back to go to the new worker.
    retired: bool,
}

/// What became of a call handed to a worker.
pub(crate) enum Called {
    /// The worker answered, failed or timed out.
    Done(Result<Payload, RemoteError>),
    /// The worker was retired before the call was queued: send it to the
    /// worker that replaced it.
    Retired { method: String, input: Payload },
}

/// The call side of a running worker, shared by every caller.
///
/// Frames to the worker go through a queue to one writer task, so a caller
/// that gives up (timeout) can never leave half a frame on the channel.
pub(crate) struct Worker {
    plugin: Arc<str>,
    pid: u32,
    max_frame: u32,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    /// Notified when the worker is condemned (a missed call deadline, the
    /// watchdog); the supervision loop then kills it.
    condemned: Notify,
    /// Resident memory in bytes, as the watchdog last saw it (0: not yet).
    rss_bytes: AtomicU64,
    /// CPU use in percent over the watchdog's window (`u64::MAX`: not
    /// known yet).
    cpu_percent: AtomicU64,
}

/// Removes a call's slot when the caller stops waiting (timeout, or the
/// caller's task was dropped).
struct SlotGuard<'a> {
    worker: &'a Worker,
    id: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.worker.pending().calls.remove(&self.id);
    }
}

impl Worker {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `method` for the plugins on `chain`; the call's time
    /// `budget` counts from `started`. When `budget` is the plugin's own
    /// deadline (`kill_on_timeout`), a worker that misses it is killed: it
    /// is stuck or runaway, and its other callers are better served by a
    /// fresh one.
    pub(crate) async fn call(
        &self,
        method: String,
        input: Payload,
        started: Instant,
        budget: Duration,
        kill_on_timeout: bool,
        chain: Chain,
    ) -> Called {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = started + budget;
        let left = deadline.saturating_duration_since(Instant::now());
        let deadline_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        let (input, shared) = match input.for_frame(true) {
            Ok(parts) => parts,
            Err(error) => return Called::Done(Err(error)),
        };
        let call = Call {
            id,
            method,
            input,
            deadline_ms,
        };
        let message = ToWorker::Call(call);
        let outgoing = match Outgoing::encode(&message, shared.clone(), self.max_frame) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                let message = format!("plugin `{}`: {error}", self.plugin);
                return Called::Done(Err(RemoteError::new(ErrorKind::BadRequest, message)));
            }
        };
        let (slot, reply) = oneshot::channel();
        {
            // Checked and queued under one lock: `retire` queues Shutdown
            // under it too, so every call queued here is answered first.
            let mut pending = self.pending();
            if pending.retired {
                let ToWorker::Call(call) = message else {
                    unreachable!("built as a call above")
                };
                let input = match shared {
                    Some(shared) => Payload::Shared(shared),
                    None => Payload::Bytes(call.input),
                };
                return Called::Retired {
                    method: call.method,
                    input,
                };
            }
            if let Some(error) = &pending.closed {
                return Called::Done(Err(error.clone()));
            }
            pending.calls.insert(
                id,
                Slot {
                    reply: slot,
                    chain,
                    deadline,
                },
            );
            let _ = self.outgoing.send(outgoing);
        }
        let _guard = SlotGuard { worker: self, id };
        Called::Done(match timeout_at(deadline, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{}`: worker went away", self.plugin),
            )),
            Err(_) => {
                let millis = budget.as_millis();
                if kill_on_timeout {
                    let why = format!("a call missed the plugin's {millis} ms deadline");
                    self.condemn(ExitCause::CallDeadline, why);
                }
                Err(RemoteError::new(
                    ErrorKind::Timeout,
                    format!("plugin `{}` did not answer within {millis} ms", self.plugin),
                ))
            }
        })
    }

    /// Has the supervision loop kill this worker, for `cause`. The first
    /// reason given is the one recorded.
    pub(crate) fn condemn(&self, cause: ExitCause, why: String) {
        self.pending().condemned_for.get_or_insert((cause, why));
        self.condemned.notify_one();
    }

    /// Has the supervision loop send `signal` to the worker's process
    /// group (while it cannot have been reaped).
    pub(crate) fn kill(&self, signal: Signal) {
        self.pending().signals.push(signal);
        self.condemned.notify_one();
    }

    /// Records what the watchdog measured.
    pub(crate) fn record_usage(&self, rss_bytes: u64, cpu_percent: Option<f64>) {
        self.rss_bytes.store(rss_bytes, Ordering::Relaxed);
        if let Some(percent) = cpu_percent {
            // Rounded; a percentage fits u64 whatever the core count.
            #[allow(clippy::cast_possible_truncation, reason = "rounded, non-negative")]
            let percent = percent.max(0.0).round() as u64;
            self.cpu_percent.store(percent, Ordering::Relaxed);
        }
    }

    /// Resident memory and CPU percent, when measured.
    pub(crate) fn usage(&self) -> (Option<u64>, Option<u32>) {
        let rss = self.rss_bytes.load(Ordering::Relaxed);
        let cpu = self.cpu_percent.load(Ordering::Relaxed);
        (
            (rss > 0).then_some(rss),
            (cpu != u64::MAX).then(|| u32::try_from(cpu).unwrap_or(u32::MAX)),
        )
    }

    /// Sends the worker a fault to act on (tests, `--faults`).
    pub(crate) fn inject(&self, fault: Fault) {
        let _ = self.send(&ToWorker::Fault(fault));
    }

    /// Marks the worker as replaced by a newer generation and queues its
    /// `Shutdown` behind the calls already queued: it answers those, then
    /// exits; later calls are handed back ([`Called::Retired`]).
    pub(crate) fn retire(&self) {
        let mut pending = self.pending();
        pending.retired = true;
        let _ = self.send(&ToWorker::Shutdown);
    }

    /// Whether a newer generation replaced this worker.
    pub(crate) fn is_retired(&self) -> bool {
        self.pending().retired
    }

    /// Calls sent and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending().calls.len()
    }

    /// Whether the worker has exited (its calls are failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.pending().closed.is_some()
    }

    /// Queues one frame for the writer task. If the worker is gone, the
    /// frame is dropped and its exit fails the call with the reason.
    fn send(&self, message: &ToWorker) -> Result<(), WireError> {
        let _ = self
            .outgoing
            .send(Outgoing::encode(message, None, self.max_frame)?);
        Ok(())
    }

    fn complete(&self, id: u64, result: Result<Payload, RemoteError>) {
        if let Some(slot) = self.pending().calls.remove(&id) {
            let _ = slot.reply.send(result); // the caller may have given up
        }
    }

    /// Where a host call made during call `call` comes from; a call not in
    /// flight (0: `init`, a health check) gets `fallback` from now.
    pub(crate) fn origin(&self, call: u64, fallback: Duration) -> Origin {
        match self.pending().calls.get(&call) {
            Some(slot) => Origin {
                chain: slot.chain.clone(),
                deadline: slot.deadline,
            },
            None => Origin {
                chain: Chain::default(),
                deadline: Instant::now() + fallback,
            },
        }
    }

    /// Serves one host call in its own task and sends the answer; false
    /// when the worker has too many in flight (it breaks the protocol).
    fn serve_host_call(self: &Arc<Self>, host: &HostContext, call: HostCall) -> bool {
        {
            let mut pending = self.pending();
            if pending.host_calls >= MAX_HOST_CALLS {
                return false;
            }
            pending.host_calls += 1;
        }
        let fallback = Duration::from_millis(host.spec.limits.call_timeout_ms);
        let origin = self.origin(call.call, fallback);
        let (worker, host) = (self.clone(), host.clone());
        tokio::spawn(async move {
            let result = host.serve(origin, &call.op, call.input).await;
            worker.pending().host_calls -= 1;
            if let Err(error) = worker.send(&host_reply(call.id, result)) {
                let _ = worker.send(&host_reply(call.id, Err(too_large(&error))));
            }
        });
        true
    }

    /// Fails every call in flight and every later call with `error`.
    pub(crate) fn close(&self, error: RemoteError) {
        let calls = {
            let mut pending = self.pending();
            pending.closed = Some(error.clone());
            std::mem::take(&mut pending.calls)
        };
        for (_, slot) in calls {
            let _ = slot.reply.send(Err(error.clone()));
        }
    }
}

/// Why a worker did not get to `Ready`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Spawn(#[from] crate::spawn::SpawnError),
    #[error("worker setup failed: {0}")]
    Setup(io::Error),
    #[error("worker did not start: {}", .0.description)]
    Exited(ExitInfo),
}

/// A worker that said `Ready`, and what it takes to watch it.
pub(crate) struct Started {
    pub(crate) worker: Arc<Worker>,
    pub(crate) process: Process,
    reader: FrameReader,
    /// The task logging the worker's output; ends with its last lines.
    output: JoinHandle<Vec<String>>,
    /// The sandbox layers the worker reported (checked from outside too).
    pub(crate) layers: Vec<Layer>,
    /// What its host calls are served with.
    host: HostContext,
}

/// A spawned worker that has been sent its `Hello`, between the steps of
/// the handshake.
pub(crate) struct Greeted {
    process: Process,
    reader: FrameReader,
    writer: FrameWriter,
    output: JoinHandle<Vec<String>>,
    plugin: Arc<str>,
    host: HostContext,
    max_frame: u32,
}

impl Greeted {
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A spare worker: spawned, sandboxed and waiting, with no plugin code
/// loaded yet, until [`activate`] has it load the plugin.
pub(crate) struct Standby(Greeted);

impl Standby {
    pub(crate) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Resolves when the waiting spare has died (an admin killed it, say),
    /// and reaps it: drop it then, without [`discard`](Self::discard).
    /// Cancel-safe.
    pub(crate) async fn exited(&self) -> WaitStatus {
        self.0.process.wait().await
    }

    /// Ends the spare: kills its process group and reaps it.
    pub(crate) async fn discard(self) {
        let Greeted {
            process, output, ..
        } = self.0;
        let _ = refuse(process, output, Some(ExitCause::Stopped), String::new()).await;
    }
}

/// Waits for a greeted worker's `Ready`, within `start_timeout`.
pub(crate) async fn until_ready_within(
    greeted: Greeted,
    start_timeout: Duration,
) -> Result<Started, StartError> {
    until_ready(greeted, Instant::now() + start_timeout, start_timeout).await
}

/// Waits for a greeted spare's `Standby` (it sent its `Hello` with
/// `standby` set): the worker applied its sandbox and waits, without
/// loading the plugin, until it is activated.
pub(crate) async fn until_standby(
    mut greeted: Greeted,
    start_timeout: Duration,
) -> Result<Standby, StartError> {
    let waited = timeout(start_timeout, async {
        let body = greeted
            .reader
            .next_body()
            .await?
            .ok_or(WireError::Truncated { got: 0, want: 1 })?;
        wire::decode_body::<FromWorker>(body)
    })
    .await;
    let (verdict, why) = match waited {
        Ok(Ok(FromWorker::Standby)) => return Ok(Standby(greeted)),
        Ok(other) => failure(other, "Standby"),
        Err(_) => (
            Some(ExitCause::StartDeadline),
            format!("no Standby within {} ms", start_timeout.as_millis()),
        ),
    };
    Err(refuse(greeted.process, greeted.output, verdict, why).await)
}

/// Has a spare load its plugin and waits for `Ready`.
pub(crate) async fn activate(
    standby: Standby,
    start_timeout: Duration,
) -> Result<Started, StartError> {
    let deadline = Instant::now() + start_timeout;
    let mut greeted = standby.0;
    if let Err(error) = greeted.writer.send(&ToWorker::Activate).await {
        let why = format!("cannot activate the spare: {error}");
        return Err(refuse(greeted.process, greeted.output, None, why).await);
    }
    until_ready(greeted, deadline, start_timeout).await
}

/// Starts watching a freshly spawned worker and sends it `hello`; next
/// comes [`until_ready_within`], or [`until_standby`] for a spare.
///
/// `before_hello` runs first, while no plugin code has run yet (it moves the
/// worker into its cgroup); its error kills the worker.
pub(crate) async fn greet(
    spawned: SpawnedWorker,
    hello: Hello,
    host: HostContext,
    max_frame: u32,
    before_hello: impl FnOnce(u32) -> Result<(), String>,
) -> Result<Greeted, StartError> {
    let process = Process::new(spawned.pid, spawned.pidfd).map_err(StartError::Setup)?;
    let plugin: Arc<str> = hello.plugin.as_str().into();
    let output = tokio::spawn(crate::output::forward(
        spawned.output,
        plugin.clone(),
        spawned.pid,
        host.plugin.log(),
    ));
    if let Err(problem) = before_hello(process.pid()) {
        return Err(refuse(process, output, Some(ExitCause::Sandbox), problem).await);
    }
    let setup = || -> io::Result<_> {
        spawned.channel.set_nonblocking(true)?;
        Ok(tokio::net::UnixStream::from_std(spawned.channel)?.into_split())
    };
    let (read_half, write_half) = match setup() {
        Ok(halves) => halves,
        Err(error) => {
            let why = format!("worker setup failed: {error}");
            return Err(refuse(process, output, Some(ExitCause::Sandbox), why).await);
        }
    };
    let mut writer = FrameWriter::new(write_half, max_frame);
    if let Err(error) = writer.send(&hello).await {
        // The worker died at once: its exit status says why.
        debug!(pid = process.pid(), "cannot send hello: {error}");
        return Err(refuse(process, output, None, String::new()).await);
    }
    Ok(Greeted {
        process,
        reader: FrameReader::new(read_half, max_frame),
        writer,
        output,
        plugin,
        host,
        max_frame,
    })
}

/// Waits for `Ready`, serving the host calls the plugin's `init` makes,
/// and checks the sandbox from outside.
async fn until_ready(
    greeted: Greeted,
    deadline: Instant,
    start_timeout: Duration,
) -> Result<Started, StartError> {
    let Greeted {
        process,
        mut reader,
        mut writer,
        output,
        plugin,
        host,
        max_frame,
    } = greeted;
    let first = async {
        loop {
            let body = reader
                .next_body()
                .await?
                .ok_or(WireError::Truncated { got: 0, want: 1 })?;
            let message = match wire::decode_body::<FromWorker>(body) {
                Ok(message) => message,
                Err(error) => {
                    return Err(match wire::decode_prefix::<(u32, u32)>(body) {
                        Some((0, theirs)) if theirs != PROTOCOL_VERSION => {
                            WireError::Decode(format!(
                                "worker speaks protocol {theirs}, this supervisor speaks {PROTOCOL_VERSION}"
                            ))
                        }
                        _ => error,
                    });
                }
            };
            // The plugin's `init` may use host services.
            let FromWorker::HostCall(call) = message else {
                return Ok(message);
            };
            let origin = Origin {
                chain: Chain::default(),
                deadline,
            };
            let result = host.serve(origin, &call.op, call.input).await;
            match writer.send(&host_reply(call.id, result)).await {
                Err(error @ WireError::TooLarge { .. }) => {
                    writer
                        .send(&host_reply(call.id, Err(too_large(&error))))
                        .await?;
                }
                other => other?,
            }
        }
    };
    let answer = timeout_at(deadline, first).await;
    let (verdict, why) = match answer {
        Ok(Ok(FromWorker::Ready(ready))) if ready.protocol == PROTOCOL_VERSION => 'ready: {
            if let Err(problem) = crate::sandbox::verify(process.pid()) {
                break 'ready (Some(ExitCause::Sandbox), problem);
            }
            let (outgoing, queue) = mpsc::unbounded_channel();
            tokio::spawn(write_frames(writer.into_inner(), queue, plugin.clone()));
            let worker = Arc::new(Worker {
                plugin,
                pid: process.pid(),
                max_frame,
                outgoing,
                pending: Mutex::default(),
                next_id: AtomicU64::new(1),
                condemned: Notify::new(),
                rss_bytes: AtomicU64::new(0),
                cpu_percent: AtomicU64::new(u64::MAX),
            });
            return Ok(Started {
                worker,
                process,
                reader,
                output,
                layers: ready.layers,
                host,
            });
        }
        Ok(Ok(FromWorker::Ready(ready))) => (
            Some(ExitCause::ProtocolViolation),
            format!(
                "worker speaks protocol {}, this supervisor speaks {PROTOCOL_VERSION}",
                ready.protocol
            ),
        ),
        Ok(other) => failure(other, "Ready"),
        Err(_) => (
            Some(ExitCause::StartDeadline),
            format!("no Ready within {} ms", start_timeout.as_millis()),
        ),
    };
    Err(refuse(process, output, verdict, why).await)
}

/// Why a worker answered a handshake step with something other than
/// `expected`, and the supervisor's verdict if it has one.
fn failure(answer: Result<FromWorker, WireError>, expected: &str) -> (Option<ExitCause>, String) {
    match answer {
        Ok(FromWorker::Failed { message }) => (None, message),
        // Plugin code (a library constructor) broke the sandbox at load
        // time; the worker dies by SIGSYS on its own.
        Ok(FromWorker::Violation { syscall }) => (
            Some(ExitCause::Seccomp),
            format!("forbidden syscall {}", crate::syscalls::describe(syscall)),
        ),
        Ok(other) => (
            Some(ExitCause::ProtocolViolation),
            format!(
                "protocol violation: expected {expected}, got {}",
                other.name()
            ),
        ),
        // The worker died before answering: its exit status says why.
        Err(WireError::Truncated { .. } | WireError::Io(_)) => (None, String::new()),
        Err(error) => (
            Some(ExitCause::ProtocolViolation),
            format!("protocol violation: {error}"),
        ),
    }
}

/// Ends a worker that did not start: kills it when the supervisor has a
/// verdict (a seccomp victim dies by itself), reaps it, and describes how
/// it ended.
async fn refuse(
    process: Process,
    output: JoinHandle<Vec<String>>,
    verdict: Option<ExitCause>,
    why: String,
) -> StartError {
    if verdict.is_some_and(|cause| cause != ExitCause::Seccomp) {
        process.signal_group(Signal::SIGKILL);
    }
    // Give a worker that reported failure a moment to exit by itself.
    let status = match timeout(Duration::from_secs(1), process.wait()).await {
        Ok(status) => status,
        Err(_) => {
            process.signal_group(Signal::SIGKILL);
            process.wait().await
        }
    };
    let exit = match verdict {
        Some(cause) => exit_info(status, Some((cause, &why)), None),
        None => exit_info(status, None, Some(why.as_str()).filter(|w| !w.is_empty())),
    };
    StartError::Exited(with_output(exit, last_output(output).await))
}

/// How a served worker ended.
pub(crate) struct Ended {
    pub(crate) exit: ExitInfo,
}

/// Serves replies from a ready worker until it exits, then fails whatever
/// was still in flight. On `stop`, asks the worker to shut down and kills
/// it after `grace`.
pub(crate) async fn run_until_exit(
    started: Started,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> Ended {
    let Started {
        worker,
        process,
        reader,
        output,
        host,
        ..
    } = started;
    let mut reader_task = tokio::spawn(read_replies(reader, worker.clone(), host));
    let mut reader_done = false;
    let mut kill_at: Option<Instant> = None;
    // What the supervisor did to the worker and why.
    let mut verdict: Option<(ExitCause, String)> = None;
    let status = loop {
        tokio::select! {
            status = process.wait() => break status,
            end = &mut reader_task, if !reader_done => {
                reader_done = true;
                match end.unwrap_or_else(|error| Some(format!("reader failed: {error}"))) {
                    Some(violation) => {
                        warn!(plugin = %worker.plugin, pid = process.pid(), "{violation}; killing the worker");
                        process.signal_group(Signal::SIGKILL);
                        verdict.get_or_insert((ExitCause::ProtocolViolation, format!("protocol violation: {violation}")));
                    }
                    // The worker closed its channel; unless it is exiting
                    // anyway, it gets the grace period, then is killed.
                    None => if kill_at.is_none() {
                        kill_at = Some(Instant::now() + grace);
                    }
                }
            }
            () = worker.condemned.notified() => {
                let signals = std::mem::take(&mut worker.pending().signals);
                for signal in signals {
                    warn!(plugin = %worker.plugin, pid = process.pid(), "sending {signal} (corral kill)");
                    process.signal_group(signal);
                }
                if let Some((cause, why)) = worker.pending().condemned_for.take() {
                    warn!(plugin = %worker.plugin, pid = process.pid(), "{why}; killing the worker");
                    process.signal_group(Signal::SIGKILL);
                    verdict.get_or_insert((cause, why));
                }
            }
            _ = stop.changed(), if verdict.is_none() => {
                let _ = worker.send(&ToWorker::Shutdown);
                kill_at = Some(Instant::now() + grace);
                verdict = Some((ExitCause::Stopped, "stopped by the supervisor".into()));
            }
            _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                warn!(plugin = %worker.plugin, pid = process.pid(), "worker did not exit in {grace:?}; killing it");
                process.signal_group(Signal::SIGKILL);
                kill_at = None;
                verdict.get_or_insert((
                    ExitCause::ProtocolViolation,
                    format!("closed its channel and did not exit within {} ms", grace.as_millis()),
                ));
            }
        }
    };
    // Replies written before the exit are still in the socket: deliver them
    // before failing the rest.
    if !reader_done {
        match timeout(Duration::from_millis(200), &mut reader_task).await {
            Ok(Ok(Some(violation))) => {
                verdict.get_or_insert((
                    ExitCause::ProtocolViolation,
                    format!("protocol violation: {violation}"),
                ));
            }
            Ok(_) => {}
            Err(_) => reader_task.abort(),
        }
    }
    if let Some(syscall) = worker.pending().violation {
        let why = format!("forbidden syscall {}", crate::syscalls::describe(syscall));
        verdict = Some((ExitCause::Seccomp, why));
    }
    let requested = matches!(verdict, Some((ExitCause::Stopped, _)));
    let exit = exit_info(
        status,
        verdict.as_ref().map(|(cause, why)| (*cause, why.as_str())),
        None,
    );
    let error = if requested {
        RemoteError::new(
            ErrorKind::Unavailable,
            format!("plugin `{}` was stopped", worker.plugin),
        )
    } else {
        RemoteError::new(
            ErrorKind::Crashed,
            format!(
                "plugin `{}` crashed: worker {}",
                worker.plugin, exit.description
            ),
        )
    };
    // Fail the calls in flight first; the output tail can take a moment.
    worker.close(error);
    let exit = with_output(exit, last_output(output).await);
    debug!(plugin = %worker.plugin, pid = process.pid(), "worker {}", exit.description);
    Ended { exit }
}

/// The worker's last output lines, once its pipe is drained (a grandchild
/// holding the pipe open is not waited for).
async fn last_output(output: JoinHandle<Vec<String>>) -> Vec<String> {
    match timeout(Duration::from_millis(200), output).await {
        Ok(Ok(lines)) => lines,
        _ => Vec::new(),
    }
}

/// The answer to host call `id`.
fn host_reply(id: u64, result: Result<Vec<u8>, RemoteError>) -> ToWorker {
    ToWorker::HostReply {
        id,
        outcome: match result {
            Ok(bytes) => Outcome::Ok(bytes),
            Err(error) => Outcome::Err(error),
        },
    }
}

/// What a host call gets when its answer does not fit in a frame.
fn too_large(error: &WireError) -> RemoteError {
    RemoteError::new(
        ErrorKind::BadRequest,
        format!("the host service's answer cannot be sent: {error}"),
    )
}

/// Writes queued frames to the worker until the queue closes (the worker
/// handle is gone) or the channel breaks (the worker is dying).
async fn write_frames(
    channel: OwnedWriteHalf,
    queue: mpsc::UnboundedReceiver<Outgoing>,
    plugin: Arc<str>,
) {
    if let Err(error) = write_queued(channel, queue).await {
        debug!(plugin = %plugin, "channel write failed: {error}");
    }
}

/// Delivers replies until end of stream (`None`) or a protocol violation
/// (`Some(reason)`).
async fn read_replies(
    mut reader: FrameReader,
    worker: Arc<Worker>,
    host: HostContext,
) -> Option<String> {
    loop {
        let (body, shared) = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(WireError::Io(error)) => {
                debug!(plugin = %worker.plugin, "channel read failed: {error}");
                return None;
            }
            Err(error) => return Some(error.to_string()),
        };
        match (wire::decode_body::<FromWorker>(body), shared) {
            (Ok(FromWorker::Reply { id, outcome }), shared) => {
                let result = match outcome {
                    Outcome::Ok(bytes) => match Payload::received(bytes, shared) {
                        Ok(payload) => Ok(payload),
                        Err(error) => return Some(error.to_string()),
                    },
                    Outcome::Err(_) if shared.is_some() => {
                        return Some("a shared payload with an error reply".into());
                    }
                    Outcome::Err(error) => Err(error),
                };
                worker.complete(id, result);
            }
            (_, Some(_)) => return Some("a shared payload with a frame that has none".into()),
            (Ok(FromWorker::Pong { .. }), None) => {}
            (Ok(FromWorker::HostCall(call)), None) => {
                if !worker.serve_host_call(&host, call) {
                    return Some(format!("more than {MAX_HOST_CALLS} host calls in flight"));
                }
            }
            // The worker dies by SIGSYS right after this.
            (Ok(FromWorker::Violation { syscall }), None) => {
                worker.pending().violation = Some(syscall);
            }
            (Ok(other), None) => {
                return Some(format!("unexpected {} frame after Ready", other.name()));
            }
            (Err(error), None) => return Some(error.to_string()),
        }
    }
}
