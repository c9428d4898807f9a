//! The supervisor's half of the seccomp refuse tier: a worker's filter
//! refers every syscall the baseline does not allow to a listener fd
//! (`SECCOMP_RET_USER_NOTIF`), which the worker hands over on its
//! listener socket before any plugin code runs. One task per worker
//! answers each referral, names the syscall, and hands it to a
//! [`Record`] (the plugin's counts, log and events).
//!
//! The answer is `EPERM` (the worker's thread gets it and goes on), or,
//! when profiling, "go ahead" (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`) for a
//! refused syscall and `EPERM` for a killing one, so that a profile sees
//! everything the plugin does. The kernel holds the worker's thread until
//! the answer; if the supervisor is gone, the kernel answers `ENOSYS`.
//! Nothing here trusts the worker: what it is answered is decided from the
//! syscall number the kernel reports.
#![allow(unsafe_code, reason = "the seccomp notification ioctls and poll(2)")]

use corral_plugin_api::seccomp::{self, Tier};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use tracing::warn;

/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, as the response's `u32` field
/// takes it.
const CONTINUE: u32 = 1;
const _: () = assert!(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE == CONTINUE as libc::c_ulong);

/// A syscall the filter referred to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The syscall's name, or `number N`.
    pub(crate) syscall: String,
    /// `name (number)`, and what it asked for when that tells more (the
    /// request of an `ioctl`, the option of a `prctl`, the family of a
    /// `socket`).
    pub(crate) described: String,
    /// Its tier.
    pub(crate) tier: Tier,
    /// Whether it was let through (profiling a refused syscall).
    pub(crate) let_through: bool,
}

/// Where a worker's refusals go.
pub(crate) trait Record: Send + Sync + 'static {
    /// Counts `refused`; `first` when this worker had not made it before
    /// (log and event once per syscall per worker).
    fn refused(&self, pid: u32, refused: &Refused, first: bool);
}

/// The task answering one worker's referrals; ends when the worker is
/// gone, and is aborted when dropped.
pub(crate) struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts answering the referrals of worker `pid`, whose listener comes
/// on `socket`.
pub(crate) fn watch(
    socket: UnixStream,
    pid: u32,
    profile: bool,
    record: Arc<dyn Record>,
) -> io::Result<Watch> {
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    Ok(Watch(tokio::spawn(async move {
        let listener = match receive_listener(&socket).await {
            Ok(Some(listener)) => listener,
            // The worker died first, or refuses in the kernel.
            Ok(None) => return,
            Err(error) => {
                warn!(pid, "cannot take the seccomp listener: {error}");
                return;
            }
        };
        drop(socket);
        if let Err(error) = answer(listener, pid, profile, record.as_ref()).await {
            warn!(pid, "seccomp listener failed: {error}");
        }
    })))
}

