//! Hot reload's eyes: `notify` watches the plugin folders (and the folders
//! of entries that are symlinks to elsewhere, such as a build's output).
//! Changes are gathered until the file system has been quiet for
//! [`QUIET`] (an editor or a build writes in bursts), then the fleet looks
//! again ([`Fleet::rescan`]).

use crate::supervise::fleet::Fleet;
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long the file system must be quiet before a rescan.
const QUIET: Duration = Duration::from_millis(250);
/// The longest a burst of changes delays a rescan.
const AT_MOST: Duration = Duration::from_secs(2);

/// Keeps watching while it lives.
pub(crate) struct Watcher {
    _watcher: RecommendedWatcher,
}

/// Watches the fleet's plugin folders and rescans on changes, and
/// `config_file` (corral.toml), whose config overrides are read again
/// when it changes.
pub(crate) fn watch(
    fleet: Arc<Fleet>,
    dirs: &[PathBuf],
    config_file: Option<PathBuf>,
) -> notify::Result<Watcher> {
    let (changes, mut received) = mpsc::unbounded_channel::<PathBuf>();
    // Of corral.toml's folder, only the file matters (a log file beside
    // it would otherwise be a change each time a rescan logs).
    let config_folder = config_file
        .as_deref()
        .and_then(Path::parent)
        .map(PathBuf::from);
    let (file, plugin_dirs) = (config_file.clone(), dirs.to_vec());
    let unrelated = move |path: &Path| {
        config_folder.as_deref() == path.parent()
            && file.as_deref() != Some(path)
            && !plugin_dirs.iter().any(|dir| path.starts_with(dir))
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reading a file (ours included, at reload) is no change.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                for path in event.paths.into_iter().filter(|path| !unrelated(path)) {
                    let _ = changes.send(path);
                }
            }
            Err(error) => warn!("watching plugin folders: {error}"),
        }
    })?;
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::Recursive)?;
    }
    // Entries that live elsewhere (a symlink into a build folder).
    let outside: BTreeSet<PathBuf> = fleet
        .registry
        .handles()
        .iter()
        .filter_map(|handle| {
            let entry = handle.spec().plugin.entry.clone();
            let inside = dirs.iter().any(|dir| entry.starts_with(dir));
            (!inside)
                .then(|| entry.parent().map(PathBuf::from))
                .flatten()
        })
        .collect();
    // Its folder: an editor replaces the file rather than writing it.
    if let Some(folder) = config_file.as_deref().and_then(Path::parent)
        && let Err(error) = watcher.watch(folder, RecursiveMode::NonRecursive)
    {
        warn!("cannot watch {}: {error}", folder.display());
    }
    for folder in outside {
        if let Err(error) = watcher.watch(&folder, RecursiveMode::NonRecursive) {
            warn!("cannot watch {}: {error}", folder.display());
        }
    }
    tokio::spawn(async move {
        while let Some(first) = received.recv().await {
            let mut changed = BTreeSet::from([first]);
            let burst = tokio::time::Instant::now() + AT_MOST;
            loop {
                let quiet = tokio::time::Instant::now() + QUIET;
                match tokio::time::timeout_at(quiet.min(burst), received.recv()).await {
                    Ok(Some(path)) => {
                        changed.insert(path);
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            debug!("plugin folders changed: {changed:?}");
            let fleet = fleet.clone();
            let config_file = config_file.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(file) = config_file.filter(|file| changed.remove(file)) {
                    fleet.reconfigure(&file);
                }
                if !changed.is_empty() {
                    fleet.rescan(&changed);
                }
            })
            .await;
        }
    });
    Ok(Watcher { _watcher: watcher })
}
