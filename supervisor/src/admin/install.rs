//! `corral install` and `corral rollback`: plugins put into a plugin
//! folder so that a serving corral switches to them in one step.
//!
//! `DIR/NAME` is a symlink into `DIR/.corral-versions/NAME/`, which keeps
//! the current version and the one before it. An install checks
//! everything first (the signature when it is required or present, the
//! archive's contents, the manifest and the entry's sha256, as `corral
//! check` does), in a staging folder beside the versions; only then does
//! it replace the symlink, with one `rename`, so a serving corral sees
//! the old version or the new one and never a gap, and hot-reloads to the
//! new one without failing a call. A refused install changes nothing.
//! `rollback` swaps the symlink back the same way.

use crate::admin::signing::{self, SignError};
use corral_plugin_api::manifest::Manifest;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The folder, inside a plugin folder, that holds installed versions.
pub const VERSIONS: &str = ".corral-versions";
/// Largest archive contents accepted, unpacked.
const MAX_UNPACKED: u64 = 1 << 30;
/// Most entries an archive may hold.
const MAX_ENTRIES: usize = 10_000;

/// What an install trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Refuse anything without a valid signature by a trusted key.
    pub require_signature: bool,
    /// Public keys (hex) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
}

/// A plugin installed (or rolled back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    /// The plugin's name.
    pub name: String,
    /// The version now in place.
    pub version: String,
    /// Where it lives.
    pub dir: PathBuf,
    /// The version it replaced, kept for `rollback`.
    pub previous: Option<String>,
    /// The key that signed it, if it was signed.
    pub signed_by: Option<String>,
}

/// Why an install or rollback was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The signature check.
    #[error(transparent)]
    Signature(#[from] SignError),
    /// A folder cannot carry a signature.
    #[error(
        "{}: a folder cannot be signed, and corral.toml has require_signature = true: install a signed archive",
        .0.display()
    )]
    FolderUnsigned(PathBuf),
    /// The archive cannot be unpacked.
    #[error("{}: archive check failed: {problem}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong (truncated, an escaping path, a link, too big).
        problem: String,
    },
    /// The plugin inside fails `corral check`.
    #[error("plugin check failed:\n{0}")]
    Check(String),
    /// The place it would go is not corral install's.
    #[error("{}: {problem}", path.display())]
    Place {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Nothing to roll back to.
    #[error("plugin `{0}` has no previous version to roll back to")]
    NoPrevious(String),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Installs the plugin in `source` (a `.tar.gz` archive, or a folder)
/// into plugin folder `plugins`.
pub fn install(source: &Path, plugins: &Path, trust: &Trust) -> Result<Installed, InstallError> {
    let signed_by = if source.is_dir() {
        if trust.require_signature {
            return Err(InstallError::FolderUnsigned(source.to_owned()));
        }
        None
    } else if trust.require_signature || signing::signature_path(source).exists() {
        Some(signing::verify(source, &trust.trusted_keys)?)
    } else {
        None
    };
    let versions = plugins.join(VERSIONS);
    fs::create_dir_all(&versions).map_err(io_error(&versions))?;
    let staging = Staging::new(&versions)?;
    if source.is_dir() {
        copy_tree(source, &staging.0)?;
    } else {
        unpack(source, &staging.0)?;
    }
    let root = plugin_root(&staging.0)?;
    let report =
        crate::admin::check::check(&root).map_err(|e| InstallError::Check(e.to_string()))?;
    if !report.valid {
        return Err(InstallError::Check(report.text()));
    }
    let manifest_path = root.join(crate::supervise::discovery::MANIFEST);
    let text = fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
    let manifest =
        Manifest::parse(&text, &manifest_path).map_err(|e| InstallError::Check(e.to_string()))?;
    let name = manifest.name;
    let link = plugins.join(&name);
    let current = current_target(&link)?;
    let home = versions.join(&name);
    fs::create_dir_all(&home).map_err(io_error(&home))?;
    let version_dir = unused(&home, &manifest.version.to_string());
    fs::rename(&root, &version_dir).map_err(io_error(&version_dir))?;
    swap_link(&link, &version_dir)?;
    let previous = current.as_deref().and_then(version_of);
    prune(&home, &[Some(version_dir.as_path()), current.as_deref()]);
    Ok(Installed {
        name,
        version: manifest.version.to_string(),
        dir: version_dir,
        previous,
        signed_by,
    })
}

/// Puts plugin `name`'s previous version back in place in `plugins`;
/// the one it replaces becomes the previous one.
pub fn rollback(plugins: &Path, name: &str) -> Result<Installed, InstallError> {
    let link = plugins.join(name);
    let current = current_target(&link)?.ok_or_else(|| InstallError::NoPrevious(name.into()))?;
    let home = plugins.join(VERSIONS).join(name);
    let previous = fs::read_dir(&home)
        .map_err(io_error(&home))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && *path != current && !is_staging(path))
        .max_by_key(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
        // (install keeps two: the current one and this)
        .ok_or_else(|| InstallError::NoPrevious(name.into()))?;
    swap_link(&link, &previous)?;
    Ok(Installed {
        name: name.to_owned(),
        version: version_of(&previous).unwrap_or_default(),
        dir: previous,
        previous: version_of(&current),
        signed_by: None,
    })
}

/// Where `link` points now: `None` when nothing is installed there;
/// refuses a real folder or file, which `install` did not make.
fn current_target(link: &Path) -> Result<Option<PathBuf>, InstallError> {
    match fs::symlink_metadata(link) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(link)(error)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(link).map_err(io_error(link))?;
            Ok(Some(link.parent().unwrap_or(Path::new(".")).join(target)))
        }
        Ok(_) => Err(InstallError::Place {
            path: link.to_owned(),
            problem: "a plugin folder corral install did not make: move it away (or install under another plugin folder)".into(),
        }),
    }
}

