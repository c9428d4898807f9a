//! From a spawned worker to a ready one: `Hello`, the host calls of the
//! plugin's `init`, `Ready` (or `Standby` for a spare, then `Activate`),
//! and the sandbox checked from outside; a worker that fails on the way
//! is ended and described.

use super::calls::{Chain, HostCalls, Origin, Worker};
use super::calls::{host_reply, too_large, write_frames};
use super::process::Process;
use super::process::last_output;
use crate::observe::logfile::LogFile;
use crate::process::exit::{exit_info, with_output};
use crate::process::refusals;
use crate::process::spawn::SpawnedWorker;
use crate::transport::framed::{FrameReader, FrameWriter};
use corral_plugin_api::seccomp;
use corral_plugin_api::wire::{
    self, ExitCause, ExitInfo, FromWorker, Hello, Layer, PROTOCOL_VERSION, StatsPage, ToWorker,
    WireError,
};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, warn};

/// Why a worker did not get to `Ready`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Spawn(#[from] crate::process::spawn::SpawnError),
    #[error("worker setup failed: {0}")]
    Setup(io::Error),
    #[error("worker did not start: {}", .0.description)]
    Exited(ExitInfo),
}

/// A worker that said `Ready`, and what it takes to watch it.
pub(crate) struct Started {
    pub(crate) worker: Arc<Worker>,
    pub(crate) process: Process,
    pub(super) reader: FrameReader,
    /// The task logging the worker's output; ends with its last lines.
    pub(super) output: JoinHandle<Vec<String>>,
    /// The sandbox layers the worker reported (checked from outside too).
    pub(crate) layers: Vec<Layer>,
    /// What its host calls are served with.
    pub(super) host: Arc<dyn HostCalls>,
}

/// A spawned worker that has been sent its `Hello`, between the steps of
/// the handshake.
pub(crate) struct Greeted {
    process: Process,
    reader: FrameReader,
    writer: FrameWriter,
    output: JoinHandle<Vec<String>>,
    plugin: Arc<str>,
    host: Arc<dyn HostCalls>,
    max_frame: u32,
    /// The worker's stats page; `None` when it could not be made (the
    /// worker then takes no direct channels).
    stats: Option<StatsPage>,
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

/// What a worker is served with and reports to, from the layers above.
pub(crate) struct WorkerContext {
    /// Its plugin's host services.
    pub(crate) host: Arc<dyn HostCalls>,
    /// Where its refused syscalls are recorded.
    pub(crate) refusals: Arc<dyn refusals::Record>,
    /// The plugin's log file, for the worker's output.
    pub(crate) log: Option<Arc<LogFile>>,
}

/// Starts watching a freshly spawned worker and sends it `hello`; next
/// comes [`until_ready_within`], or [`until_standby`] for a spare.
///
/// `before_hello` runs first, while no plugin code has run yet (it moves the
/// worker into its cgroup); its error kills the worker.
pub(crate) async fn greet(
    spawned: SpawnedWorker,
    hello: Hello,
    context: WorkerContext,
    max_frame: u32,
    before_hello: impl FnOnce(u32) -> Result<(), String>,
) -> Result<Greeted, StartError> {
    let WorkerContext {
        host,
        refusals,
        log,
    } = context;
    let refusals = refusals::watch(spawned.listener, spawned.pid, hello.profile, refusals)
        .map_err(StartError::Setup)?;
    let process = Process::new(spawned.pid, spawned.pidfd, spawned.mode, refusals)
        .map_err(StartError::Setup)?;
    let plugin: Arc<str> = hello.plugin.as_str().into();
    let output = tokio::spawn(crate::process::output::forward(
        spawned.output,
        plugin.clone(),
        spawned.pid,
        log,
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
    let (stats, sent) = match StatsPage::create(hello.recording) {
        Ok((stats, fd)) => (Some(stats), writer.send_fd(&hello, fd.as_fd()).await),
        Err(error) => {
            warn!(
                pid = process.pid(),
                "no stats page (direct channels refused): {error}"
            );
            (None, writer.send(&hello).await)
        }
    };
    if let Err(error) = sent {
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
        stats,
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
        stats,
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
            if let Err(problem) = crate::process::sandbox::verify(process.pid()) {
                break 'ready (Some(ExitCause::Sandbox), problem.to_string());
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
                stats,
                ended: watch::Sender::new(None),
                direct: AtomicUsize::new(0),
                pong: watch::Sender::new(0),
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
            format!("forbidden syscall {}", seccomp::describe(syscall.into())),
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
