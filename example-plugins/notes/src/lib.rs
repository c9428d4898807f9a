//! `notes`: an example corral plugin that keeps notes as files in the
//! folder its manifest permits (`write = ["data"]`). The same source is a
//! native plugin and, built for `wasm32-wasip1`, a WASI one (`wasi = true`):
//! the relative path `data/NAME` means the same both ways.
//!
//! | method   | input                  | reply                              |
//! |----------|------------------------|------------------------------------|
//! | `put`    | `NAME` newline `TEXT`  | `stored NAME`                      |
//! | `get`    | `NAME`                 | the note's text                    |
//! | `list`   | ignored                | note names, one per line, sorted   |
//! | `read`   | any path               | that file's bytes (if permitted)   |
//! | `write`  | `PATH` newline `TEXT`  | `wrote PATH` (if permitted)        |
//! | `env`    | ignored                | `vars=N args=A B ...`              |
//!
//! `read`, `write` and `env` let tests and admins see what the sandbox shows a
//! plugin: which paths it can open and what environment it gets.

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};
use std::fs;
use std::path::PathBuf;

/// The folder notes live in, relative to the plugin's folder.
const DATA: &str = "data";

/// The plugin; its state is on disk.
#[derive(Default)]
pub struct Notes;

impl Plugin for Notes {
    fn call(&mut self, _host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "put" => {
                let (name, text) = text(input)?
                    .split_once('\n')
                    .ok_or_else(|| PluginError::new("put: expected NAME, a newline, then TEXT"))?;
                fs::write(note(name)?, text)
                    .map_err(|e| PluginError::new(format!("put {name}: {e}")))?;
                Ok(format!("stored {name}").into_bytes())
            }
            "get" => {
                let name = text(input)?;
                fs::read(note(name)?).map_err(|e| PluginError::new(format!("get {name}: {e}")))
            }
            "list" => {
                let mut names: Vec<String> = fs::read_dir(DATA)
                    .map_err(|e| PluginError::new(format!("list {DATA}: {e}")))?
                    .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                    .collect();
                names.sort();
                Ok(names.join("\n").into_bytes())
            }
            "read" => {
                let path = text(input)?;
                fs::read(path).map_err(|e| PluginError::new(format!("read {path}: {e}")))
            }
            "write" => {
                let (path, text) = text(input)?.split_once('\n').ok_or_else(|| {
                    PluginError::new("write: expected PATH, a newline, then TEXT")
                })?;
                fs::write(path, text)
                    .map_err(|e| PluginError::new(format!("write {path}: {e}")))?;
                Ok(format!("wrote {path}").into_bytes())
            }
            "env" => {
                let args: Vec<String> = std::env::args().collect();
                Ok(format!(
                    "vars={} args={}",
                    std::env::vars_os().count(),
                    args.join(" ")
                )
                .into_bytes())
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

fn text(input: &[u8]) -> Result<&str, PluginError> {
    std::str::from_utf8(input).map_err(|_| PluginError::new("expected UTF-8 text"))
}

/// `data/NAME`, for a plain file name only.
fn note(name: &str) -> Result<PathBuf, PluginError> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    if plain {
        Ok(PathBuf::from(DATA).join(name))
    } else {
        Err(PluginError::new(format!(
            "`{name}` is not a plain file name"
        )))
    }
}

export_plugin!(Notes);
