//! The plugins a supervisor serves, by name, and the folders it could not
//! use: what the host server routes calls to. Plugins come and go while
//! serving (hot reload).

use crate::process::worker::{BoxFuture, Chain};
use crate::services::Plugins;
use crate::supervise::discovery::Broken;
use crate::supervise::handle::PluginHandle;
use crate::transport::payload::Payload;
use corral_plugin_api::manifest::topic_matches;
use corral_plugin_api::wire::{PluginInfo, PluginState};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The plugins a supervisor serves, by name, and the folders it could not
/// use. Plugins come and go while serving (hot reload).
#[derive(Default)]
pub(crate) struct Registry {
    plugins: RwLock<BTreeMap<String, Arc<PluginHandle>>>,
    broken: RwLock<Vec<Broken>>,
}

impl Registry {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<PluginHandle>> {
        read(&self.plugins).get(name).cloned()
    }

    pub(crate) fn handles(&self) -> Vec<Arc<PluginHandle>> {
        read(&self.plugins).values().cloned().collect()
    }

    /// Adds a plugin, forgetting its folder's broken entry (a fixed folder)
    /// under the same locks, so that `list` shows one or the other.
    pub(crate) fn insert(&self, plugin: Arc<PluginHandle>) {
        let spec = plugin.spec();
        let mut plugins = write(&self.plugins);
        write(&self.broken).retain(|known| known.dir != spec.plugin.dir);
        plugins.insert(plugin.name().to_owned(), plugin);
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<PluginHandle>> {
        write(&self.plugins).remove(name)
    }

    /// Records a folder that cannot be used, replacing what was known of
    /// that folder.
    pub(crate) fn set_broken(&self, broken: Broken) {
        let mut list = write(&self.broken);
        list.retain(|known| known.dir != broken.dir);
        list.push(broken);
    }

    /// Forgets a broken folder (fixed or removed).
    pub(crate) fn clear_broken(&self, dir: &Path) {
        write(&self.broken).retain(|known| known.dir != dir);
    }

    /// The broken folders.
    pub(crate) fn broken(&self) -> Vec<Broken> {
        read(&self.broken).clone()
    }

    /// Every plugin's status, broken folders included, by name.
    pub(crate) fn list(&self) -> Vec<PluginInfo> {
        // Both locks at once (in `insert`'s order): a folder being fixed
        // is listed either broken or running, never neither.
        let plugins = read(&self.plugins);
        let broken = read(&self.broken);
        let mut infos: Vec<PluginInfo> = plugins.values().map(|p| p.info()).collect();
        infos.extend(broken.iter().map(|b| PluginInfo {
            version: b.version.clone(),
            error: Some(b.error.clone()),
            ..PluginInfo::new(&b.name, b.dir.display().to_string(), PluginState::Failed)
        }));
        infos.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.dir.cmp(&b.dir)));
        infos
    }
}

impl Plugins for Registry {
    fn call(
        &self,
        name: &str,
        method: String,
        input: Payload,
        budget: Option<Duration>,
        chain: Chain,
    ) -> BoxFuture<'static, Result<Payload, RemoteError>> {
        let handle = self.get(name);
        let name = name.to_owned();
        Box::pin(async move {
            match handle {
                Some(handle) => handle.call(method, input, budget, chain).await,
                None => Err(RemoteError::new(
                    ErrorKind::UnknownPlugin,
                    format!("no plugin named `{name}`"),
                )),
            }
        })
    }

    fn subscribed(&self, topic: &str) -> Vec<String> {
        read(&self.plugins)
            .values()
            .filter(|handle| {
                handle
                    .spec()
                    .plugin
                    .manifest
                    .subscribe
                    .iter()
                    .any(|pattern| topic_matches(pattern, topic))
            })
            .map(|handle| handle.name().to_owned())
            .collect()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
