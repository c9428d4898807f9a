//! Starting a plugin's workers: spawning and greeting one (or activating
//! its spare), checking its sandbox layers from outside, watching it until
//! it exits; spares made ahead; a replaced worker retired.

use crate::process::integrity::IntegrityError;
use crate::process::spawn::SpawnError;
use crate::process::worker::{self, Ended, StartError, Worker, WorkerContext};
use crate::services::HostContext;
use crate::services::kv::Quota;
use crate::supervise::discovery;
use crate::supervise::handle::{PluginHandle, Spec, Supervision};
use corral_plugin_api::wire::{ExitCause, ExitInfo};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// A worker serving the plugin.
pub(crate) struct Running {
    pub(crate) worker: Arc<Worker>,
    pub(crate) pid: u32,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) ended: JoinHandle<Ended>,
    pub(crate) ready_at: Instant,
}

/// How long after a worker is ready its spare is spawned.
pub(crate) const SPARE_DELAY: Duration = Duration::from_millis(100);

/// A spare worker (`[restart] spare`): spawned and sandboxed for `spec`,
/// waiting to load the plugin when the serving worker dies.
pub(crate) struct Spare {
    pub(crate) standby: worker::Standby,
    pub(crate) spec: Arc<Spec>,
}

/// Why a start failed.
pub(crate) enum LaunchError {
    /// Worth retrying (the restart policy decides).
    Failed(String),
    /// Will fail the same way until the plugin changes (integrity).
    Permanent(String),
}

/// Starts a worker for `spec` (activating `spare` when it was made for
/// the same spec), checks its sandbox layers, and watches it until it
/// exits.
pub(crate) async fn launch(
    plugin: &Arc<PluginHandle>,
    supervision: &Arc<Supervision>,
    spec: &Arc<Spec>,
    spare: Option<Spare>,
) -> Result<Running, LaunchError> {
    let name = plugin.name().to_owned();
    let spawned_at = Instant::now();
    let started = match spare {
        Some(spare) if Arc::ptr_eq(&spare.spec, spec) => {
            plugin.status().spare_pid = None;
            let pid = spare.standby.pid();
            debug!(plugin = %name, pid, "activating the spare worker");
            match worker::activate(spare.standby, supervision.start_timeout).await {
                Ok(started) => Ok(started),
                // The spare died waiting (an admin killed it, say): a
                // fresh worker then, not a failed start.
                Err(error) => {
                    warn!(plugin = %name, pid, "spare worker unusable ({error}); starting a new worker");
                    start_worker(plugin, spec, supervision).await
                }
            }
        }
        stale => {
            if let Some(stale) = stale {
                plugin.status().spare_pid = None;
                tokio::spawn(stale.standby.discard());
            }
            start_worker(plugin, spec, supervision).await
        }
    };
    let started = started.map_err(|failure| match failure {
        StartError::Spawn(SpawnError::Integrity(mismatch @ IntegrityError::Mismatch { .. })) => {
            LaunchError::Permanent(mismatch.to_string())
        }
        StartError::Exited(exit) => {
            let why = StartError::Exited(exit.clone()).to_string();
            plugin.status().record_exit(exit);
            LaunchError::Failed(why)
        }
        other => LaunchError::Failed(other.to_string()),
    })?;
    let pid = started.worker.pid();
    let ready_at = Instant::now();
    let layers = plugin.layers(spec, pid, &started.layers);
    let missing: Vec<&str> = layers
        .iter()
        .filter(|layer| !layer.active)
        .map(|layer| layer.name.as_str())
        .collect();
    if supervision.strict && !missing.is_empty() {
        let why = format!("strict: missing sandbox layers: {}", missing.join(", "));
        started.worker.condemn(ExitCause::Sandbox, why.clone());
        let (_stop, stopped) = watch::channel(false);
        let ended = worker::run_until_exit(started, stopped, supervision.stop_grace).await;
        let mut status = plugin.status();
        status.layers = layers;
        status.record_exit(ended.exit);
        return Err(LaunchError::Failed(why));
    }
    if missing.is_empty() {
        info!(plugin = %name, pid, "ready, every sandbox layer in force");
    } else {
        warn!(plugin = %name, pid, "ready; sandbox layers missing: {} (see corral inspect)", missing.join(", "));
    }
    {
        let mut status = plugin.status();
        status.pid = Some(pid);
        status.ready_since = Some(ready_at.into_std());
        status.start_time = Some(ready_at - spawned_at);
        status.spawn_mode = Some(started.process.mode());
        status.layers = layers;
    }
    supervision.watchdog.watch(&started.worker, &spec.limits);
    let worker = started.worker.clone();
    let (stop, stopped) = watch::channel(false);
    let plugin = plugin.clone();
    let grace = supervision.stop_grace;
    let ended = tokio::spawn(async move {
        let oom_kills = plugin
            .cgroup
            .as_ref()
            .and_then(crate::process::cgroup::Cgroup::oom_kills);
        let mut ended = worker::run_until_exit(started, stopped, grace).await;
        plugin.absorb_direct(ended.direct.as_ref());
        if plugin
            .cgroup
            .as_ref()
            .and_then(crate::process::cgroup::Cgroup::oom_kills)
            > oom_kills
        {
            ended.exit = crate::process::exit::oom_killed(ended.exit);
        }
        ended
    });
    Ok(Running {
        worker,
        pid,
        stop,
        ended,
        ready_at,
    })
}

