//! The serve loop: calls from the supervisor channel and from direct
//! channels, one at a time, each answered on the channel it came from,
//! until `Shutdown` or the supervisor goes away. Between calls the loop
//! waits on every channel at once (`poll`); a call buffered already is
//! served before waiting, frames from the supervisor first.

use crate::channel::ChannelError;
use crate::direct::{Direct, DirectCall, Input, MAX_CHANNELS};
use crate::link::{Link, Received};
use crate::reply::{ReplyBuf, Written};
use crate::runtime::Runtime;
use corral_plugin_api::manifest::check_declared;
use corral_plugin_api::wire::{
    Arena, Call, Fault, FromWorker, HEALTH_METHOD, Hello, Outcome, SharedBytes, StatsPage,
    ToWorker, WireError, share_large,
};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Allocates and touches memory until an allocation fails, which aborts
/// the process: the fault a test injects to see the memory limit at work.
fn fill_memory() -> ! {
    warn!("fault injected: filling memory");
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![0x5a; 1 << 20]);
    }
}

/// The worker's plugin and what serving it needs.
pub(crate) struct Server<'a> {
    pub(crate) link: &'a Link,
    pub(crate) plugin: &'a mut dyn Runtime,
    pub(crate) stats: Option<StatsPage>,
    /// What the worker was told in `Hello`.
    hello: &'a Hello,
    direct: Vec<Direct>,
    /// What `poll` waits on, refilled for each wait (kept to save an
    /// allocation a call).
    pollfds: Vec<libc::pollfd>,
    crash_on_next_call: bool,
}

/// Whether to go on serving.
enum Flow {
    Serve,
    Stop,
}

impl<'a> Server<'a> {
    pub(crate) fn new(
        link: &'a Link,
        plugin: &'a mut dyn Runtime,
        stats: Option<StatsPage>,
        hello: &'a Hello,
    ) -> Self {
        Self {
            link,
            plugin,
            stats,
            hello,
            direct: Vec::new(),
            pollfds: Vec::new(),
            crash_on_next_call: false,
        }
    }

    /// Serves until `Shutdown` (or end of stream), then says goodbye on
    /// every direct channel.
    pub(crate) fn serve(&mut self) -> Result<(), ChannelError> {
        loop {
            while let Some(received) = self.link.try_recv()? {
                if let Flow::Stop = self.supervisor_frame(Some(received))? {
                    return Ok(());
                }
            }
            // While direct channels have more buffered, only look for
            // more (no waiting), so that the supervisor's frames are read
            // between busy direct channels'.
            let busy = self.serve_buffered_direct() && self.direct.iter().any(Direct::has_buffered);
            if self.wait(if busy { 0 } else { -1 })? {
                let received = self.link.recv()?;
                if let Flow::Stop = self.supervisor_frame(received)? {
                    return Ok(());
                }
            }
        }
    }

    /// Serves one buffered call from each direct channel that has one;
    /// false when none had.
    fn serve_buffered_direct(&mut self) -> bool {
        let mut served = false;
        let mut index = 0;
        while index < self.direct.len() {
            match self.direct[index].next_call() {
                Ok(Some(call)) => {
                    served = true;
                    if self.serve_direct(index, call) {
                        index += 1;
                    } else {
                        self.direct.swap_remove(index);
                    }
                }
                Ok(None) => index += 1,
                Err(error) => {
                    debug!("direct channel dropped: {error}");
                    self.direct.swap_remove(index);
                }
            }
        }
        served
    }

    /// Waits until a channel is readable (up to `timeout_ms`; -1: for as
    /// long as it takes), reading the direct channels that are; true when
    /// the supervisor channel is.
    fn wait(&mut self, timeout_ms: libc::c_int) -> Result<bool, ChannelError> {
        let mut fds = std::mem::take(&mut self.pollfds);
        fds.clear();
        fds.extend(
            std::iter::once(self.link.raw_socket())
                .chain(self.direct.iter().map(Direct::raw_fd))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        #[allow(unsafe_code, reason = "poll(2)")]
        // SAFETY: `fds` is a live array of `count` pollfds whose fds stay
        // open for the call (owned by the link and the channels).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(ChannelError::Wire(WireError::Io(error)));
        }
        // Highest index first, so that removing keeps the others' places.
        for (index, fd) in fds.iter().enumerate().skip(1).rev() {
            if fd.revents == 0 {
                continue;
            }
            match self.direct[index - 1].fill() {
                Ok(true) => {}
                Ok(false) => {
                    debug!("a direct channel closed");
                    self.direct.swap_remove(index - 1);
                }
                Err(error) => {
                    debug!("direct channel dropped: {error}");
                    self.direct.swap_remove(index - 1);
                }
            }
        }
        let supervisor = fds[0].revents != 0;
        self.pollfds = fds;
        Ok(supervisor)
    }

