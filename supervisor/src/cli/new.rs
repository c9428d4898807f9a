//! `corral new`: makes a new plugin's folder from a template (Rust
//! native, Rust to WebAssembly, C, TypeScript, AssemblyScript) and says
//! how to build and serve it.

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
    #[arg(long, group = "language")]
    wasm: bool,
    /// A plugin in C (make; make test)
    #[arg(long, group = "language")]
    c: bool,
    /// A plugin in TypeScript for corral's JavaScript engine, npm packages
    /// bundled in (npm install; npm test; npm run build)
    #[arg(long, group = "language")]
    ts: bool,
    /// A plugin in AssemblyScript, built as a WebAssembly module (npm
    /// install; npm test; npm run build)
    #[arg(long = "as", group = "language")]
    assemblyscript: bool,
    /// Where to make it [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The plugin-api folder a plugin depends on by path: the Rust crate,
    /// or its js/ and assemblyscript/ npm packages [default: the one this
    /// corral was built from]
    #[arg(long, value_name = "DIR")]
    api_path: Option<PathBuf>,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl NewArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        use corral::scaffold::Template;
        let template = if self.wasm {
            Template::RustWasm
        } else if self.c {
            Template::C
        } else if self.ts {
            Template::TypeScript
        } else if self.assemblyscript {
            Template::AssemblyScript
        } else {
            Template::Rust
        };
        new_plugin(&self.name, template, self.dir, self.api_path, self.json)
    }
}

fn new_plugin(
    name: &str,
    template: corral::scaffold::Template,
    dir: Option<PathBuf>,
    api_path: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    use corral::scaffold::{self, Template};
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let api = api_path.unwrap_or_else(scaffold::default_api_path);
    let files = scaffold::scaffold(&dir, name, template, &api)?;
    let steps: &[&str] = match template {
        Template::Rust => &["cargo test", "cargo build --release"],
        Template::RustWasm => &["cargo test", "./build.sh"],
        Template::C => &["make test"],
        Template::TypeScript | Template::AssemblyScript => &["npm install", "npm test"],
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
