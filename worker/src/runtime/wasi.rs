//! WASI preview 1 for modules built for `wasm32-wasip1` (`wasi = true` in
//! plugin.toml): the guest gets the `[permissions]` folders and nothing
//! else — no environment, no arguments but its name, no stdin, no sockets
//! (preview 1 cannot open any). Its stdout and stderr are the worker's,
//! which the supervisor captures into the plugin's log.
//!
//! A permitted path inside the plugin's folder is preopened under the name
//! the manifest gives it (`data`, relative), so the same relative path
//! works in the plugin built natively (whose working folder is the plugin
//! folder) and for WASI; any other path under its absolute name. A
//! permitted file is reached through its folder, preopened with the file's
//! rights; the worker's Landlock ruleset still lets the guest open that
//! file and nothing else there.

use corral_plugin_api::wire::Hello;
use std::path::{Component, Path};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// What every fresh instance's WASI context is made from.
#[derive(Debug, Clone)]
pub(super) struct Wasi {
    plugin: String,
    /// (host folder, guest name, rights), one entry per folder.
    preopens: Vec<(String, String, FsPerms)>,
}

impl Wasi {
    /// The WASI setup `hello` asks for, or `None` when WASI is off.
    pub(super) fn new(hello: &Hello) -> Option<Self> {
        if !hello.wasi {
            return None;
        }
        let mut preopens: Vec<(String, String, FsPerms)> = Vec::new();
        let permitted = hello
            .write
            .iter()
            .map(|path| (path, FsPerms::ReadWrite))
            .chain(hello.read.iter().map(|path| (path, FsPerms::ReadOnly)));
        for (path, perms) in permitted {
            let path = Path::new(path);
            let folder = if path.is_dir() {
                path
            } else {
                path.parent().unwrap_or(Path::new("/"))
            };
            let host = folder.display().to_string();
            // A folder listed twice keeps its first (widest) rights.
            if preopens.iter().any(|(known, ..)| *known == host) {
                continue;
            }
            let guest = guest_name(folder, Path::new(&hello.dir));
            preopens.push((host, guest, perms));
        }
        Some(Self {
            plugin: hello.plugin.clone(),
            preopens,
        })
    }

    /// A fresh context for one instance.
    pub(super) fn context(&self) -> Result<WasiP1Ctx, String> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .arg(&self.plugin)
            .inherit_stdout()
            .inherit_stderr()
            // Files are opened on the calling thread, not handed to an
            // async runtime and waited for.
            .allow_blocking_current_thread(true);
        for (host, guest, perms) in &self.preopens {
            builder
                .preopened_dir(host, guest, *perms)
                .map_err(|error| format!("WASI: cannot preopen {host} as {guest}: {error:#}"))?;
        }
        Ok(builder.build_p1())
    }

    /// The preopens, for the log: `guest (host, rights)`.
    pub(super) fn describe(&self) -> String {
        let preopens: Vec<String> = self
            .preopens
            .iter()
            .map(|(host, guest, perms)| {
                let rights = match perms {
                    FsPerms::ReadOnly => "read-only",
                    FsPerms::ReadWrite => "read-write",
                };
                format!("{guest} ({host}, {rights})")
            })
            .collect();
        if preopens.is_empty() {
            "no preopened folders".to_owned()
        } else {
            format!("preopened {}", preopens.join(", "))
        }
    }
}

/// A context that grants nothing, for modules without WASI (never linked;
/// the store just needs one).
pub(super) fn none() -> WasiP1Ctx {
    WasiCtxBuilder::new().build_p1()
}

/// The guest's name for `folder`: relative when inside the plugin folder
/// `dir` (`.` for the folder itself), absolute otherwise.
fn guest_name(folder: &Path, dir: &Path) -> String {
    match folder.strip_prefix(dir) {
        Ok(inside) if inside.as_os_str().is_empty() => ".".to_owned(),
        Ok(inside)
            if inside
                .components()
                .all(|c| matches!(c, Component::Normal(_))) =>
        {
            inside.display().to_string()
        }
        _ => folder.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::guest_name;
    use std::path::Path;

    #[test]
    fn folders_inside_the_plugin_keep_their_manifest_names() {
        let dir = Path::new("/srv/plugins/notes");
        assert_eq!(
            guest_name(Path::new("/srv/plugins/notes/data"), dir),
            "data"
        );
        assert_eq!(guest_name(Path::new("/srv/plugins/notes/a/b"), dir), "a/b");
        assert_eq!(guest_name(dir, dir), ".");
        assert_eq!(guest_name(Path::new("/var/lib/x"), dir), "/var/lib/x");
        assert_eq!(
            guest_name(Path::new("/srv/plugins/notes/../shared"), dir),
            "/srv/plugins/notes/../shared"
        );
    }
}
