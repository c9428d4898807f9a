//! Which plugins exist: `*/plugin.toml` under the plugin folders, each
//! read, checked and resolved into what a worker is started from. Reads
//! files, keeps no state.
//!
//! A folder whose manifest is bad is kept as a broken entry (shown by
//! `corral ps` with its error); it never stops the other plugins.

use crate::config::overrides::Overrides;
use corral_plugin_api::manifest::Manifest;
use std::io;
use std::path::{Path, PathBuf};

/// The manifest file in every plugin folder.
pub(crate) const MANIFEST: &str = "plugin.toml";

/// A plugin folder could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("plugin folder {}: {source}", dir.display())]
pub(crate) struct DiscoveryError {
    dir: PathBuf,
    source: io::Error,
}

/// A plugin ready to be started.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Manifest,
    /// The module, as an absolute path with symlinks resolved.
    pub(crate) entry: PathBuf,
    /// The effective `[config]` as TOML text: the manifest's defaults
    /// with corral.toml's overrides.
    pub(crate) config: String,
}

/// A plugin folder that cannot be used, and why.
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) dir: PathBuf,
    pub(crate) error: String,
}

/// The result of looking through the plugin folders.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    pub(crate) plugins: Vec<Discovered>,
    pub(crate) broken: Vec<Broken>,
}

/// Looks for `*/plugin.toml` in each of `dirs`, in name order.
pub(crate) fn discover(
    dirs: &[PathBuf],
    overrides: &Overrides,
) -> Result<Discovery, DiscoveryError> {
    let mut found = Discovery::default();
    for dir in dirs {
        let error = |source| DiscoveryError {
            dir: dir.clone(),
            source,
        };
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(error)? {
            let path = entry.map_err(error)?.path();
            if path.join(MANIFEST).is_file() {
                folders.push(path);
            }
        }
        folders.sort();
        for folder in folders {
            match load(&folder, overrides) {
                Ok(plugin) => match found
                    .plugins
                    .iter()
                    .find(|p| p.manifest.name == plugin.manifest.name)
                {
                    Some(first) => found.broken.push(Broken {
                        name: plugin.manifest.name.clone(),
                        version: Some(plugin.manifest.version.to_string()),
                        error: format!(
                            "{}: plugin name `{}` is already used by {}",
                            folder.join(MANIFEST).display(),
                            plugin.manifest.name,
                            first.dir.display()
                        ),
                        dir: folder,
                    }),
                    None => found.plugins.push(plugin),
                },
                Err(broken) => found.broken.push(*broken),
            }
        }
    }
    Ok(found)
}

/// Reads and checks one plugin folder.
pub(crate) fn load(dir: &Path, overrides: &Overrides) -> Result<Discovered, Box<Broken>> {
    let manifest_path = dir.join(MANIFEST);
    let folder_name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let broken = |version: Option<String>, error: String| {
        Box::new(Broken {
            name: folder_name.clone(),
            version,
            dir: dir.to_owned(),
            error,
        })
    };
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| broken(None, format!("{}: {e}", manifest_path.display())))?;
    let manifest =
        Manifest::parse(&text, &manifest_path).map_err(|e| broken(None, e.to_string()))?;
    let version = Some(manifest.version.to_string());
    let broken = |error: String| {
        let mut broken = broken(
            version.clone(),
            format!("{}: {error}", manifest_path.display()),
        );
        broken.name = manifest.name.clone();
        broken
    };
    let entry_path = dir.join(&manifest.entry);
    let entry = match entry_path.canonicalize() {
        Ok(entry) if entry.is_file() => entry,
        Ok(_) => {
            return Err(broken(format!(
                "entry {}: not a file",
                manifest.entry.display()
            )));
        }
        Err(error) => {
            let hint = match std::fs::read_link(&entry_path) {
                Ok(target) => format!(
                    " (a symlink to {}, which does not exist: build the plugin first, e.g. `cargo build --release`)",
                    target.display()
                ),
                Err(_) => String::new(),
            };
            return Err(broken(format!(
                "entry {}: {error}{hint}",
                manifest.entry.display()
            )));
        }
    };
    let config = overrides
        .effective(&manifest.name, &manifest.config)
        .map_err(|problem| {
            let mut broken = broken(String::new());
            broken.error = problem.to_string();
            broken
        })?;
    Ok(Discovered {
        dir: dir.to_owned(),
        manifest,
        entry,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn plugin(root: &Path, folder: &str, name: &str, entry: &str) {
        let dir = root.join(folder);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(MANIFEST),
            format!("[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"{entry}\"\napi = 1\n"),
        )
        .unwrap();
        fs::write(dir.join("lib.so"), b"not really a library").unwrap();
    }

    #[test]
    fn finds_plugins_and_keeps_broken_ones_apart() {
        let root = tempfile::tempdir().unwrap();
        plugin(root.path(), "b", "beta", "lib.so");
        plugin(root.path(), "a", "alpha", "lib.so");
        plugin(root.path(), "c", "alpha", "lib.so");
        plugin(root.path(), "d", "delta", "missing.so");
        fs::create_dir(root.path().join("not-a-plugin")).unwrap();
        fs::create_dir(root.path().join("bad")).unwrap();
        fs::write(
            root.path().join("bad").join(MANIFEST),
            "[plugin]\nname = 1\n",
        )
        .unwrap();

        let found = discover(&[root.path().to_owned()], &Overrides::default()).unwrap();
        let names: Vec<_> = found
            .plugins
            .iter()
            .map(|p| p.manifest.name.as_str())
            .collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert!(found.plugins[0].entry.is_absolute());

        let errors: Vec<_> = found
            .broken
            .iter()
            .map(|b| (b.name.as_str(), b.error.as_str()))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].0 == "bad" && errors[0].1.contains("bad/plugin.toml:2:"),
            "{errors:?}"
        );
        assert!(
            errors[1].0 == "alpha" && errors[1].1.contains("already used by"),
            "{errors:?}"
        );
        assert!(
            errors[2].0 == "delta" && errors[2].1.contains("entry missing.so"),
            "{errors:?}"
        );
    }

    #[test]
    fn dangling_symlink_entry_says_what_to_build() {
        let root = tempfile::tempdir().unwrap();
        plugin(root.path(), "p", "p", "link.so");
        std::os::unix::fs::symlink(
            "../../target/release/libp.so",
            root.path().join("p/link.so"),
        )
        .unwrap();
        let found = discover(&[root.path().to_owned()], &Overrides::default()).unwrap();
        assert!(
            found.broken[0].error.contains("build the plugin first"),
            "{:?}",
            found.broken
        );
    }

    #[test]
    fn missing_plugin_folder_is_an_error() {
        let error = discover(
            &[PathBuf::from("/nonexistent/corral-plugins")],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("plugin folder /nonexistent/corral-plugins: ")
        );
    }
}
