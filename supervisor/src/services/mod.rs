//! Host services: what a plugin may ask the supervisor for while it runs
//! (`kv_*`, `publish`, `call:PLUGIN/METHOD`), each checked against the
//! manifest the worker was started from (`[permissions] host`) before it
//! is served. A refusal is logged and recorded as an event.
//!
//! Services reach the plugins (a call into a dependency, a publication's
//! subscribers) through [`Plugins`], and record what happens through
//! [`PluginEvents`]: the supervisor implements both; nothing here knows
//! its types. A worker reaches a [`HostContext`] through the process
//! layer's `HostCalls`.

pub(crate) mod bus;
pub(crate) mod kv;

use crate::config::StorageSync;
use crate::process::worker::{BoxFuture, Chain, HostCalls, Origin};
use crate::services::bus::Bus;
use crate::services::kv::{Kv, KvError, Quota};
use crate::transport::payload::Payload;
use corral_plugin_api::abi::{
    OP_CALL, OP_KV_BATCH, OP_KV_DELETE, OP_KV_GET, OP_KV_LIST, OP_KV_PAGE, OP_KV_PUT, OP_PUBLISH,
};
use corral_plugin_api::kv as format;
use corral_plugin_api::manifest::{HostGrant, check_topic};
use corral_plugin_api::wire::EventKind;
use corral_plugin_api::{ErrorKind, RemoteError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// The plugins as services see them: implemented by the supervisor's
/// registry.
pub(crate) trait Plugins: Send + Sync + 'static {
    /// Calls `method` of plugin `name` for the plugins on `chain`, within
    /// `budget` when one is given; `unknown_plugin` when there is none.
    fn call(
        &self,
        name: &str,
        method: String,
        input: Payload,
        budget: Option<Duration>,
        chain: Chain,
    ) -> BoxFuture<'static, Result<Payload, RemoteError>>;

    /// The plugins whose manifest subscribes to `topic`.
    fn subscribed(&self, topic: &str) -> Vec<String>;
}

/// Where what a plugin's host services refuse or run into is recorded:
/// implemented by the supervisor's plugin handle.
pub(crate) trait PluginEvents: Send + Sync + 'static {
    /// Records an event about the plugin.
    fn event(&self, kind: EventKind, detail: String);
}

/// The services every plugin shares.
pub(crate) struct Services {
    pub(crate) bus: Bus,
    plugins: Arc<dyn Plugins>,
    /// `None` without a state folder.
    kv: Option<Arc<Kv>>,
}

/// A storage operation.
#[derive(Debug, Clone, Copy)]
enum KvOp {
    Get,
    Put,
    Delete,
    List,
    Page,
    Batch,
}

/// The storage services by their op prefix (`kv_get:KEY`, ...).
const KV_OPS: [(&str, KvOp); 6] = [
    (OP_KV_GET, KvOp::Get),
    (OP_KV_PUT, KvOp::Put),
    (OP_KV_DELETE, KvOp::Delete),
    (OP_KV_LIST, KvOp::List),
    (OP_KV_PAGE, KvOp::Page),
    (OP_KV_BATCH, KvOp::Batch),
];

impl Services {
    /// The services; plugin storage under `STATE/kv` when there is a state
    /// folder, flushed as `sync` says.
    pub(crate) fn new(
        plugins: Arc<dyn Plugins>,
        state_dir: Option<&std::path::Path>,
        sync: StorageSync,
    ) -> Self {
        Self {
            bus: Bus::new(plugins.clone()),
            plugins,
            kv: state_dir.map(|dir| Arc::new(Kv::new(dir.join("kv"), sync))),
        }
    }

    /// Plugin storage, `None` without a state folder.
    pub(crate) fn kv(&self) -> Option<&Arc<Kv>> {
        self.kv.as_ref()
    }
}

/// One worker's host services: what its manifest grants, where events
/// about it go, and the shared services.
#[derive(Clone)]
pub(crate) struct HostContext {
    /// The plugin's name.
    pub(crate) plugin: String,
    /// `[permissions] host`.
    pub(crate) grants: Vec<HostGrant>,
    /// Its manifest file, for messages.
    pub(crate) manifest: PathBuf,
    /// Its storage quota: bytes of keys and values, and keys.
    pub(crate) storage_quota: Quota,
    /// Its call deadline: how long a host call made outside any call
    /// (`init`, a health check) may take.
    pub(crate) call_timeout: Duration,
    pub(crate) events: Arc<dyn PluginEvents>,
    pub(crate) services: Arc<Services>,
}

impl HostCalls for HostContext {
    fn serve<'a>(
        &'a self,
        origin: Origin,
        op: &'a str,
        input: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(self.serve(origin, op, input))
    }

    fn outside_calls(&self) -> Duration {
        self.call_timeout
    }
}

impl HostContext {
    fn name(&self) -> &str {
        &self.plugin
    }

