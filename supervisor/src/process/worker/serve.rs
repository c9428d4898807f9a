//! A ready worker's channel: the reader that delivers replies and serves
//! host calls, the writer task, and the supervision loop that ends the
//! worker (a stop, a condemnation, a protocol violation) and fails what
//! was in flight.

use super::calls::{HostCalls, MAX_HOST_CALLS, Worker};
use super::handshake::Started;
use super::process::last_output;
use crate::process::exit::{exit_info, with_output};
use crate::transport::framed::FrameReader;
use crate::transport::payload::Payload;
use corral_plugin_api::wire::{
    self, CrashFrames, DirectCounts, ExitCause, ExitInfo, FromWorker, Outcome, RecordedCall,
    ToWorker, WireError,
};
use corral_plugin_api::{ErrorKind, RemoteError, seccomp};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, warn};

/// How a served worker ended.
pub(crate) struct Ended {
    pub(crate) exit: ExitInfo,
    /// What the worker counted on its direct channels, all told.
    pub(crate) direct: Option<DirectCounts>,
    /// The calls its flight recorder kept.
    pub(crate) recorded: Vec<RecordedCall>,
    /// What a native plugin's crash handler wrote.
    pub(crate) crash_frames: Option<CrashFrames>,
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
    let pid = process.pid();
    // A dying worker's end is known from its channel's end, before the
    // exit completes; it is reaped in the background then.
    let mut exiting = false;
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
                    // The worker closed its channel. A dying one ends now,
                    // with the status the kernel already recorded; one that
                    // lives on gets the grace period, then is killed.
                    None => match process.exiting() {
                        Some(status) => {
                            exiting = true;
                            break status;
                        }
                        None => if kill_at.is_none() {
                            kill_at = Some(Instant::now() + grace);
                        },
                    },
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
    // Before anything else (the output tail can take a moment, and the
    // replacement starts once this returns).
    let (exit, error) = failure(&worker, status, verdict.as_ref());
    worker.close(error);
    if exiting {
        tokio::spawn(async move { process.wait().await });
    }
    let exit = with_output(exit, last_output(output).await);
    debug!(plugin = %worker.plugin, pid, "worker {}", exit.description);
    Ended {
        exit,
        direct: worker.direct_counts(),
        recorded: worker.recorded(),
        crash_frames: worker.crash_frames(),
    }
}

/// How the worker ended, and the error its calls in flight fail with,
/// from its wait status and `verdict` (what the supervisor did to it and
/// why); a forbidden syscall it reported outranks the verdict.
fn failure(
    worker: &Worker,
    status: WaitStatus,
    verdict: Option<&(ExitCause, String)>,
) -> (ExitInfo, RemoteError) {
    let violation = worker.pending().violation.map(|syscall| {
        (
            ExitCause::Seccomp,
            format!("forbidden syscall {}", seccomp::describe(syscall.into())),
        )
    });
    let verdict = violation.as_ref().or(verdict);
    let exit = exit_info(
        status,
        verdict.map(|(cause, why)| (*cause, why.as_str())),
        None,
    );
    let error = if matches!(verdict, Some((ExitCause::Stopped, _))) {
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
    (exit, error)
}

/// Delivers replies until end of stream (`None`) or a protocol violation
/// (`Some(reason)`).
async fn read_replies(
    mut reader: FrameReader,
    worker: Arc<Worker>,
    host: Arc<dyn HostCalls>,
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
            (Ok(FromWorker::Pong { nonce }), None) => {
                worker.pong.send_replace(nonce);
            }
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
