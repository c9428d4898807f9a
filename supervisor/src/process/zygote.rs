//! The supervisor's side of the zygotes: one `corral-worker --zygote` per
//! worker binary (native-only and wasm), started by the spawner thread on
//! first use, asked to fork each worker, and started again when it dies
//! (workers it forked are the supervisor's children and live on).
//!
//! Everything here runs on the spawner thread and blocks; a zygote that
//! does not answer within [`ANSWER_WITHIN`] is killed and replaced.
#![allow(unsafe_code, reason = "pre_exec and the zygote's fd in the child")]

use corral_plugin_api::wire::zygote::{
    ForkReply, ForkRequest, MAX_PACKET, decode_packet, encode_packet,
};
use corral_plugin_api::wire::{recv_with_fds, send_with_fds};
use corral_plugin_api::worker_setup::close_from;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a zygote has to answer a fork request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// After a zygote failed to start, workers of its binary are executed
/// afresh for this long before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Room the zygote's environment leaves for a forked worker's title (its
/// `ps` command line).
const TITLE_ROOM: usize = 256;

/// A zygote could not fork a worker.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZygoteError {
    #[error("cannot start the zygote: {0}")]
    Start(io::Error),
    #[error("zygote unreachable: {0}")]
    Io(io::Error),
    #[error("zygote: {0}")]
    Refused(String),
    #[error("the zygote failed to start {} s ago; retried later", RETRY_AFTER.as_secs())]
    Resting,
}

/// A running zygote.
struct Zygote {
    pid: u32,
    socket: UnixDatagram,
}

impl Zygote {
    /// Executes `exe --zygote`, its socket on fd 3.
    fn start(exe: &OwnedFd, name: &str) -> io::Result<Self> {
        // SOCK_SEQPACKET: std has no type for it; UnixDatagram's calls fit.
        let (ours, theirs) = seqpacket_pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let supervisor = nix::unistd::getpid().as_raw();
        let mut command = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        command
            .arg0(format!("corral-zygote: {name}"))
            .arg("--zygote")
            .env_clear()
            .env("CORRAL_TITLE_ROOM", " ".repeat(TITLE_ROOM))
            .stdin(Stdio::null());
        if let Some(level) = std::env::var_os("CORRAL_LOG") {
            command.env("CORRAL_LOG", level);
        }
        // SAFETY: the closure makes raw syscalls only (async-signal-safe)
        // and captures plain numbers.
        unsafe {
            command.pre_exec(move || {
                // Through a copy above 9: dup2 onto itself would keep the
                // socket's close-on-exec flag.
                let copy = libc::fcntl(theirs_fd, libc::F_DUPFD_CLOEXEC, 10);
                if libc::setsid() < 0 || copy < 0 || libc::dup2(copy, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
                close_from(4, libc::CLOSE_RANGE_CLOEXEC)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != supervisor {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop(theirs);
        ours.set_read_timeout(Some(ANSWER_WITHIN))?;
        let pid = child.id();
        info!(pid, "zygote for {name} workers started");
        Ok(Self { pid, socket: ours })
    }

    /// Has the zygote fork a worker: its pid.
    fn fork(&self, request: &ForkRequest, fds: &[BorrowedFd<'_>]) -> Result<u32, ZygoteError> {
        let packet = encode_packet(request).map_err(|e| ZygoteError::Refused(e.to_string()))?;
        send_with_fds(self.socket.as_fd(), &packet, fds).map_err(ZygoteError::Io)?;
        let mut answer = vec![0; MAX_PACKET as usize];
        let (len, _, _) = loop {
            match recv_with_fds(self.socket.as_fd(), &mut answer) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => break other.map_err(ZygoteError::Io)?,
            }
        };
        if len == 0 {
            return Err(ZygoteError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        match decode_packet(&answer[..len]) {
            Ok(ForkReply::Forked { pid }) => Ok(pid),
            Ok(ForkReply::Failed { message }) => Err(ZygoteError::Refused(message)),
            Err(error) => Err(ZygoteError::Io(io::Error::other(error))),
        }
    }
}

impl Drop for Zygote {
    /// Kills and reaps the zygote (its workers are not its children).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// One worker binary's zygote, started when first needed and again as
/// soon as it died.
pub(crate) struct ZygoteSlot {
    name: &'static str,
    exe: Arc<OwnedFd>,
    running: Option<Zygote>,
    failed_at: Option<Instant>,
}

impl ZygoteSlot {
    /// The slot for the zygotes of `exe`, none started yet.
    pub(crate) fn new(name: &'static str, exe: Arc<OwnedFd>) -> Self {
        Self {
            name,
            exe,
            running: None,
            failed_at: None,
        }
    }

    /// The worker binary.
    pub(crate) fn exe(&self) -> &OwnedFd {
        &self.exe
    }

    /// Starts the zygote unless it runs.
    pub(crate) fn warm(&mut self) {
        if self.running.is_none()
            && let Err(error) = self.start()
        {
            warn!("{error}");
        }
    }

    /// Replaces a zygote that died (its workers live on) with a new one.
    pub(crate) fn replace_if_dead(&mut self) {
        let Some(zygote) = &self.running else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(zygote.pid as i32);
        match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => return,
            Ok(status) => warn!(
                pid = zygote.pid,
                "zygote for {} workers died ({status:?}); starting a new one", self.name
            ),
            Err(error) => warn!(
                pid = zygote.pid,
                "zygote for {} workers cannot be waited for ({error}); starting a new one",
                self.name
            ),
        }
        self.running = None;
        self.warm();
    }

    /// Forks a worker from the zygote of `exe`, starting the zygote first
    /// when none runs; a zygote that fails is replaced once.
    pub(crate) fn fork(
        &mut self,
        request: &ForkRequest,
        fds: &[BorrowedFd<'_>],
    ) -> Result<u32, ZygoteError> {
        let mut error = None;
        for _ in 0..2 {
            let zygote = match &self.running {
                Some(zygote) => zygote,
                None => self.start()?,
            };
            let pid = zygote.pid;
            match zygote.fork(request, fds) {
                Ok(pid) => return Ok(pid),
                // It answered: it works, this request did not.
                Err(refused @ ZygoteError::Refused(_)) => return Err(refused),
                Err(failed) => {
                    warn!(
                        pid,
                        "zygote for {} workers failed ({failed}); starting a new one", self.name
                    );
                    self.running = None;
                    error = Some(failed);
                }
            }
        }
        Err(error.unwrap_or(ZygoteError::Resting))
    }

    fn start(&mut self) -> Result<&Zygote, ZygoteError> {
        if self.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(ZygoteError::Resting);
        }
        match Zygote::start(&self.exe, self.name) {
            Ok(zygote) => {
                self.failed_at = None;
                Ok(self.running.insert(zygote))
            }
            Err(error) => {
                self.failed_at = Some(Instant::now());
                Err(ZygoteError::Start(error))
            }
        }
    }
}

/// A connected `SOCK_SEQPACKET` pair, close-on-exec.
fn seqpacket_pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two new fds into `fds`.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are new and ours alone.
    let [a, b] = fds.map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
}
