//! Direct channels on the host socket: a host app asks for one to a
//! plugin's serving worker ([`RequestBody::Direct`]), gets the socket and
//! keeps the request open; when that worker stops serving, the request's
//! last reply says how ([`Reply::DirectEnded`]). A host app that finds the
//! worker breaking the protocol on its channel, or missing the plugin's
//! deadline, says so ([`RequestBody::DirectReport`]), and the supervisor
//! acts as it would on its own channel.
//!
//! [`RequestBody::Direct`]: corral_plugin_api::wire::RequestBody::Direct
//! [`RequestBody::DirectReport`]: corral_plugin_api::wire::RequestBody::DirectReport

use crate::host::server::Server;
use crate::host::stream::Stream;
use corral_plugin_api::wire::{DirectReport, EventKind, ExitCause, Reply};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::time::Duration;
use tracing::warn;

/// How long a worker reported overdue has to answer a ping.
const PING_GRACE: Duration = Duration::from_millis(250);

impl Server {
    /// Opens a direct channel to `plugin`'s serving worker and keeps
    /// `stream` open until that worker stops serving or the client goes.
    pub(super) async fn direct(&self, plugin: &str, stream: &Stream) -> Result<(), RemoteError> {
        if !stream.shared_replies {
            return Err(RemoteError::new(
                ErrorKind::BadRequest,
                "a direct channel travels as an fd: it needs a bincode connection whose hello \
                 takes shared payloads",
            ));
        }
        let handle = self.plugin(plugin)?;
        let (socket, _lease, worker, channel) = handle.direct().await?;
        let mut ended = worker.ended();
        stream.directs.add(plugin, worker.clone());
        if stream.send_fd(Reply::Direct(channel), socket).await {
            let end = tokio::select! {
                end = ended.wait_for(Option::is_some) => end.ok().and_then(|end| end.clone()),
                () = stream.closed() => None,
            };
            if let Some(end) = end {
                let reply = Reply::DirectEnded {
                    retired: end.retired,
                    error: end.error,
                };
                stream.send(reply).await;
            }
        }
        stream.directs.remove(&worker);
        Ok(())
    }

    /// Acts on a host app's report about the worker behind its direct
    /// channel to `plugin`. Only a connection that holds a channel to the
    /// serving worker may report; the event names the report, so an admin
    /// can tell a hostile worker from a hostile client. A report of a
    /// missed deadline kills only a worker that does not answer a ping at
    /// once (a worker between calls answers at once), so a client cannot
    /// have an idle worker killed by saying so.
    pub(super) async fn direct_report(
        &self,
        plugin: &str,
        report: DirectReport,
        stream: &Stream,
    ) -> Result<Reply, RemoteError> {
        let handle = self.plugin(plugin)?;
        let serving = handle
            .serving()
            .filter(|worker| stream.directs.holds(plugin, worker));
        let Some(worker) = serving else {
            return Err(RemoteError::new(
                ErrorKind::BadRequest,
                format!("this connection holds no direct channel to `{plugin}`'s serving worker"),
            ));
        };
        let (cause, why) = match report {
            DirectReport::Broken { why } => (
                ExitCause::ProtocolViolation,
                format!("a host app reports it broke the protocol on a direct channel: {why}"),
            ),
            DirectReport::Overdue => {
                if worker.answers_ping(PING_GRACE).await {
                    return Ok(Reply::Controlled(Box::new(handle.info())));
                }
                let deadline = handle.spec().limits.call_timeout_ms;
                (
                    ExitCause::CallDeadline,
                    format!(
                        "a direct call missed the plugin's {deadline} ms deadline and the \
                         worker did not answer a ping within {} ms",
                        PING_GRACE.as_millis()
                    ),
                )
            }
        };
        warn!(plugin, pid = worker.pid(), "{why}; killing the worker");
        handle.event(EventKind::Limit, format!("worker {}: {why}", worker.pid()));
        worker.condemn(cause, why);
        Ok(Reply::Controlled(Box::new(handle.info())))
    }
}
