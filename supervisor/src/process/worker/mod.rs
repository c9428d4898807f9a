//! One running worker process, from the supervisor's side: its process
//! (watched through a pidfd), its handshake, its channel, and the calls in
//! flight to it.
//!
//! A call registers a one-shot reply slot under a fresh id, writes one
//! frame and waits. The reader task completes slots as replies arrive. When
//! the worker dies, every slot still open is failed with how it died:
//! callers never hang on a dead worker.

mod calls;
mod direct;
mod handshake;
mod process;
mod serve;

pub(crate) use calls::{BoxFuture, Called, Chain, HostCalls, Origin, Worker};
pub(crate) use direct::Lease;
pub(crate) use handshake::{
    Greeted, Standby, StartError, Started, WorkerContext, activate, greet, until_ready_within,
    until_standby,
};
pub(crate) use serve::{Ended, run_until_exit};
