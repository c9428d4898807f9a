//! Starting worker processes: the one place that forks, or has a zygote
//! fork ([`crate::process::zygote`]).
//!
//! Spawning runs on one long-lived thread, the spawner, for two reasons:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits (so a
//! short-lived thread would kill its workers; a worker forked by a zygote
//! with `CLONE_PARENT` has the zygote's parent, this thread), and a
//! fork+exec takes about a millisecond that the async runtime should not
//! spend blocked.
#![allow(
    unsafe_code,
    reason = "pre_exec, pidfd_open and adopting the fds they return"
)]

use crate::process::zygote::{ZygoteError, ZygoteSlot};
use corral_plugin_api::wire::zygote::ForkRequest;
use corral_plugin_api::wire::{PluginKind, SpawnMode};
use corral_plugin_api::worker_setup::WorkerSetup;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A worker could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("cannot create the worker channel: {}", fd_hint(.0))]
    Channel(io::Error),
    #[error("cannot start corral-worker: {0}")]
    Exec(io::Error),
    #[error("cannot open the plugin module {path}: {source}")]
    Entry { path: String, source: io::Error },
    #[error("cannot watch worker {pid}: pidfd_open failed: {source}")]
    Pidfd { pid: u32, source: io::Error },
    #[error("the spawner thread is gone")]
    SpawnerGone,
    #[error(transparent)]
    Integrity(#[from] crate::process::integrity::IntegrityError),
}

/// `error`, and when it is the supervisor's open files limit, which one
/// and what to do.
fn fd_hint(error: &io::Error) -> String {
    if error.raw_os_error() != Some(libc::EMFILE) {
        return error.to_string();
    }
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or_else(|_| "?".to_owned(), |(soft, _)| soft.to_string());
    format!(
        "{error}: the supervisor's open files limit ({limit}) is reached; each worker takes \
         four, so raise it (LimitNOFILE= in the unit, ulimit -n) or run fewer plugins"
    )
}

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct WorkerCommand {
    /// Which worker binary runs it, and so which zygote forks it.
    pub(crate) kind: PluginKind,
    /// Execute the worker afresh rather than fork it from the zygote
    /// (`[restart] fresh_exec`).
    pub(crate) fresh_exec: bool,
    /// The plugin module, opened here and handed over as fd 4.
    pub(crate) entry: PathBuf,
    /// The module's SHA-256 from the manifest, checked on the open file
    /// that is handed over (so nothing can be swapped in between).
    pub(crate) sha256: Option<String>,
    /// The worker's working folder: the plugin's folder, so that a
    /// relative `[permissions]` path means the same to the plugin as in
    /// its manifest.
    pub(crate) dir: PathBuf,
    /// `argv[0]`, what `ps` shows: `corral-worker: NAME@VERSION`.
    pub(crate) title: String,
    /// The worker's whole environment.
    pub(crate) env: Vec<(OsString, OsString)>,
    /// What the child applies before the plugin.
    pub(crate) setup: WorkerSetup,
}

/// A started worker.
#[derive(Debug)]
pub(crate) struct SpawnedWorker {
    pub(crate) pid: u32,
    /// Readable once the worker has exited.
    pub(crate) pidfd: OwnedFd,
    /// The supervisor's end of the channel.
    pub(crate) channel: UnixStream,
    /// Where the worker hands over its seccomp listener
    /// ([`crate::process::refusals`]).
    pub(crate) listener: UnixStream,
    /// The read end of the worker's stdout and stderr.
    pub(crate) output: OwnedFd,
    /// Forked from the zygote or executed afresh.
    pub(crate) mode: SpawnMode,
}

enum Job {
    Spawn {
        command: Box<WorkerCommand>,
        reply: oneshot::Sender<Result<SpawnedWorker, SpawnError>>,
    },
    /// Start the zygote for this kind of plugin now, not at its first
    /// worker.
    Warm(PluginKind),
}

/// How often the spawner checks, when idle, that its zygotes live.
const ZYGOTE_CHECK: Duration = Duration::from_millis(250);

/// The worker binaries, opened by the supervisor: a worker or zygote is
/// executed through `/proc/self/fd/N`, so its uid needs no path to it.
pub(crate) struct WorkerBinaries {
    /// `corral-worker`: every kind of plugin.
    pub(crate) full: OwnedFd,
    /// `corral-worker-native`, where it is installed: native plugins.
    pub(crate) native: Option<OwnedFd>,
}