/// Points `link` at `target` in one `rename`.
fn swap_link(link: &Path, target: &Path) -> Result<(), InstallError> {
    let parent = link.parent().unwrap_or(Path::new("."));
    let relative = target.strip_prefix(parent).unwrap_or(target);
    let temporary = parent.join(format!(
        ".corral-link-{}-{}",
        std::process::id(),
        link.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(relative, &temporary).map_err(io_error(&temporary))?;
    fs::rename(&temporary, link).map_err(|error| {
        let _ = fs::remove_file(&temporary);
        io_error(link)(error)
    })
}

/// `home/VERSION`, or `home/VERSION+2`, … when that is taken.
fn unused(home: &Path, version: &str) -> PathBuf {
    let first = home.join(version);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| home.join(format!("{version}+{n}")))
        .find(|path| !path.exists())
        .expect("a free name")
}

fn version_of(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Some(match name.split_once('+') {
        Some((version, _)) if version.contains('.') => version.to_owned(),
        _ => name,
    })
}

/// Removes the versions of a plugin other than `keep`.
fn prune(home: &Path, keep: &[Option<&Path>]) {
    let Ok(entries) = fs::read_dir(home) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
        let kept = keep
            .iter()
            .flatten()
            .any(|keep| fs::canonicalize(keep).ok() == fs::canonicalize(&path).ok());
        if !kept {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// A staging folder, removed unless its contents were moved out.
struct Staging(PathBuf);

impl Staging {
    fn new(versions: &Path) -> Result<Self, InstallError> {
        let dir = (0..)
            .map(|n| versions.join(format!(".staging-{}-{n}", std::process::id())))
            .find(|dir| !dir.exists())
            .expect("a free name");
        fs::create_dir(&dir).map_err(io_error(&dir))?;
        Ok(Self(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_staging(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with(".staging-"))
}

/// The folder holding `plugin.toml` in what was unpacked: the staging
/// folder itself, or its one subfolder.
fn plugin_root(staging: &Path) -> Result<PathBuf, InstallError> {
    if staging
        .join(crate::supervise::discovery::MANIFEST)
        .is_file()
    {
        return Ok(staging.to_owned());
    }
    let entries: Vec<PathBuf> = fs::read_dir(staging)
        .map_err(io_error(staging))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    match entries.as_slice() {
        [only] if only.join(crate::supervise::discovery::MANIFEST).is_file() => {
            // Moved up into a folder of its own, so the rename below takes
            // just the plugin.
            let root = staging.join(".plugin");
            fs::rename(only, &root).map_err(io_error(only))?;
            Ok(root)
        }
        _ => Err(InstallError::Check(
            "no plugin.toml at the top of the archive (or of its one folder)".into(),
        )),
    }
}

/// Unpacks a `.tar.gz` into `into`, refusing what could escape or surprise.
fn unpack(archive: &Path, into: &Path) -> Result<(), InstallError> {
    let refuse = |problem: String| InstallError::Archive {
        path: archive.to_owned(),
        problem,
    };
    let file = fs::File::open(archive).map_err(io_error(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut total = 0u64;
    let entries = tar
        .entries()
        .map_err(|e| refuse(format!("not a .tar.gz: {e}")))?;
    for (count, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| refuse(format!("truncated or corrupt: {e}")))?;
        if count >= MAX_ENTRIES {
            return Err(refuse(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = entry
            .path()
            .map_err(|e| refuse(format!("a bad path: {e}")))?
            .into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(refuse(format!(
                "{}: paths must stay inside the plugin folder",
                path.display()
            )));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(refuse(format!(
                "{}: only files and folders are installed, not links or devices",
                path.display()
            )));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(refuse(format!("more than {MAX_UNPACKED} bytes unpacked")));
        }
        entry
            .unpack_in(into)
            .map_err(|e| refuse(format!("truncated or corrupt: {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Copies folder `from` into `to` (created when missing), recursively,
/// symlinks followed.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), InstallError> {
    fs::create_dir_all(to).map_err(io_error(to))?;
    for entry in fs::read_dir(from).map_err(io_error(from))? {
        let path = entry.map_err(io_error(from))?.path();
        let target = to.join(path.file_name().expect("a named entry"));
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            fs::copy(&path, &target).map_err(io_error(&path))?;
        }
    }
    Ok(())
}