    /// Acts on one frame from the supervisor (`None`: it closed the
    /// channel).
    fn supervisor_frame(&mut self, received: Option<Received>) -> Result<Flow, ChannelError> {
        let Some(Received {
            message,
            shared,
            fd,
            ..
        }) = received
        else {
            debug!("supervisor closed the channel");
            return Ok(Flow::Stop);
        };
        match message {
            ToWorker::Call(call) => {
                let started = Instant::now();
                let input = shared.map_or(Input::Inline, Input::Shared);
                let mut out = ReplyBuf::new(None, self.hello.max_frame);
                let outcome = match self.answer(&call, input, call.id, None, &mut out) {
                    Ok(()) => Outcome::Ok(out.into_vec()),
                    Err(error) => Outcome::Err(error),
                };
                let error = match &outcome {
                    Outcome::Ok(_) => None,
                    Outcome::Err(error) => Some(error.kind),
                };
                self.count(started, error, false);
                let link = self.link;
                send_reply(call.id, outcome, |message, shared| {
                    link.send_shared(message, shared)
                })?;
            }
            ToWorker::Attach => match fd.map(|fd| Direct::adopt(fd, self.hello.max_frame)) {
                Some(Ok(direct)) if self.direct.len() < MAX_CHANNELS => self.direct.push(direct),
                Some(Ok(_)) => warn!("more than {MAX_CHANNELS} direct channels: one refused"),
                Some(Err(error)) => warn!("cannot take a direct channel: {error}"),
                None => warn!("Attach came without its socket"),
            },
            ToWorker::Ping { nonce } => self.link.send(&FromWorker::Pong { nonce })?,
            ToWorker::HostReply { id, .. } => {
                debug!("host reply {id} arrived after its call ended")
            }
            ToWorker::Activate => debug!("Activate, but this worker is no spare"),
            ToWorker::Fault(Fault::CrashOnNextCall) => self.crash_on_next_call = true,
            ToWorker::Fault(Fault::FillMemory) => fill_memory(),
            ToWorker::CallIn { .. } | ToWorker::Release { .. } => {
                warn!("an arena frame on the supervisor's channel, where none belongs: ignored");
            }
            ToWorker::Shutdown => {
                debug!("shutdown requested");
                self.goodbye();
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Serve)
    }

    /// Serves a call from direct channel `index`; false when the channel
    /// is to be dropped (its host app does not take the reply).
    fn serve_direct(&mut self, index: usize, (call, input): DirectCall) -> bool {
        let started = Instant::now();
        // The reply may go in the channel's arena while the plugin runs.
        let mut arena = std::mem::replace(&mut self.direct[index].arena, Arena::new(0));
        let mut out = ReplyBuf::new(Some(&mut arena), self.hello.max_frame);
        let declared = self.hello.methods.iter().map(String::as_str);
        let result = if call.method.starts_with('@') {
            let message = format!("method {:?} is corral's own, not a host app's", call.method);
            Err(RemoteError::new(ErrorKind::BadRequest, message))
        } else {
            check_declared(&self.hello.plugin, &call.method, declared)
                .and_then(|()| self.answer(&call, input, 0, u32::try_from(index).ok(), &mut out))
        };
        let result = result.map(|()| out.finish());
        let error = result.as_ref().err().map(|error| error.kind);
        self.count(started, error, true);
        let direct = &mut self.direct[index];
        direct.arena = arena;
        let sent = match result {
            Ok(Written::Slot(slot)) => direct.send_placed(call.id, slot).map_err(Into::into),
            Ok(Written::Bytes(bytes)) => {
                send_reply(call.id, Outcome::Ok(bytes), |message, shared| {
                    Ok(direct.send(message, shared)?)
                })
            }
            Err(error) => send_reply(call.id, Outcome::Err(error), |message, shared| {
                Ok(direct.send(message, shared)?)
            }),
        };
        match sent {
            Ok(()) => true,
            Err(error) => {
                debug!("direct channel dropped: cannot reply: {error}");
                false
            }
        }
    }

    /// Answers every call buffered whole on each direct channel, then
    /// says `Goodbye` there: what the host app sent after that was never
    /// read, so it may send it again, to the worker that replaces this one.
    fn goodbye(&mut self) {
        for index in 0..self.direct.len() {
            loop {
                match self.direct[index].next_call() {
                    Ok(Some(call)) => {
                        if !self.serve_direct(index, call) {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = self.direct[index].send(&FromWorker::Goodbye, None);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        self.direct.clear();
    }

    /// Runs one call, its reply going to `out` (`host_call_id`: the id
    /// host services are asked under, 0 for a call the supervisor does not
    /// know; `direct`: the direct channel it came on). The flight recorder
    /// keeps it, health checks aside.
    fn answer(
        &mut self,
        call: &Call,
        input: Input,
        host_call_id: u64,
        direct: Option<u32>,
        out: &mut ReplyBuf<'_>,
    ) -> Result<(), RemoteError> {
        if self.crash_on_next_call {
            warn!("fault injected: aborting at call {}", call.id);
            std::process::abort();
        }
        if let Some(stats) = &self.stats {
            stats.begin();
        }
        let link = self.link;
        let result = if call.method == HEALTH_METHOD {
            if link.serving(host_call_id, || self.plugin.health()) {
                out.write(b"healthy");
                Ok(())
            } else {
                Err(RemoteError::new(
                    ErrorKind::Plugin,
                    "the plugin reports itself unhealthy",
                ))
            }
        } else {
            let deadline = Duration::from_millis(u64::from(call.deadline_ms));
            let mapped;
            let input: &[u8] = match &input {
                Input::Inline => &call.input,
                Input::Slot(view) => view,
                Input::Bad(error) => return Err(error.clone()),
                Input::Shared(shared) => match shared.map() {
                    Ok(mapping) => {
                        mapped = mapping;
                        &mapped
                    }
                    Err(error) => {
                        let message = format!("cannot map the call's shared input: {error}");
                        return Err(RemoteError::new(ErrorKind::Unavailable, message));
                    }
                },
            };
            let recorded = self
                .stats
                .as_ref()
                .map_or(0, |stats| stats.record_begin(&call.method, input, direct));
            let result = link.serving(host_call_id, || {
                self.plugin.call(&call.method, input, deadline, out)
            });
            if let Some(stats) = &self.stats {
                stats.record_end(recorded, result.as_ref().err().map(|error| error.kind));
            }
            result
        };
        link.serving(0, || self.plugin.recover());
        result
    }

    /// Ends the call begun at `started` on the stats page.
    fn count(&self, started: Instant, error: Option<ErrorKind>, direct: bool) {
        if let Some(stats) = &self.stats {
            stats.end(started.elapsed(), error, direct);
        }
    }
}

/// Sends a call's reply with `send`; a large reply goes in a sealed memfd,
/// and one too large for a frame becomes an error reply.
fn send_reply(
    id: u64,
    outcome: Outcome,
    mut send: impl FnMut(&FromWorker, Option<&SharedBytes>) -> Result<(), ChannelError>,
) -> Result<(), ChannelError> {
    let (outcome, shared) = match outcome {
        Outcome::Ok(bytes) => {
            let (bytes, shared) = share_large(bytes);
            (Outcome::Ok(bytes), shared)
        }
        outcome => (outcome, None),
    };
    match send(&FromWorker::Reply { id, outcome }, shared.as_ref()) {
        Err(ChannelError::Wire(WireError::TooLarge { len, max })) => {
            let message = format!("reply of {len} bytes exceeds the frame limit of {max} bytes");
            let outcome = Outcome::Err(RemoteError::new(ErrorKind::Plugin, message));
            send(&FromWorker::Reply { id, outcome }, None)
        }
        other => other,
    }
}