    /// Serves host call `op` (`NAME:ARG`) made inside `origin`.
    pub(crate) async fn serve(
        &self,
        origin: Origin,
        op: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, RemoteError> {
        let storage = KV_OPS
            .into_iter()
            .find_map(|(prefix, kind)| Some((kind, op.strip_prefix(prefix)?)));
        if let Some((kind, key)) = storage {
            self.allow(&HostGrant::Kv, op)?;
            self.kv(kind, key.to_owned(), input).await
        } else if let Some(topic) = op.strip_prefix(OP_PUBLISH) {
            self.allow(&HostGrant::Publish, op)?;
            check_topic(topic, false).map_err(|problem| {
                RemoteError::new(
                    ErrorKind::BadRequest,
                    format!("publish {topic:?}: {problem}"),
                )
            })?;
            self.services.bus.publish(self.name(), topic, input);
            Ok(Vec::new())
        } else if let Some(call) = op.strip_prefix(OP_CALL) {
            let Some((target, method)) = call.split_once('/') else {
                return Err(RemoteError::new(
                    ErrorKind::BadRequest,
                    format!("host service {op:?}: expected call:PLUGIN/METHOD"),
                ));
            };
            self.allow(&HostGrant::Call(target.to_owned()), op)?;
            self.call(origin, target, method, input).await
        } else {
            Err(RemoteError::new(
                ErrorKind::BadRequest,
                format!(
                    "unknown host service {op:?}: expected kv_get, kv_put, kv_delete, kv_list, kv_page, kv_batch, publish or call"
                ),
            ))
        }
    }

    /// Refuses `op` unless the manifest grants `grant`.
    fn allow(&self, grant: &HostGrant, op: &str) -> Result<(), RemoteError> {
        if self.grants.contains(grant) {
            return Ok(());
        }
        let why = format!(
            "plugin `{}` may not use host service `{op}`: add \"{grant}\" to [permissions] host in {}",
            self.name(),
            self.manifest.display()
        );
        warn!(plugin = %self.name(), "{why}");
        self.events.event(EventKind::Denied, why.clone());
        Err(RemoteError::new(ErrorKind::PermissionDenied, why))
    }

    /// Serves storage op `op` on `arg` (a key or a prefix) with `input`.
    async fn kv(&self, op: KvOp, arg: String, input: Vec<u8>) -> Result<Vec<u8>, RemoteError> {
        let Some(kv) = self.services.kv.clone() else {
            return Err(storage_off());
        };
        let plugin = self.name().to_owned();
        let quota = self.storage_quota;
        let result = tokio::task::spawn_blocking(move || match op {
            KvOp::Get => kv.get(&plugin, &arg),
            KvOp::Put => kv.put(&plugin, &arg, &input, quota).map(|()| Vec::new()),
            KvOp::Delete => kv.delete(&plugin, &arg).map(|()| Vec::new()),
            KvOp::List => kv
                .list(&plugin, &arg)
                .map(|keys| keys.join("\n").into_bytes()),
            KvOp::Page => {
                let (start, limit) = format::decode_page_request(&input)
                    .map_err(|error| KvError::BadRequest(format!("kv_page: {error}")))?;
                kv.page(&plugin, &arg, start, limit)
                    .map(|page| format::encode_page(&page))
            }
            KvOp::Batch if !arg.is_empty() => Err(KvError::BadRequest(format!(
                "kv_batch takes no argument, got {arg:?}"
            ))),
            KvOp::Batch => {
                let writes = format::decode_batch(&input)
                    .map_err(|error| KvError::BadRequest(format!("kv_batch: {error}")))?;
                kv.batch(&plugin, &writes, quota).map(|()| Vec::new())
            }
        })
        .await
        .map_err(|error| RemoteError::new(ErrorKind::Unavailable, format!("storage: {error}")))?;
        result.map_err(|error| {
            if matches!(error, KvError::Quota { .. } | KvError::Keys { .. }) {
                warn!(plugin = %self.name(), "{error}");
                self.events.event(EventKind::Limit, error.to_string());
            } else if matches!(error, KvError::Db { .. } | KvError::Io { .. }) {
                warn!(plugin = %self.name(), "{error}");
            }
            error.into()
        })
    }

    /// Calls `method` of `target` within nine tenths of what is left of
    /// the caller's time (so the caller can still answer when it fails),
    /// refusing at once a call back into a plugin on the chain.
    async fn call(
        &self,
        origin: Origin,
        target: &str,
        method: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut chain = (*origin.chain).clone();
        chain.push(self.name().to_owned());
        if chain.iter().any(|plugin| plugin == target) {
            chain.push(target.to_owned());
            return Err(RemoteError::new(
                ErrorKind::BadRequest,
                format!(
                    "call cycle {}: `{target}` is waiting for this call, so it cannot answer",
                    chain.join(" → ")
                ),
            ));
        }
        if method.starts_with('@') {
            return Err(reserved(method));
        }
        let left = origin.deadline.saturating_duration_since(Instant::now());
        let budget = (left * 9 / 10).max(Duration::from_millis(1));
        self.services
            .plugins
            .call(
                target,
                method.to_owned(),
                input.into(),
                Some(budget),
                Arc::new(chain),
            )
            .await?
            .into_bytes()
    }
}

/// Storage without a state folder.
pub(crate) fn storage_off() -> RemoteError {
    RemoteError::new(
        ErrorKind::Unavailable,
        "storage is off: this supervisor has no state folder (--state-dir)",
    )
}

/// Methods starting with `@` are corral's own (`@event:TOPIC`).
pub(crate) fn reserved(method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::BadRequest,
        format!("method {method:?} is reserved: names starting with `@` are corral's own"),
    )
}