/// Handle to the spawner thread. Keep it alive as long as any worker it
/// started should live.
pub(crate) struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    pub(crate) fn start(binaries: WorkerBinaries) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let full = Arc::new(binaries.full);
        let native = binaries.native.map_or_else(|| full.clone(), Arc::new);
        std::thread::Builder::new()
            .name("corral-spawner".into())
            .spawn(move || {
                let mut zygotes = Zygotes {
                    native: ZygoteSlot::new("native", native),
                    full: ZygoteSlot::new("wasm and JavaScript", full),
                };
                loop {
                    match queue.recv_timeout(ZYGOTE_CHECK) {
                        Ok(Job::Spawn { command, reply }) => {
                            // The receiver may have given up; nothing to do
                            // then, the dropped channel ends the worker.
                            let _ = reply.send(spawn_now(&command, &mut zygotes));
                        }
                        Ok(Job::Warm(kind)) => zygotes.of(kind).warm(),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            zygotes.native.replace_if_dead();
                            zygotes.full.replace_if_dead();
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Self { jobs })
    }

    /// Starts the zygote for `kind` ahead of its first worker.
    pub(crate) fn warm(&self, kind: PluginKind) {
        let _ = self.jobs.send(Job::Warm(kind));
    }

    pub(crate) async fn spawn(&self, command: WorkerCommand) -> Result<SpawnedWorker, SpawnError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Spawn {
                command: Box::new(command),
                reply,
            })
            .map_err(|_| SpawnError::SpawnerGone)?;
        answer.await.map_err(|_| SpawnError::SpawnerGone)?
    }
}

/// The spawner thread's zygotes, one per worker binary.
struct Zygotes {
    /// `corral-worker-native`'s.
    native: ZygoteSlot,
    /// `corral-worker`'s: wasm and JavaScript plugins.
    full: ZygoteSlot,
}

impl Zygotes {
    fn of(&mut self, kind: PluginKind) -> &mut ZygoteSlot {
        match kind {
            PluginKind::Native => &mut self.native,
            PluginKind::Wasm | PluginKind::Js => &mut self.full,
        }
    }
}

fn spawn_now(command: &WorkerCommand, zygotes: &mut Zygotes) -> Result<SpawnedWorker, SpawnError> {
    let (ours, theirs) = UnixStream::pair().map_err(SpawnError::Channel)?;
    let (listener, their_listener) = UnixStream::pair().map_err(SpawnError::Channel)?;
    // stdout and stderr share one pipe the supervisor reads (and bounds).
    let (output, output_write) = io::pipe().map_err(SpawnError::Channel)?;
    let entry = std::fs::File::open(&command.entry).map_err(|source| SpawnError::Entry {
        path: command.entry.display().to_string(),
        source,
    })?;
    if let Some(expected) = &command.sha256 {
        crate::process::integrity::verify_entry(&entry, &command.entry, expected)?;
    }
    let fds = [theirs.as_fd(), entry.as_fd(), their_listener.as_fd()];
    let zygote = zygotes.of(command.kind);
    let forked = if command.fresh_exec {
        None
    } else {
        let all = [fds[0], fds[1], fds[2], output_write.as_fd()];
        match zygote.fork(&fork_request(command), &all) {
            Ok(pid) => Some(pid),
            Err(error @ ZygoteError::Resting) => {
                tracing::debug!("{error}: executing the worker afresh");
                None
            }
            Err(error) => {
                tracing::warn!("{error}: executing the worker afresh");
                None
            }
        }
    };
    let (pid, mode) = match forked {
        Some(pid) => (pid, SpawnMode::Zygote),
        None => (
            exec(command, zygote.exe(), fds, output_write)?,
            SpawnMode::Exec,
        ),
    };
    drop((theirs, their_listener, entry));
    let pidfd = pidfd_open(pid).map_err(|source| {
        // SAFETY: kill with a pid we just forked and have not reaped: it
        // cannot have been reused.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        SpawnError::Pidfd { pid, source }
    })?;
    Ok(SpawnedWorker {
        pid,
        pidfd,
        channel: ours,
        listener,
        output: output.into(),
        mode,
    })
}

/// What a zygote needs to fork the worker `command` describes (the fds
/// go beside it).
fn fork_request(command: &WorkerCommand) -> ForkRequest {
    ForkRequest {
        title: command.title.clone(),
        dir: command.dir.as_os_str().as_bytes().to_vec(),
        env: command
            .env
            .iter()
            .map(|(name, value)| {
                let mut variable = name.as_bytes().to_vec();
                variable.push(b'=');
                variable.extend_from_slice(value.as_bytes());
                serde_bytes::ByteBuf::from(variable)
            })
            .collect(),
        setup: command.setup,
    }
}

/// Forks and executes the worker binary afresh: its pid. `fds` are the
/// worker's channel, module and listener socket.
fn exec(
    command: &WorkerCommand,
    exe: &OwnedFd,
    fds: [std::os::fd::BorrowedFd<'_>; 3],
    output_write: io::PipeWriter,
) -> Result<u32, SpawnError> {
    let supervisor = nix::unistd::getpid().as_raw();
    let stderr_write = output_write.try_clone().map_err(SpawnError::Channel)?;
    let mut cmd = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    cmd.arg0(&command.title)
        .current_dir(&command.dir)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_write))
        .stderr(Stdio::from(stderr_write));
    let raw = fds.map(|fd| fd.as_raw_fd());
    // SAFETY: `apply` is async-signal-safe (raw syscalls only); the
    // closure captures plain numbers.
    unsafe {
        let setup = command.setup;
        cmd.pre_exec(move || setup.apply(raw, supervisor));
    }
    let child = cmd.spawn().map_err(SpawnError::Exec)?;
    // std's Child does not reap on drop; the pidfd is how we wait.
    Ok(child.id())
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel returned a new fd that we own (CLOEXEC by default).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
