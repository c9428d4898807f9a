//! The supervisor channel once the plugin runs, shared by the serve loop
//! and the plugin's host services.
//!
//! The serve loop reads calls and answers them. While plugin code runs for
//! a call (or `init`, a health check, an event), that code may ask for a
//! host service: the link sends `HostCall` tagged with the call being
//! served and reads frames until the matching `HostReply`, answering pings
//! and queueing calls (the supervisor pipelines them) for the serve loop.
//! One lock covers the channel, so threads of a native plugin may use host
//! services concurrently; they take turns.

use crate::channel::{Channel, ChannelError};
use corral_plugin_api::wire::{FromWorker, HostCall, Outcome, SharedBytes, ToWorker, WireError};
use corral_plugin_api::{ErrorKind, RemoteError, abi};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tracing::debug;

/// A frame from the supervisor and what came with it.
pub(crate) type Received = crate::channel::Received<ToWorker>;

/// The worker's channel to the supervisor, after the handshake.
pub(crate) struct Link {
    state: Mutex<State>,
    /// The plugin's effective `[config]`, TOML text: served here, at any
    /// time, without asking the supervisor.
    config: String,
}

struct State {
    channel: Channel,
    /// Frames read while waiting for a host reply, for the serve loop.
    queued: VecDeque<Received>,
    /// The call being served (0 for `init`, health checks and recovery);
    /// `None` between calls, when host services are refused.
    serving: Option<u64>,
    next_id: u64,
}

impl Link {
    pub(crate) fn new(channel: Channel, config: String) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                channel,
                queued: VecDeque::new(),
                serving: None,
                next_id: 1,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next frame for the serve loop, with its shared payload: queued
    /// ones first. `None` when the supervisor closed the channel.
    pub(crate) fn recv(&self) -> Result<Option<Received>, ChannelError> {
        let mut state = self.state();
        match state.queued.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => state.channel.recv(),
        }
    }

    /// The next frame for the serve loop that needs no read from the
    /// socket: queued, or buffered whole already.
    pub(crate) fn try_recv(&self) -> Result<Option<Received>, ChannelError> {
        let mut state = self.state();
        match state.queued.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => state.channel.try_buffered(),
        }
    }

    /// The channel's socket, to wait on (it stays open as long as `self`).
    pub(crate) fn raw_socket(&self) -> RawFd {
        self.state().channel.socket().as_raw_fd()
    }

    /// Sends one frame.
    pub(crate) fn send(&self, message: &FromWorker) -> Result<(), ChannelError> {
        self.state().channel.send(message)
    }

    /// Sends one frame with `shared` as its payload.
    pub(crate) fn send_shared(
        &self,
        message: &FromWorker,
        shared: Option<&SharedBytes>,
    ) -> Result<(), ChannelError> {
        self.state().channel.send_shared(message, shared)
    }

    /// Runs plugin code serving call `call` (0: not a call): host services
    /// are available while it runs.
    pub(crate) fn serving<R>(&self, call: u64, run: impl FnOnce() -> R) -> R {
        struct Done<'a>(&'a Link);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.state().serving = None;
            }
        }
        self.state().serving = Some(call);
        let _done = Done(self);
        run()
    }

    /// Asks the supervisor for host service `op` and waits for its answer
    /// (the supervisor always answers, within the call's deadline).
    pub(crate) fn host_call(&self, op: &str, input: &[u8]) -> Result<Vec<u8>, RemoteError> {
        if op == abi::OP_CONFIG {
            return Ok(self.config.as_bytes().to_vec());
        }
        let mut state = self.state();
        let Some(call) = state.serving else {
            return Err(RemoteError::new(
                ErrorKind::Unavailable,
                format!(
                    "host service `{op}` asked for outside a call: host services are served \
                     during init, calls, events and health checks, on the thread serving them \
                     or threads it waits for"
                ),
            ));
        };
        let id = state.next_id;
        state.next_id += 1;
        let request = FromWorker::HostCall(HostCall {
            call,
            id,
            op: op.to_owned(),
            input: input.to_vec(),
        });
        state
            .channel
            .send(&request)
            .map_err(|error| lost(op, &error))?;
        loop {
            let received = state.channel.recv().map_err(|error| lost(op, &error))?;
            match received.as_ref().map(|received| &received.message) {
                Some(ToWorker::HostReply { id: got, outcome }) if *got == id => {
                    return match outcome {
                        Outcome::Ok(bytes) => Ok(bytes.clone()),
                        Outcome::Err(error) => Err(error.clone()),
                    };
                }
                Some(ToWorker::Activate) => debug!("Activate, but this worker is no spare"),
                Some(ToWorker::HostReply { id: stray, .. }) => {
                    debug!("stray host reply {stray} (waiting for {id})");
                }
                Some(ToWorker::Ping { nonce }) => {
                    let pong = FromWorker::Pong { nonce: *nonce };
                    state
                        .channel
                        .send(&pong)
                        .map_err(|error| lost(op, &error))?;
                }
                Some(
                    ToWorker::Call(_)
                    | ToWorker::Shutdown
                    | ToWorker::Fault(_)
                    | ToWorker::Attach
                    | ToWorker::CallIn { .. }
                    | ToWorker::Release { .. },
                ) => {
                    state.queued.extend(received);
                }
                None => {
                    return Err(RemoteError::new(
                        ErrorKind::Unavailable,
                        format!("host service `{op}`: the supervisor went away"),
                    ));
                }
            }
        }
    }
}

/// A host call that could not be sent or answered.
fn lost(op: &str, error: &ChannelError) -> RemoteError {
    let kind = match error {
        ChannelError::Wire(WireError::TooLarge { .. }) => ErrorKind::BadRequest,
        _ => ErrorKind::Unavailable,
    };
    RemoteError::new(kind, format!("host service `{op}`: {error}"))
}