/// The listener fd, sent with one byte; `None` at end of stream.
async fn receive_listener(socket: &tokio::net::UnixStream) -> io::Result<Option<OwnedFd>> {
    loop {
        socket.readable().await?;
        let mut byte = [0u8; 1];
        match socket.try_io(Interest::READABLE, || {
            corral_plugin_api::wire::recv_with_fds(socket.as_fd(), &mut byte)
        }) {
            Ok((0, _, _)) => return Ok(None),
            Ok((_, fds, _)) => return Ok(fds.into_iter().next()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
}

/// Answers referrals until the worker is gone.
async fn answer(listener: OwnedFd, pid: u32, profile: bool, record: &dyn Record) -> io::Result<()> {
    let size = notification_size()?;
    // SAFETY: the AsyncFd owns the listener, which stays open and the
    // same for the AsyncFd's whole life.
    let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
        .map_err(io::Error::from)?;
    let mut seen = HashSet::new();
    loop {
        let mut ready = listener.readable().await?;
        loop {
            match pending(listener.get_ref().as_raw_fd())? {
                Pending::Nothing => {
                    ready.clear_ready();
                    break;
                }
                Pending::Gone => return Ok(()),
                Pending::Referral => {}
            }
            let Some(notification) = receive(listener.get_ref().as_raw_fd(), size)? else {
                continue; // withdrawn: the thread was interrupted
            };
            let refused = classify(&notification, profile);
            let response = libc::seccomp_notif_resp {
                id: notification.id,
                val: 0,
                error: if refused.let_through { 0 } else { -libc::EPERM },
                flags: if refused.let_through { CONTINUE } else { 0 },
            };
            send(listener.get_ref().as_raw_fd(), &response)?;
            let first = seen.insert(notification.data.nr);
            record.refused(pid, &refused, first);
        }
    }
}

/// Names a referral and decides its answer.
fn classify(notification: &libc::seccomp_notif, profile: bool) -> Refused {
    let number = i64::from(notification.data.nr);
    let args = notification.data.args;
    let name = seccomp::name(number);
    let tier = match name.map(seccomp::tier_beyond_baseline) {
        Some(Tier::Kill) => Tier::Kill,
        _ => Tier::Refuse,
    };
    let mut described = seccomp::describe(number);
    match name {
        Some("ioctl") => described.push_str(&format!(", request {:#x}", args[1] & 0xffff_ffff)),
        Some("prctl") => described.push_str(&format!(", option {}", args[0] & 0xffff_ffff)),
        Some("socket" | "socketpair") => {
            described.push_str(&format!(", family {}", args[0] & 0xffff_ffff));
        }
        _ => {}
    }
    Refused {
        syscall: name.map_or_else(|| format!("number {number}"), str::to_owned),
        described,
        tier,
        let_through: profile && tier == Tier::Refuse,
    }
}

/// What a listener has for us now.
enum Pending {
    Referral,
    Nothing,
    /// Every thread of the worker has exited.
    Gone,
}

/// Polls the listener without waiting: `SECCOMP_IOCTL_NOTIF_RECV` blocks
/// when there is nothing to receive, so it is only called after this.
fn pending(listener: RawFd) -> io::Result<Pending> {
    let mut poll = libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call; a zero timeout never blocks.
    if unsafe { libc::poll(&mut poll, 1, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if poll.revents & libc::POLLIN != 0 {
        Pending::Referral
    } else if poll.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        Pending::Gone
    } else {
        Pending::Nothing
    })
}

/// The size of the kernel's `seccomp_notif`: a newer kernel may write a
/// larger one than this build knows (its response is read only as far as
/// the kernel knows it, so a smaller one is fine).
fn notification_size() -> io::Result<usize> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES fills in the struct it is given.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &raw mut sizes,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::from(sizes.seccomp_notif).max(size_of::<libc::seccomp_notif>()))
}

/// Receives one referral; `None` when it was withdrawn meanwhile.
fn receive(listener: RawFd, size: usize) -> io::Result<Option<libc::seccomp_notif>> {
    // Zeroed, as the kernel requires, and as large as the kernel's struct.
    let mut buffer = vec![0u64; size.div_ceil(8)];
    loop {
        // SAFETY: the buffer is zeroed and at least as large as the
        // kernel's seccomp_notif; the ioctl writes one into it.
        let ret = unsafe {
            libc::ioctl(
                listener,
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                buffer.as_mut_ptr(),
            )
        };
        if ret == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOENT) => return Ok(None),
            _ => return Err(error),
        }
    }
    // SAFETY: the buffer starts with a seccomp_notif the kernel wrote; u64
    // alignment suits it.
    Ok(Some(unsafe {
        buffer
            .as_ptr()
            .cast::<libc::seccomp_notif>()
            .read_unaligned()
    }))
}

fn send(listener: RawFd, response: &libc::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: the response is a valid seccomp_notif_resp the kernel reads.
    let ret = unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            std::ptr::from_ref(response),
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // The thread was killed or interrupted before the answer.
        Some(libc::ENOENT) => Ok(()),
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(name: &str, args: [u64; 6]) -> libc::seccomp_notif {
        libc::seccomp_notif {
            id: 1,
            pid: 1,
            flags: 0,
            data: libc::seccomp_data {
                nr: i32::try_from(seccomp::number(name).unwrap()).unwrap(),
                arch: 0,
                instruction_pointer: 0,
                args,
            },
        }
    }

    #[test]
    fn referrals_are_named_and_answered_by_tier() {
        let socket = classify(&notification("socket", [2, 1, 0, 0, 0, 0]), false);
        assert_eq!(socket.syscall, "socket");
        assert_eq!(socket.tier, Tier::Refuse);
        assert!(!socket.let_through);
        assert!(
            socket.described.ends_with(", family 2"),
            "{}",
            socket.described
        );

        let profiled = classify(&notification("inotify_init1", [0; 6]), true);
        assert!(profiled.let_through);

        // Only profiling refers a killing syscall: refused, never let through.
        let kill = classify(&notification("kill", [1, 9, 0, 0, 0, 0]), true);
        assert_eq!(kill.tier, Tier::Kill);
        assert!(!kill.let_through);

        let ioctl = classify(&notification("ioctl", [0, 0x5412, 0, 0, 0, 0]), false);
        assert!(
            ioctl.described.ends_with("request 0x5412"),
            "{}",
            ioctl.described
        );
    }
}
