//! `corral keygen`, `corral sign` and `corral verify`: the ed25519 keys
//! and signatures that `corral install` checks.

use super::install::refused;
use anyhow::{Context, Result};
use clap::Args;
use corral::settings::Settings;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `corral keygen`'s arguments.
#[derive(Args)]
pub(super) struct KeygenArgs {
    /// Path and name of the key files, without extension
    stem: PathBuf,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl KeygenArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self { stem, json } = self;
        let public = corral::signing::keygen(&stem)?;
        if json {
            let report = serde_json::json!({
                "public_key": public,
                "secret": stem.with_extension("key"),
                "public": stem.with_extension("pub"),
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "wrote {} (secret: keep it) and {}\npublic key: {public}",
                stem.with_extension("key").display(),
                stem.with_extension("pub").display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `corral sign`'s arguments.
#[derive(Args)]
pub(super) struct SignArgs {
    /// The secret key (from corral keygen)
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The archive
    archive: PathBuf,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl SignArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self { key, archive, json } = self;
        let signature = corral::signing::sign(&archive, &key)?;
        if json {
            let report = serde_json::json!({ "signature": signature });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("wrote {}", signature.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `corral verify`'s arguments.
#[derive(Args)]
pub(super) struct VerifyArgs {
    /// The archive (its signature is ARCHIVE.sig)
    archive: PathBuf,
    /// A trusted public key: 64 hex digits, or a .pub file
    /// (repeatable) [default: corral.toml's trusted_keys]
    #[arg(long, value_name = "KEY")]
    trust: Vec<String>,
    /// Settings file with trusted_keys
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl VerifyArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            archive,
            trust,
            config,
            json,
        } = self;
        let mut keys = match &config {
            Some(path) => Settings::load(path)?.trusted_keys,
            None => Vec::new(),
        };
        for key in trust {
            keys.push(public_key(&key)?);
        }
        match corral::signing::verify(&archive, &keys) {
            Ok(key) => {
                if json {
                    let report = serde_json::json!({ "valid": true, "key": key });
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{}: signed by {key}, a trusted key", archive.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => refused(&error.to_string(), json),
        }
    }
}

/// A public key given on the command line: hex, or a `.pub` file.
fn public_key(key: &str) -> Result<String> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("cannot read {key}"))?
    } else {
        key.to_owned()
    };
    Ok(corral::signing::check_public_key(text.trim())?)
}
