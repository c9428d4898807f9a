//! `corral check`: validates a plugin folder without running it.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `corral check`'s arguments.
#[derive(Args)]
pub(super) struct CheckArgs {
    /// The plugin folder, or its plugin.toml
    path: PathBuf,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl CheckArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        check(&self.path, self.json)
    }
}

#[cfg(target_os = "linux")]
fn check(path: &Path, json: bool) -> Result<ExitCode> {
    let report = corral::check::check(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(not(target_os = "linux"))]
fn check(_path: &Path, _json: bool) -> Result<ExitCode> {
    anyhow::bail!("corral check runs on Linux only")
}
