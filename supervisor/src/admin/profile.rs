//! `corral profile`: which syscalls a plugin makes beyond the seccomp
//! baseline, found before production does.
//!
//! The plugin runs under a private supervisor (in this process, on a
//! socket in a temporary folder) with every sandbox layer in force but
//! its seccomp filter profiling: what the baseline does not allow is
//! referred to the supervisor, which lets a refused syscall through and
//! refuses a killing one, counting both (the `refusals` module). Its `init`
//! runs, then the calls asked for; what the supervisor counted is the
//! profile. `[permissions] syscalls` is ignored while profiling, so the
//! profile is the whole list the plugin needs.

use super::private::Place;
use crate::client::ClientError;
use crate::config::ServeConfig;
use corral_plugin_api::manifest::{Manifest, ManifestError};
use corral_plugin_api::seccomp::Tier;
use corral_plugin_api::wire::{Action, PluginState, Refusal};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to profile.
#[derive(Debug, Clone)]
pub struct ProfileRequest {
    /// The plugin folder.
    pub dir: PathBuf,
    /// Calls to make after `init`, in order: (method, input).
    pub calls: Vec<(String, Vec<u8>)>,
    /// Folders of plugin folders to take the plugin's dependencies from.
    pub dependencies: Vec<PathBuf>,
    /// The `corral-worker` binary.
    pub worker_exe: PathBuf,
    /// Deadline of the start and of each call.
    pub timeout: Duration,
}

/// A plugin could not be profiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The plugin folder or its manifest cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The manifest is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The private supervisor could not start.
    #[error("cannot run a supervisor for the profile: {0}")]
    Serve(#[from] crate::ServeError),
    /// Talking to the private supervisor failed.
    #[error("the profiling supervisor: {0}")]
    Client(#[from] ClientError),
}

/// One profiled call.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    /// The method.
    pub method: String,
    /// The input, as text (lossy), cut at 100 bytes.
    pub input: String,
    /// The reply, as text (lossy), cut at 100 bytes, when it succeeded.
    pub reply: Option<String>,
    /// The reply's length, when it succeeded.
    pub reply_bytes: Option<usize>,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Bytes as text for a report: lossy, cut at 100 bytes.
fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(100)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if cut.len() < bytes.len() {
        text.push('…');
    }
    text
}

/// What a plugin did beyond the seccomp baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// Why it did not start, if it did not.
    pub start_error: Option<String>,
    /// The calls made, in order.
    pub calls: Vec<CallOutcome>,
    /// Refused syscalls it made (let through while profiling): what
    /// `[permissions] syscalls` must list, sorted.
    pub syscalls: Vec<String>,
    /// Killing syscalls it tried (refused while profiling): no manifest
    /// can allow them, and outside a profile the worker dies of them.
    pub kill: Vec<String>,
    /// Every syscall seen, with its tier and count, most first.
    pub counts: Vec<Refusal>,
    /// What the manifest lists in `[permissions] syscalls` now.
    pub listed: Vec<String>,
}

impl Profile {
    /// The `syscalls = [...]` line for `[permissions]`, when one is
    /// needed.
    pub fn line(&self) -> Option<String> {
        (!self.syscalls.is_empty()).then(|| {
            let quoted: Vec<String> = self.syscalls.iter().map(|s| format!("{s:?}")).collect();
            format!("syscalls = [{}]", quoted.join(", "))
        })
    }
}

/// Uids a profile's worker runs as (when root): apart from a serving
/// supervisor's (200000 and up by default).
const PROFILE_UID_BASE: u32 = 290_000;

/// Profiles the plugin `request` names. Call it inside a tokio runtime
/// with IO, time and signals enabled.
pub async fn profile(request: ProfileRequest) -> Result<Profile, ProfileError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let manifest_path = request.dir.join(crate::supervise::discovery::MANIFEST);
    let manifest = Manifest::parse(&read(&manifest_path)?, &manifest_path)?;
    let name = manifest.name.clone();
    let place = Place::new(
        "corral-profile-",
        &request.dir,
        &name,
        &request.dependencies,
    )
    .map_err(|(path, source)| ProfileError::Read { path, source })?;

    let mut config = ServeConfig::new(
        vec![place.plugins()],
        place.dir.path().join("corral.sock"),
        request.worker_exe.clone(),
    );
    config.state_dir = Some(place.dir.path().join("state"));
    config.profile = Some(name.clone());
    config.worker_uid_base = PROFILE_UID_BASE;
    config.start_timeout = request.timeout;
    let socket = config.socket.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let supervisor = tokio::spawn(crate::daemon::serve_until(config, async {
        let _ = stopped.await;
    }));
    let profiled = run(&socket, &name, &request, &supervisor).await;
    let _ = stop.send(());
    if let Ok(Err(error)) = supervisor.await {
        return Err(error.into());
    }
    let (start_error, calls, counts) = profiled?;
    let of_tier = |tier| {
        let mut names: Vec<String> = counts
            .iter()
            .filter(|refusal| refusal.tier == tier)
            .map(|refusal| refusal.syscall.clone())
            .collect();
        names.sort();
        names
    };
    Ok(Profile {
        plugin: name,
        version: manifest.version.to_string(),
        start_error,
        calls,
        syscalls: of_tier(Tier::Refuse),
        kill: of_tier(Tier::Kill),
        listed: manifest.permissions.syscall_names(),
        counts,
    })
}

type Profiled = (Option<String>, Vec<CallOutcome>, Vec<Refusal>);

/// Starts the plugin, makes the calls, and reads what was counted.
async fn run(
    socket: &Path,
    name: &str,
    request: &ProfileRequest,
    supervisor: &tokio::task::JoinHandle<Result<(), crate::ServeError>>,
) -> Result<Profiled, ProfileError> {
    let client = super::private::connect(socket, supervisor).await?;
    let started = client.control(name, Action::Start, request.timeout).await?;
    let start_error = match started.state {
        PluginState::Ready => None,
        _ => Some(
            started
                .last_exit
                .map(|exit| exit.description)
                .or(started.error)
                .unwrap_or_else(|| format!("{} after start", started.state.as_str())),
        ),
    };
    let mut calls = Vec::new();
    if start_error.is_none() {
        for (method, input) in &request.calls {
            let outcome = client
                .call_with_timeout(name, method, input.clone(), request.timeout)
                .await;
            calls.push(CallOutcome {
                method: method.clone(),
                input: preview(input),
                reply: outcome.as_deref().ok().map(preview),
                reply_bytes: outcome.as_ref().ok().map(Vec::len),
                error: outcome.err().map(|error| error.to_string()),
            });
        }
    }
    let counts = client.inspect(name).await?.refused;
    Ok((start_error, calls, counts))
}
