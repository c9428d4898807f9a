//! Starting worker processes: the one place that forks.
//!
//! Spawning runs on one long-lived thread, the spawner, for two reasons:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits (so a
//! short-lived thread would kill its workers), and a fork+exec takes about
//! a millisecond that the async runtime should not spend blocked.
#![allow(
    unsafe_code,
    reason = "pre_exec, pidfd_open and adopting the fds they return"
)]

use crate::process::sandbox::{self, ChildSetup};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A worker could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("cannot create the worker channel: {0}")]
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

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct WorkerCommand {
    /// The `corral-worker` binary, opened by the supervisor: the worker
    /// is executed through `/proc/self/fd/N`, so its uid needs no path to
    /// it.
    pub(crate) exe: Arc<OwnedFd>,
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
    /// What the child applies before exec.
    pub(crate) setup: ChildSetup,
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
}

struct Job {
    command: WorkerCommand,
    reply: oneshot::Sender<Result<SpawnedWorker, SpawnError>>,
}

/// Handle to the spawner thread. Keep it alive as long as any worker it
/// started should live.
pub(crate) struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    pub(crate) fn start() -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("corral-spawner".into())
            .spawn(move || {
                for job in queue {
                    // The receiver may have given up; nothing to do then,
                    // the dropped channel ends the worker.
                    let _ = job.reply.send(spawn_now(&job.command));
                }
            })?;
        Ok(Self { jobs })
    }

    pub(crate) async fn spawn(&self, command: WorkerCommand) -> Result<SpawnedWorker, SpawnError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { command, reply })
            .map_err(|_| SpawnError::SpawnerGone)?;
        answer.await.map_err(|_| SpawnError::SpawnerGone)?
    }
}

fn spawn_now(command: &WorkerCommand) -> Result<SpawnedWorker, SpawnError> {
    let (ours, theirs) = UnixStream::pair().map_err(SpawnError::Channel)?;
    let channel_fd = theirs.as_raw_fd();
    let (listener, their_listener) = UnixStream::pair().map_err(SpawnError::Channel)?;
    let listener_fd = their_listener.as_raw_fd();
    let supervisor = nix::unistd::getpid().as_raw();
    // stdout and stderr share one pipe the supervisor reads (and bounds).
    let (output, output_write) = io::pipe().map_err(SpawnError::Channel)?;
    let stderr_write = output_write.try_clone().map_err(SpawnError::Channel)?;
    let entry = std::fs::File::open(&command.entry).map_err(|source| SpawnError::Entry {
        path: command.entry.display().to_string(),
        source,
    })?;
    if let Some(expected) = &command.sha256 {
        crate::process::integrity::verify_entry(&entry, &command.entry, expected)?;
    }
    let entry_fd = entry.as_raw_fd();
    let mut cmd = Command::new(format!("/proc/self/fd/{}", command.exe.as_raw_fd()));
    cmd.arg0(&command.title)
        .current_dir(&command.dir)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_write))
        .stderr(Stdio::from(stderr_write));
    // SAFETY: `before_exec` is async-signal-safe (raw syscalls only) and
    // captures plain numbers.
    unsafe {
        let setup = command.setup;
        cmd.pre_exec(move || {
            sandbox::before_exec(channel_fd, entry_fd, listener_fd, supervisor, &setup)
        });
    }
    let child = cmd.spawn().map_err(SpawnError::Exec)?;
    drop((theirs, their_listener, entry));
    let pid = child.id();
    // std's Child does not reap on drop; the pidfd is how we wait.
    drop(child);
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
    })
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
