//! `corral call`: calls a plugin method; the raw reply goes to stdout, or
//! the outcome as JSON.

use super::input::read_data;
use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use corral::ClientError;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// `corral call`'s arguments.
#[derive(Args)]
pub(super) struct CallArgs {
    /// Plugin name
    plugin: String,
    /// Method name
    method: String,
    /// Input bytes; `-` reads stdin [default: empty]
    data: Option<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// Deadline in milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    timeout_ms: u64,
    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

impl CallArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            plugin,
            method,
            data,
            socket,
            timeout_ms,
            json,
        } = self;
        let input = read_data(data.as_deref())?;
        let mut client = connect(&socket)?;
        let timeout = Duration::from_millis(timeout_ms);
        let result = client.call_with_timeout(&plugin, &method, &input, timeout);
        print_call(result, json)
    }
}

fn print_call(result: Result<Vec<u8>, ClientError>, json: bool) -> Result<ExitCode> {
    match (result, json) {
        (Ok(reply), false) => {
            std::io::stdout().write_all(&reply)?;
            Ok(ExitCode::SUCCESS)
        }
        (Ok(reply), true) => {
            let value = match String::from_utf8(reply) {
                Ok(text) => serde_json::json!({ "ok": true, "reply": text }),
                Err(bytes) => serde_json::json!({ "ok": true, "reply_bytes": bytes.into_bytes() }),
            };
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        (Err(ClientError::Remote(error)), false) => {
            eprintln!("corral: {} ({})", error.message, error.kind);
            Ok(ExitCode::from(1))
        }
        (Err(ClientError::Remote(error)), true) => {
            println!("{}", serde_json::json!({ "ok": false, "error": error }));
            Ok(ExitCode::from(1))
        }
        (Err(error), _) => Err(error.into()),
    }
}
