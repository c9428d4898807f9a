//! A private supervisor in a temporary folder, run inside this process
//! for one plugin (and what it may depend on): `corral profile` and
//! `corral replay` use it.

use crate::client::{Client, ClientError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connects to the private supervisor on `socket` once it listens;
/// fails when it could not start (`supervisor` has ended: its result
/// says why).
pub(crate) async fn connect(
    socket: &Path,
    supervisor: &tokio::task::JoinHandle<Result<(), crate::ServeError>>,
) -> Result<Client, ClientError> {
    loop {
        match Client::connect(socket).await {
            Ok(client) => return Ok(client),
            Err(_) if !supervisor.is_finished() => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The private supervisor's temporary folder: `plugins/` holds links to
/// the plugin and its possible dependencies.
pub(crate) struct Place {
    pub(crate) dir: tempfile::TempDir,
}

impl Place {
    /// A folder named `prefix…` with `plugin` linked as `plugins/NAME`,
    /// and every plugin folder in the `dependencies` folders beside it.
    /// Fails with the path that could not be used.
    pub(crate) fn new(
        prefix: &str,
        plugin: &Path,
        name: &str,
        dependencies: &[PathBuf],
    ) -> Result<Self, (PathBuf, io::Error)> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| (path, source)
        };
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?;
        // Traversable by the worker's own uid, as a state folder is.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
                .map_err(io(dir.path()))?;
        }
        let place = Self { dir };
        let plugins = place.plugins();
        std::fs::create_dir(&plugins).map_err(io(&plugins))?;
        let own = std::fs::canonicalize(plugin).map_err(io(plugin))?;
        std::os::unix::fs::symlink(&own, plugins.join(name)).map_err(io(plugin))?;
        for folder in dependencies {
            for entry in std::fs::read_dir(folder).map_err(io(folder))? {
                let path = entry.map_err(io(folder))?.path();
                let link = plugins.join(path.file_name().unwrap_or_default());
                let other = std::fs::canonicalize(&path).map_err(io(&path))?;
                if other == own
                    || link.exists()
                    || !path.join(crate::supervise::discovery::MANIFEST).is_file()
                {
                    continue;
                }
                std::os::unix::fs::symlink(&other, link).map_err(io(&path))?;
            }
        }
        Ok(place)
    }

    /// The plugins folder.
    pub(crate) fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }
}
