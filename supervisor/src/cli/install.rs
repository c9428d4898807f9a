//! `corral install` and `corral rollback`: put a plugin (or its previous
//! version) into a plugin folder, where a serving corral hot-reloads it.

use anyhow::{Result, bail};
use clap::Args;
use corral::settings::Settings;
use std::path::PathBuf;
use std::process::ExitCode;

/// `corral install`'s arguments.
#[derive(Args)]
pub(super) struct InstallArgs {
    /// The archive (ARCHIVE.sig beside it when signed) or folder
    source: PathBuf,
    #[command(flatten)]
    place: PlaceArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl InstallArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            source,
            place,
            json,
        } = self;
        let (plugins, trust) = place.resolve()?;
        match corral::install::install(&source, &plugins, &trust) {
            Ok(installed) => print_installed(&installed, "installed", json),
            Err(error) => refused(&error.to_string(), json),
        }
    }
}

/// `corral rollback`'s arguments.
#[derive(Args)]
pub(super) struct RollbackArgs {
    /// Plugin name
    name: String,
    #[command(flatten)]
    place: PlaceArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl RollbackArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self { name, place, json } = self;
        let (plugins, _) = place.resolve()?;
        match corral::install::rollback(&plugins, &name) {
            Ok(installed) => print_installed(&installed, "rolled back to", json),
            Err(error) => refused(&error.to_string(), json),
        }
    }
}

/// Where `install` and `rollback` work, and what they trust.
#[derive(Args)]
struct PlaceArgs {
    /// The plugin folder [default: the first of the config file's
    /// plugin_dirs]
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Settings file: plugin_dirs, require_signature, trusted_keys
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl PlaceArgs {
    fn resolve(&self) -> Result<(PathBuf, corral::install::Trust)> {
        let settings = match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        let plugins = match (&self.plugins, settings.plugins.first()) {
            (Some(dir), _) | (None, Some(dir)) => dir.clone(),
            (None, None) => bail!(
                "which plugin folder? pass --plugins DIR, or --config FILE whose plugin_dirs names it"
            ),
        };
        let trust = corral::install::Trust {
            require_signature: settings.require_signature,
            trusted_keys: settings.trusted_keys,
        };
        Ok((plugins, trust))
    }
}

fn print_installed(
    installed: &corral::install::Installed,
    what: &str,
    json: bool,
) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(installed)?);
    } else {
        print!(
            "{what} {} {} ({})",
            installed.name,
            installed.version,
            installed.dir.display()
        );
        if let Some(previous) = &installed.previous {
            print!("; previous: {previous}");
        }
        if let Some(key) = &installed.signed_by {
            print!("; signed by {key}");
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused install, rollback or verification: the message (or a JSON
/// object with it) and exit code 1.
pub(super) fn refused(message: &str, json: bool) -> Result<ExitCode> {
    if json {
        let report = serde_json::json!({ "valid": false, "error": message });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("corral: {message}");
    }
    Ok(ExitCode::from(1))
}
