//! `corral new`: makes a new plugin's folder from a template (Rust
//! native, Rust to WebAssembly, or C) and says how to build and serve it.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `corral new`'s arguments.
#[derive(Args)]
pub(super) struct NewArgs {
    /// Plugin name: 1-64 of a-z, 0-9 and '-'
    name: String,
    /// A Rust plugin built as a WebAssembly module (./build.sh)
    #[arg(long, conflicts_with = "c")]
    wasm: bool,
    /// A plugin in C (make; make test)
    #[arg(long)]
    c: bool,
    /// Where to make it [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The corral-plugin-api crate a Rust plugin depends on (by path)
    /// [default: the one this corral was built from]
    #[arg(long, value_name = "DIR")]
    api_path: Option<PathBuf>,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl NewArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            name,
            wasm,
            c,
            dir,
            api_path,
            json,
        } = self;
        new_plugin(&name, wasm, c, dir, api_path, json)
    }
}

fn new_plugin(
    name: &str,
    wasm: bool,
    c: bool,
    dir: Option<PathBuf>,
    api_path: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    use corral::scaffold::{self, Template};
    let template = match (wasm, c) {
        (true, _) => Template::RustWasm,
        (_, true) => Template::C,
        _ => Template::Rust,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let api = api_path.unwrap_or_else(scaffold::default_api_path);
    let files = scaffold::scaffold(&dir, name, template, &api)?;
    let steps: &[&str] = match template {
        Template::Rust => &["cargo test", "cargo build --release"],
        Template::RustWasm => &["cargo test", "./build.sh"],
        Template::C => &["make test"],
    };
    if json {
        let report = serde_json::json!({
            "name": name,
            "dir": dir,
            "files": files,
            "build": steps,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("made plugin `{name}` in {}:", dir.display());
    for file in &files {
        println!("  {}", file.display());
    }
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    println!(
        "
next:"
    );
    println!("  (cd {} && {})", dir.display(), steps.join(" && "));
    println!(
        "  corral serve --plugins {}    # serves the plugin folders in it",
        parent.display()
    );
    println!("  corral call {name} greet world");
    Ok(ExitCode::SUCCESS)
}
