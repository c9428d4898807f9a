//! Hot reload's eyes: `notify` watches the plugin folders (and the folders
//! of entries that are symlinks to elsewhere, such as a build's output).
//! Changes are gathered until the file system has been quiet for
//! [`QUIET`] (an editor or a build writes in bursts), then the fleet looks
//! again ([`Fleet::rescan`]).

use crate::fleet::Fleet;
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::PathBuf;
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

/// Watches the fleet's plugin folders and rescans on changes.
pub(crate) fn watch(fleet: Arc<Fleet>, dirs: &[PathBuf]) -> notify::Result<Watcher> {
    let (changes, mut received) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reading a file (ours included, at reload) is no change.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                for path in event.paths {
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
            let _ = tokio::task::spawn_blocking(move || fleet.rescan(&changed)).await;
        }
    });
    Ok(Watcher { _watcher: watcher })
}
