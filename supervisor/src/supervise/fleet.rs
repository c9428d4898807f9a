//! The plugins a supervisor runs, as a whole: starting them with their
//! dependencies resolved, and following their folders on disk (a changed
//! plugin reloads, a new folder starts, a removed one stops).

use crate::config::ServeConfig;
use crate::observe::logfile::LogFile;
use crate::supervise::controller;
use crate::supervise::deps::{self, Node};
use crate::supervise::discovery::{self, Broken, Discovered, MANIFEST};
use crate::supervise::handle::Order;
use crate::supervise::handle::{PluginHandle, Spec, Supervision};
use crate::supervise::registry::Registry;
use corral_plugin_api::wire::PluginKind;
use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Starts plugins and keeps track of their controllers.
pub(crate) struct Fleet {
    pub(crate) registry: Arc<Registry>,
    supervision: Arc<Supervision>,
    config: ServeConfig,
    /// Worker uids are `worker_uid_base + index`, one index per plugin.
    next_index: AtomicU32,
    root: bool,
    shutdown: watch::Receiver<bool>,
    controllers: Mutex<JoinSet<()>>,
}

impl Fleet {
    pub(crate) fn new(
        supervision: Arc<Supervision>,
        registry: Arc<Registry>,
        config: ServeConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            warn!(
                "not running as root: workers keep this uid (no per-plugin uid, no RLIMIT_NPROC)"
            );
        }
        Arc::new(Self {
            registry,
            supervision,
            config,
            next_index: AtomicU32::new(0),
            root,
            shutdown,
            controllers: Mutex::new(JoinSet::new()),
        })
    }

    /// Starts `plugins` (discovered together): dependencies are resolved
    /// among them and the plugins already running.
    pub(crate) fn start(&self, plugins: Vec<Discovered>) {
        let running = self.registry.handles();
        let specs: Vec<Arc<Spec>> = running.iter().map(|handle| handle.spec()).collect();
        let mut nodes: Vec<Node<'_>> = specs.iter().map(|spec| node(&spec.plugin)).collect();
        let known = nodes.len();
        nodes.extend(plugins.iter().map(node));
        let resolution = deps::resolve(&nodes);
        let mut blocked: Vec<Option<String>> = vec![None; plugins.len()];
        for (index, why) in resolution.failed {
            if let Some(slot) = index.checked_sub(known) {
                blocked[slot] = Some(why);
            }
        }
        let version = semver::Version::parse(env!("CARGO_PKG_VERSION"))
            .expect("corral's own version is semver");
        let mut handles = Vec::new();
        for (plugin, blocked) in plugins.into_iter().zip(blocked) {
            let blocked = blocked.or_else(|| {
                let requires = plugin.manifest.requires.as_ref()?;
                (!requires.matches(&version)).then(|| {
                    format!(
                        "{} {} requires corral {requires}, this is corral {version}",
                        plugin.manifest.name, plugin.manifest.version
                    )
                })
            });
            if let Some(why) = &blocked {
                warn!(plugin = %plugin.manifest.name, "cannot start: {why}");
            }
            let dependencies: Vec<String> = plugin.manifest.dependencies.keys().cloned().collect();
            let (handle, orders) = self.handle(plugin);
            self.registry.insert(handle.clone());
            handles.push((handle, orders, dependencies, blocked));
        }
        for (handle, orders, dependencies, blocked) in handles {
            let dependencies = dependencies
                .iter()
                .filter_map(|name| self.registry.get(name))
                .collect();
            self.spawn(handle, orders, dependencies, blocked);
        }
    }

    fn handle(&self, plugin: Discovered) -> (Arc<PluginHandle>, crate::supervise::handle::Orders) {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let uid = self
            .root
            .then(|| self.config.worker_uid_base.saturating_add(index));
        let name = plugin.manifest.name.clone();
        let cache = match (&self.config.state_dir, plugin.manifest.kind) {
            (Some(state), PluginKind::Wasm) => {
                let dir = state.join("wasm-cache").join(&name);
                match private_dir(&dir, uid) {
                    Ok(()) => Some(dir),
                    Err(error) => {
                        warn!(plugin = %name, "no compiled-module cache: {}: {error}", dir.display());
                        None
                    }
                }
            }
            _ => None,
        };
        let log = self.config.state_dir.as_ref().and_then(|dir| {
            let dir = dir.join("logs");
            let name = &plugin.manifest.name;
            LogFile::open(&dir, name, self.config.log_max_bytes, self.config.log_keep)
                .map(Arc::new)
                .map_err(|error| {
                    warn!(plugin = %name, "no log file in {}: {error}", dir.display());
                })
                .ok()
        });
        let spec = Spec::new(plugin, &self.supervision);
        PluginHandle::new(
            spec,
            uid,
            self.config.cgroup.as_deref(),
            cache,
            log,
            self.supervision.events.clone(),
        )
    }

    fn spawn(
        &self,
        handle: Arc<PluginHandle>,
        orders: crate::supervise::handle::Orders,
        dependencies: Vec<Arc<PluginHandle>>,
        blocked: Option<String>,
    ) {
        let run = controller::run(
            handle,
            self.supervision.clone(),
            orders,
            self.shutdown.clone(),
            dependencies,
            blocked,
        );
        self.controllers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(run);
    }

    /// Waits for every controller to finish (after shutdown).
    pub(crate) async fn join(&self) {
        let mut controllers = std::mem::take(
            &mut *self
                .controllers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        while controllers.join_next().await.is_some() {}
    }

    /// Reads corral.toml (`path`) again and puts its `[plugins.NAME.config]`
    /// overrides in force: plugins whose overrides changed reload, and
    /// plugins a bad override kept from starting are tried again. The
    /// other settings need a restart of corral; a file that cannot be used
    /// changes nothing.
    pub(crate) fn reconfigure(&self, path: &Path) {
        let settings = match crate::config::settings::Settings::load(path) {
            Ok(settings) => settings,
            Err(error) => return warn!("{error}: keeping the settings in force"),
        };
        let changed = self.supervision.overrides.replace(settings.plugin_config);
        info!(
            "{} read again: config overrides of {} plugin(s) changed",
            path.display(),
            changed.len()
        );
        let mut retry = BTreeSet::new();
        for name in &changed {
            if let Some(handle) = self.registry.get(name) {
                info!(plugin = %name, "config override changed: reloading");
                handle.order(Order::Changed);
            } else if let Some(broken) =
                self.registry.broken().into_iter().find(|b| &b.name == name)
            {
                retry.insert(broken.dir.join(MANIFEST));
            } else {
                warn!(
                    "{}: [plugins.{name}]: no plugin named `{name}`",
                    path.display()
                );
            }
        }
        if !retry.is_empty() {
            self.rescan(&retry);
        }
    }

    /// Looks at the plugin folders again after `changed` paths changed:
    /// reloads the plugins whose manifest or entry changed, starts new
    /// folders, stops removed ones.
    pub(crate) fn rescan(&self, changed: &BTreeSet<PathBuf>) {
        // Removed folders, and plugins whose files changed.
        for handle in self.registry.handles() {
            let spec = handle.spec();
            let dir = &spec.plugin.dir;
            if !dir.join(MANIFEST).is_file() {
                info!(plugin = %handle.name(), "{} is gone", dir.join(MANIFEST).display());
                self.registry.remove(handle.name());
                handle.order(Order::Removed);
                continue;
            }
            let watched = [
                // The folder itself: `corral install` swaps a symlink.
                dir.clone(),
                dir.join(MANIFEST),
                dir.join(&spec.plugin.manifest.entry),
                spec.plugin.entry.clone(),
            ];
            if watched.iter().any(|path| changed.contains(path)) {
                info!(plugin = %handle.name(), "files changed: reloading");
                handle.order(Order::Changed);
            }
        }
        // New folders, and broken ones that changed.
        let known: BTreeSet<PathBuf> = self
            .registry
            .handles()
            .iter()
            .map(|handle| handle.spec().plugin.dir.clone())
            .collect();
        let broken: Vec<Broken> = self.registry.broken();
        for gone in broken.iter().filter(|b| !b.dir.join(MANIFEST).is_file()) {
            self.registry.clear_broken(&gone.dir);
        }
        let mut new = Vec::new();
        for folder in plugin_folders(&self.config.plugin_dirs) {
            if known.contains(&folder) {
                continue;
            }
            let was_broken = broken.iter().any(|b| b.dir == folder);
            let touched = changed.iter().any(|path| path.starts_with(&folder));
            if was_broken && !touched {
                continue;
            }
            match discovery::load(&folder, &self.supervision.overrides) {
                Ok(plugin) => match self.registry.get(&plugin.manifest.name) {
                    Some(other) => self.registry.set_broken(Broken {
                        error: format!(
                            "{}: plugin name `{}` is already used by {}",
                            folder.join(MANIFEST).display(),
                            plugin.manifest.name,
                            other.spec().plugin.dir.display()
                        ),
                        name: plugin.manifest.name.clone(),
                        version: Some(plugin.manifest.version.to_string()),
                        dir: folder,
                    }),
                    None => {
                        info!(plugin = %plugin.manifest.name, "new plugin folder {}", folder.display());
                        new.push(plugin);
                    }
                },
                Err(broken) => {
                    warn!(plugin = %broken.name, "not started: {}", broken.error);
                    self.registry.set_broken(*broken);
                }
            }
        }
        if !new.is_empty() {
            self.start(new);
        }
    }
}

fn node(plugin: &Discovered) -> Node<'_> {
    Node {
        name: &plugin.manifest.name,
        version: &plugin.manifest.version,
        dependencies: &plugin.manifest.dependencies,
    }
}

/// The folders holding a plugin.toml under `dirs`, in name order.
fn plugin_folders(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.join(MANIFEST).is_file())
        .collect();
    folders.sort();
    folders
}

/// Creates `dir` (mode 0700) for the worker uid `owner` (or for us); the
/// folders above it are made traversable (0755) so that uid can reach it.
fn private_dir(dir: &Path, owner: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    }
    Ok(())
}
