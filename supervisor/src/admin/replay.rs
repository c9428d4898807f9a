//! `corral replay ID`: the calls a crash report recorded, fed in order to
//! the same plugin build in a fresh worker with the same limits and
//! sandbox, under a private supervisor (not attached to any host app);
//! says whether the crash came again with the same cause. With `debug`,
//! the worker waits for a debugger first, as under `corral serve --debug`.

use super::private::Place;
use crate::client::ClientError;
use crate::config::ServeConfig;
use corral_plugin_api::manifest::Limits;
use corral_plugin_api::wire::{Action, CrashReport, ExitInfo, PluginState};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The crash report.
    pub report: CrashReport,
    /// Folders of plugin folders to take the plugin's dependencies from.
    pub dependencies: Vec<PathBuf>,
    /// The `corral-worker` binary.
    pub worker_exe: PathBuf,
    /// Replay even though the plugin's entry changed since the crash.
    pub force: bool,
    /// Stop the worker for a debugger before the plugin loads.
    pub debug: bool,
}

/// Why a report could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The plugin's entry is not the build that crashed.
    #[error(
        "{entry} changed since the crash (sha256 {now}, was {was}): this is not the build that crashed; pass --force to replay anyway"
    )]
    Changed {
        /// The entry file.
        entry: String,
        /// Its SHA-256 in the report.
        was: String,
        /// Its SHA-256 now.
        now: String,
    },
    /// A file or folder cannot be used.
    #[error("{}: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The private supervisor could not start.
    #[error("cannot run a supervisor for the replay: {0}")]
    Serve(#[from] crate::ServeError),
    /// Talking to the private supervisor failed.
    #[error("the replaying supervisor: {0}")]
    Client(#[from] ClientError),
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The report replayed.
    pub id: String,
    /// The plugin.
    pub plugin: String,
    /// The cause in the report.
    pub expected: String,
    /// Calls sent, in order, until the worker died (or all of them).
    pub sent: usize,
    /// How the replaying worker ended, if it did.
    pub exit: Option<ExitInfo>,
    /// It ended with the report's cause (same classification, signal and
    /// exit code).
    pub reproduced: bool,
    /// Why it did not start, if it did not.
    pub start_error: Option<String>,
}

/// Uids a replay's worker runs as (when root): apart from a serving
/// supervisor's and a profile's.
const REPLAY_UID_BASE: u32 = 295_000;

/// How long a debugged worker may wait for its debugger.
const DEBUG_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Replays `request`'s report. Call it inside a tokio runtime with IO,
/// time and signals enabled.
pub async fn replay(request: ReplayRequest) -> Result<Replay, ReplayError> {
    let report = &request.report;
    let now = std::fs::File::open(&report.entry)
        .and_then(|file| crate::process::integrity::file_sha256(&file))
        .map_err(|source| ReplayError::Read {
            path: PathBuf::from(&report.entry),
            source,
        })?;
    if now != report.entry_sha256 && !request.force {
        return Err(ReplayError::Changed {
            entry: report.entry.clone(),
            was: report.entry_sha256.clone(),
            now,
        });
    }
    let place = Place::new(
        "corral-replay-",
        Path::new(&report.dir),
        &report.plugin,
        &request.dependencies,
    )
    .map_err(|(path, source)| ReplayError::Read { path, source })?;
    let mut config = ServeConfig::new(
        vec![place.plugins()],
        place.dir.path().join("corral.sock"),
        request.worker_exe.clone(),
    );
    config.state_dir = Some(place.dir.path().join("state"));
    config.worker_uid_base = REPLAY_UID_BASE;
    config.call_timeout = Duration::from_millis(report.limits.call_timeout_ms);
    config.default_limits = limits(report);
    if request.debug {
        config.debug = Some(report.plugin.clone());
        config.start_timeout = DEBUG_WAIT;
    }
    let socket = config.socket.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let supervisor = tokio::spawn(crate::daemon::serve_until(config, async {
        let _ = stopped.await;
    }));
    let replayed = run(&socket, &request, &supervisor).await;
    let _ = stop.send(());
    if let Ok(Err(error)) = supervisor.await {
        return Err(error.into());
    }
    replayed
}

/// Starts the plugin, sends the calls until one crashes the worker, and
/// compares how it ended with the report.
async fn run(
    socket: &Path,
    request: &ReplayRequest,
    supervisor: &tokio::task::JoinHandle<Result<(), crate::ServeError>>,
) -> Result<Replay, ReplayError> {
    let report = &request.report;
    let name = report.plugin.as_str();
    let client = super::private::connect(socket, supervisor).await?;
    let wait = if request.debug {
        DEBUG_WAIT
    } else {
        Duration::from_millis(report.limits.call_timeout_ms.max(10_000))
    };
    let started = client.control(name, Action::Start, wait).await?;
    let mut replay = Replay {
        id: report.id.clone(),
        plugin: name.to_owned(),
        expected: report.exit.description.clone(),
        sent: 0,
        exit: None,
        reproduced: false,
        start_error: None,
    };
    if started.state != PluginState::Ready {
        replay.start_error = Some(
            started
                .last_exit
                .map(|exit| exit.description)
                .or(started.error)
                .unwrap_or_else(|| format!("{} after start", started.state.as_str())),
        );
        return Ok(replay);
    }
    let first = started.pid;
    // Under a debugger, a call waits as long as the author steps.
    let timeout = if request.debug {
        DEBUG_WAIT
    } else {
        Duration::from_millis(report.limits.call_timeout_ms)
    };
    for call in &report.calls {
        replay.sent += 1;
        let answer = client
            .call_with_timeout(name, &call.method, call.input.clone(), timeout)
            .await;
        if answer.is_err() {
            // Did the worker die? Its exit is recorded once the
            // supervisor has seen it.
            let ended = wait_for_exit(&client, name, first).await?;
            if ended.is_some() {
                replay.exit = ended;
                break;
            }
        }
    }
    replay.reproduced = replay.exit.as_ref().is_some_and(|exit| {
        exit.cause == report.exit.cause
            && exit.signal == report.exit.signal
            && exit.code == report.exit.code
    });
    Ok(replay)
}

/// The exit of the worker `pid` once the supervisor has recorded it;
/// `None` when it still serves after a moment.
async fn wait_for_exit(
    client: &crate::client::Client,
    name: &str,
    pid: Option<u32>,
) -> Result<Option<ExitInfo>, ClientError> {
    for _ in 0..200 {
        let info = client.inspect(name).await?.info;
        if (info.pid != pid || info.state != PluginState::Ready)
            && let Some(exit) = info.last_exit
        {
            return Ok(Some(exit));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(None)
}

/// The report's limits as defaults for what the manifest leaves unset.
fn limits(report: &CrashReport) -> Limits {
    let limits = &report.limits;
    Limits {
        memory_mb: Some(limits.memory_bytes >> 20),
        cpu_seconds: limits.cpu_seconds,
        cpu_percent: limits.cpu_percent,
        call_timeout_ms: None,
        open_files: Some(limits.open_files),
        threads: Some(limits.threads),
        file_size_mb: Some(limits.file_size_bytes >> 20),
        wasm_fuel: Some(limits.wasm_fuel),
        storage_mb: Some(limits.storage_bytes >> 20),
        storage_keys: Some(limits.storage_keys),
    }
}
