//! `corral kv NAME list|get|put|delete`: an admin looks at or repairs a
//! plugin's storage while it runs (admin uids).

use super::input::read_data;
use super::socket::{SocketArg, connect, remote_failure};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use corral::{KvAnswer, KvRequest};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

/// `corral kv`'s arguments.
#[derive(Args)]
pub(super) struct KvArgs {
    /// Plugin name
    plugin: String,
    #[command(subcommand)]
    op: KvOp,
}

/// What every `corral kv` command takes.
#[derive(Args)]
struct Common {
    #[command(flatten)]
    socket: SocketArg,
    /// Print the answer as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum KvOp {
    /// List the keys (starting with PREFIX), sorted
    List {
        /// Only keys starting with this
        #[arg(default_value = "")]
        prefix: String,
        /// From this key on (inclusive)
        #[arg(long, default_value = "", value_name = "KEY")]
        start: String,
        /// One page of at most N keys, and where the next starts; default:
        /// every key
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Print the value under KEY (its raw bytes)
    Get {
        /// The key
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// Store VALUE under KEY (`-` reads stdin); the plugin's quota does
    /// not bind an admin
    Put {
        /// The key
        key: String,
        /// The value; `-` reads stdin
        value: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove KEY
    Delete {
        /// The key
        key: String,
        #[command(flatten)]
        common: Common,
    },
}

impl KvOp {
    /// The command's name and what every command takes.
    fn parts(&self) -> (&'static str, &Common) {
        match self {
            Self::List { common, .. } => ("list", common),
            Self::Get { common, .. } => ("get", common),
            Self::Put { common, .. } => ("put", common),
            Self::Delete { common, .. } => ("delete", common),
        }
    }
}

impl KvArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let (what, common) = self.op.parts();
        let (mut client, json) = (connect(&common.socket)?, common.json);
        let plugin = self.plugin;
        let mut ask = |request| client.kv(&plugin, request);
        let failed = |error| remote_failure(&format!("kv {plugin} {what}"), error);
        match self.op {
            KvOp::List {
                prefix,
                start,
                limit,
                ..
            } => {
                let mut keys = Vec::new();
                let mut start = start;
                let next = loop {
                    let request = KvRequest::List {
                        prefix: prefix.clone(),
                        start,
                        limit: limit.unwrap_or(corral_plugin_api::kv::MAX_PAGE),
                    };
                    let page = match ask(request) {
                        Ok(KvAnswer::Page(page)) => page,
                        Ok(_) => bail!("corral answered a list with something else"),
                        Err(error) => return failed(error),
                    };
                    keys.extend(page.keys);
                    match page.next {
                        Some(next) if limit.is_none() => start = next,
                        next => break next,
                    }
                };
                if json {
                    println!("{}", json!({ "keys": keys, "next": next }));
                } else {
                    let mut out = std::io::stdout().lock();
                    for key in &keys {
                        writeln!(out, "{key}")?;
                    }
                    if let Some(next) = next {
                        eprintln!("more keys from {next:?} on (--start {next:?})");
                    }
                }
            }
            KvOp::Get { key, .. } => {
                let value = match ask(KvRequest::Get { key: key.clone() }) {
                    Ok(KvAnswer::Value(value)) => value,
                    Ok(_) => bail!("corral answered a get with something else"),
                    Err(error) => return failed(error),
                };
                if json {
                    let value = match String::from_utf8(value) {
                        Ok(text) => json!({ "key": key, "value": text }),
                        Err(bytes) => json!({ "key": key, "value_bytes": bytes.into_bytes() }),
                    };
                    println!("{value}");
                } else {
                    std::io::stdout().write_all(&value)?;
                }
            }
            KvOp::Put { key, value, .. } => {
                let value = read_data(Some(&value))?;
                let bytes = value.len();
                let request = KvRequest::Put {
                    key: key.clone(),
                    value,
                };
                if let Err(error) = ask(request) {
                    return failed(error);
                }
                done(json, &json!({ "key": key, "put": bytes }));
            }
            KvOp::Delete { key, .. } => {
                if let Err(error) = ask(KvRequest::Delete { key: key.clone() }) {
                    return failed(error);
                }
                done(json, &json!({ "key": key, "deleted": true }));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Says a change was made: as JSON, or nothing (like `rm`).
fn done(json: bool, what: &serde_json::Value) {
    if json {
        println!("{what}");
    }
}
