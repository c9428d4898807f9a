//! `corral new`: a new plugin's folder from the templates in
//! `supervisor/templates/`, ready to build, test and serve.
//!
//! - Rust, native (the default): a cdylib crate using `export_plugin!`,
//!   with a unit test on [`TestHost`](corral_plugin_api::testing::TestHost);
//!   `cargo build --release` makes the entry the manifest names.
//! - Rust, wasm (`--wasm`): the same source; `./build.sh` builds the module
//!   for `wasm32-unknown-unknown` next to the manifest.
//! - C (`--c`): the ABI header, a `Makefile` and a test program that loads
//!   the library as the worker does.
//! - TypeScript (`--ts`): an npm project bundled by esbuild into one ES
//!   module for the JavaScript engine, typed by the `corral` module, with a
//!   test on its Node test kit.
//! - AssemblyScript (`--as`): an npm project compiled by `asc` to a wasm
//!   module on `@corral/plugin-as`, with a test that runs the module
//!   through the guest ABI.
//!
//! Every plugin gets a `greet` method, a `[[methods]]` entry for it and a
//! `[config]` setting it reads at init.

use corral_plugin_api::manifest::check_name;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The language and kind of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Rust, built as a native shared library.
    Rust,
    /// Rust, built as a WebAssembly module.
    RustWasm,
    /// C, built as a native shared library.
    C,
    /// TypeScript, bundled for the JavaScript engine.
    TypeScript,
    /// AssemblyScript, built as a WebAssembly module.
    AssemblyScript,
}

/// Why a plugin folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a plugin name.
    #[error("`{name}` is not a plugin name: {problem}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: corral_plugin_api::manifest::NameError,
    },
    /// The folder exists and is not empty.
    #[error("{} exists and is not empty: choose another name or --dir", .0.display())]
    Exists(PathBuf),
    /// No plugin API crate to depend on.
    #[error(
        "no corral-plugin-api source at {}: pass --api-path with the plugin-api folder of a corral checkout",
        .0.display()
    )]
    NoApi(PathBuf),
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// What was being written.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

/// The plugin-api folder of the checkout this corral was built from.
pub fn default_api_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api")
}

/// Writes a new plugin called `name` into `dir` (created; it must not
/// exist or be empty), depending on the plugin API crate at `api` (Rust
/// templates; the C template copies its header). Returns the files
/// written, relative to `dir`. The npm templates depend on the
/// `corral` module (`API/js`) or `@corral/plugin-as` (`API/assemblyscript`)
/// by path.
pub fn scaffold(
    dir: &Path,
    name: &str,
    template: Template,
    api: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(name).map_err(|problem| ScaffoldError::Name {
        name: name.to_owned(),
        problem,
    })?;
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let crate_name = name.replace('-', "_");
    let api = if template == Template::C {
        String::new()
    } else {
        let api = std::path::absolute(api)
            .ok()
            .and_then(|api| api.canonicalize().ok())
            .filter(|api| {
                api.join(match template {
                    Template::TypeScript => "js/package.json",
                    Template::AssemblyScript => "assemblyscript/package.json",
                    _ => "Cargo.toml",
                })
                .is_file()
            })
            .ok_or_else(|| ScaffoldError::NoApi(api.to_owned()))?;
        api.display().to_string()
    };
    let fill = |template: &str| {
        template
            .replace("@NAME@", name)
            .replace("@CRATE@", &crate_name)
            .replace("@TYPE@", &type_name(name))
            .replace("@API_PATH@", &api)
    };
    let files: Vec<(&str, String, bool)> = match template {
        Template::Rust | Template::RustWasm => {
            let manifest = if template == Template::Rust {
                include_str!("../../templates/rust/plugin-native.toml")
            } else {
                include_str!("../../templates/rust/plugin-wasm.toml")
            };
            let mut files = vec![
                (
                    "Cargo.toml",
                    fill(include_str!("../../templates/rust/Cargo.toml")),
                    false,
                ),
                (
                    "src/lib.rs",
                    fill(include_str!("../../templates/rust/lib.rs")),
                    false,
                ),
                ("plugin.toml", fill(manifest), false),
                (
                    ".gitignore",
                    fill(include_str!("../../templates/rust/gitignore")),
                    false,
                ),
            ];
            if template == Template::RustWasm {
                files.push((
                    "build.sh",
                    fill(include_str!("../../templates/rust/build.sh")),
                    true,
                ));
            }
            files
        }
        Template::C => vec![
            (
                "plugin.c",
                fill(include_str!("../../templates/c/plugin.c")),
                false,
            ),
            (
                "corral_plugin.h",
                include_str!("../../../plugin-api/include/corral_plugin.h").to_owned(),
                false,
            ),
            (
                "test.c",
                fill(include_str!("../../templates/c/test.c")),
                false,
            ),
            (
                "Makefile",
                fill(include_str!("../../templates/c/Makefile")),
                false,
            ),
            (
                "plugin.toml",
                fill(include_str!("../../templates/c/plugin.toml")),
                false,
            ),
        ],
        Template::TypeScript => vec![
            (
                "package.json",
                fill(include_str!("../../templates/ts/package.json")),
                false,
            ),
            (
                "tsconfig.json",
                include_str!("../../templates/ts/tsconfig.json").to_owned(),
                false,
            ),
            (
                "src/index.ts",
                fill(include_str!("../../templates/ts/src/index.ts")),
                false,
            ),
            (
                "test/greet.test.mjs",
                fill(include_str!("../../templates/ts/test/greet.test.mjs")),
                false,
            ),
            (
                "plugin.toml",
                fill(include_str!("../../templates/ts/plugin.toml")),
                false,
            ),
            (
                ".gitignore",
                include_str!("../../templates/ts/gitignore").to_owned(),
                false,
            ),
        ],
        Template::AssemblyScript => vec![
            (
                "package.json",
                fill(include_str!("../../templates/as/package.json")),
                false,
            ),
            (
                "asconfig.json",
                fill(include_str!("../../templates/as/asconfig.json")),
                false,
            ),
            (
                "assembly/index.ts",
                fill(include_str!("../../templates/as/assembly/index.ts")),
                false,
            ),
            (
                "test/greet.test.mjs",
                fill(include_str!("../../templates/as/test/greet.test.mjs")),
                false,
            ),
            (
                "plugin.toml",
                fill(include_str!("../../templates/as/plugin.toml")),
                false,
            ),
            (
                ".gitignore",
                include_str!("../../templates/as/gitignore").to_owned(),
                false,
            ),
        ],
    };
    let mut written = Vec::new();
    for (file, contents, executable) in files {
        let path = dir.join(file);
        write(&path, &contents, executable).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(PathBuf::from(file));
    }
    Ok(written)
}