/// Lets a replaced worker drain and stop, recording its exit.
pub(crate) fn retire(plugin: &Arc<PluginHandle>, old: Running) {
    old.worker.retire();
    old.stop.send_replace(true);
    let plugin = plugin.clone();
    tokio::spawn(async move {
        let ended = join(old.ended).await;
        info!(plugin = %plugin.name(), pid = old.pid, "previous generation drained: {}", ended.exit.description);
        plugin.status().record_exit(ended.exit);
    });
}

async fn start_worker(
    plugin: &Arc<PluginHandle>,
    spec: &Arc<Spec>,
    supervision: &Supervision,
) -> Result<worker::Started, StartError> {
    let greeted = spawn_worker(plugin, spec, supervision, false).await?;
    if spec.debug {
        let pid = greeted.pid();
        warn!(
            plugin = %plugin.name(),
            "debug: worker {pid} is stopped, sandboxed, before loading the plugin: \
             gdb -p {pid} (then `continue`), or kill -CONT {pid} to run it without one; \
             no deadline, health check or CPU watchdog applies"
        );
    }
    worker::until_ready_within(greeted, spec.start_timeout(supervision)).await
}

/// Spawns a spare worker for `spec`: sandboxed, plugin not loaded.
pub(crate) async fn start_spare(
    plugin: &Arc<PluginHandle>,
    spec: &Arc<Spec>,
    supervision: &Supervision,
) -> Result<worker::Standby, StartError> {
    let greeted = spawn_worker(plugin, spec, supervision, true).await?;
    worker::until_standby(greeted, supervision.start_timeout).await
}

/// Spawns a worker for `spec` and sends it its `Hello`.
async fn spawn_worker(
    plugin: &Arc<PluginHandle>,
    spec: &Arc<Spec>,
    supervision: &Supervision,
    standby: bool,
) -> Result<worker::Greeted, StartError> {
    let spawned = supervision.spawner.spawn(plugin.command(spec)).await?;
    let mut hello = plugin.hello(spec, supervision);
    hello.standby = standby;
    let manifest = &spec.plugin.manifest;
    let host = HostContext {
        plugin: manifest.name.clone(),
        grants: manifest.permissions.host.clone(),
        manifest: spec.plugin.dir.join(discovery::MANIFEST),
        storage_quota: Quota {
            bytes: spec.limits.storage_bytes,
            keys: spec.limits.storage_keys,
        },
        call_timeout: Duration::from_millis(spec.limits.call_timeout_ms),
        events: plugin.clone(),
        services: supervision.services.clone(),
    };
    let context = WorkerContext {
        host: Arc::new(host),
        refusals: plugin.clone(),
        log: plugin.log(),
    };
    worker::greet(spawned, hello, context, supervision.max_frame, |pid| {
        into_cgroup(plugin, spec, pid)
    })
    .await
}

/// Moves a new worker into the plugin's cgroup, when one is delegated.
fn into_cgroup(plugin: &PluginHandle, spec: &Spec, pid: u32) -> Result<(), String> {
    match &plugin.cgroup {
        Some(cgroup) => cgroup
            .prepare(&spec.limits)
            .and_then(|()| cgroup.add(pid))
            .map_err(|e| format!("cgroup {}: {e}", cgroup.dir().display())),
        None => Ok(()),
    }
}

/// A worker's end; a supervision task that panicked counts as a crash.
pub(crate) async fn join(
    ended: impl std::future::Future<Output = Result<Ended, tokio::task::JoinError>>,
) -> Ended {
    ended.await.unwrap_or_else(|error| Ended {
        exit: ExitInfo {
            at_unix_ms: crate::observe::clock::now_ms(),
            code: None,
            signal: None,
            cause: ExitCause::Signal,
            description: format!("lost: its supervision task failed: {error}"),
            output: Vec::new(),
        },
        direct: None,
        recorded: Vec::new(),
        crash_frames: None,
    })
}

/// Resolves when the spare, if any, has died.
pub(crate) async fn spare_exited(spare: &Option<Spare>) -> nix::sys::wait::WaitStatus {
    match spare {
        Some(spare) => spare.standby.exited().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the spare being made, if any, is made (or failed).
pub(crate) async fn made_spare(
    making: &mut Option<JoinHandle<Result<Spare, StartError>>>,
) -> Result<Result<Spare, StartError>, tokio::task::JoinError> {
    match making {
        Some(making) => making.await,
        None => std::future::pending().await,
    }
}

/// Resolves when the running worker, if any, has ended.
pub(crate) async fn wait_ended(running: &mut Option<Running>) -> Ended {
    match running {
        Some(running) => join(&mut running.ended).await,
        None => std::future::pending().await,
    }
}