fn write(path: &Path, contents: &str, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    if executable {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// `my-plugin` as a Rust type name: `MyPlugin` (`Plugin2` for `2`).
fn type_name(name: &str) -> String {
    let camel: String = name
        .split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    if camel.starts_with(|c: char| c.is_ascii_digit()) {
        format!("Plugin{camel}")
    } else {
        camel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(type_name("hello"), "Hello");
        assert_eq!(type_name("my-pdf-export"), "MyPdfExport");
        assert_eq!(type_name("2d"), "Plugin2d");
        assert_eq!(type_name("a--b"), "AB");
    }

    #[test]
    fn writes_each_template_and_refuses_bad_names_and_full_folders() {
        let root = tempfile::tempdir().unwrap();
        for (template, expected) in [
            (Template::Rust, "Cargo.toml"),
            (Template::RustWasm, "build.sh"),
            (Template::C, "Makefile"),
            (Template::TypeScript, "src/index.ts"),
            (Template::AssemblyScript, "assembly/index.ts"),
        ] {
            let dir = root.path().join(format!("{template:?}"));
            let files = scaffold(&dir, "my-plugin", template, &default_api_path()).unwrap();
            assert!(files.contains(&PathBuf::from(expected)), "{files:?}");
            let manifest = fs::read_to_string(dir.join("plugin.toml")).unwrap();
            let parsed = corral_plugin_api::manifest::Manifest::parse(&manifest, &dir)
                .unwrap_or_else(|e| panic!("{e}\n{manifest}"));
            assert_eq!(parsed.name, "my-plugin");
            assert_eq!(parsed.methods[0].name, "greet");
            for file in files {
                let text = fs::read_to_string(dir.join(&file)).unwrap();
                for placeholder in ["@NAME@", "@CRATE@", "@TYPE@", "@API_PATH@"] {
                    assert!(!text.contains(placeholder), "{placeholder} in {file:?}");
                }
            }
            let again = scaffold(&dir, "my-plugin", template, &default_api_path());
            assert!(matches!(again, Err(ScaffoldError::Exists(_))), "{again:?}");
        }
        let bad = scaffold(
            &root.path().join("x"),
            "Bad_Name",
            Template::Rust,
            &default_api_path(),
        );
        assert!(matches!(bad, Err(ScaffoldError::Name { .. })), "{bad:?}");
        let no_api = scaffold(
            &root.path().join("y"),
            "y",
            Template::Rust,
            Path::new("/nonexistent"),
        );
        assert!(matches!(no_api, Err(ScaffoldError::NoApi(_))), "{no_api:?}");
    }
}
