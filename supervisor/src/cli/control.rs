//! `corral start`, `stop`, `restart`, `enable`, `disable` and `reload`:
//! the admin actions on one plugin, which all take the same arguments.

use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use corral::{Action, ClientError};
use std::process::ExitCode;
use std::time::Duration;

/// What every admin action takes.
#[derive(Args)]
pub(super) struct ControlArgs {
    /// Plugin name
    plugin: String,
    #[command(flatten)]
    socket: SocketArg,
    /// How long to wait for the action to settle, in milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    wait_ms: u64,
    /// Print the plugin's status afterwards as JSON
    #[arg(long)]
    json: bool,
}

impl ControlArgs {
    /// Runs `action`; exit 1 when corral refuses it or it fails.
    pub(super) fn run(self, action: Action) -> Result<ExitCode> {
        let wait = Duration::from_millis(self.wait_ms);
        match connect(&self.socket)?.control(&self.plugin, action, wait) {
            Ok(info) => {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                } else {
                    let mut line = format!("{}: {}", info.name, info.state.as_str());
                    if let Some(pid) = info.pid {
                        line += &format!(", pid {pid}");
                    }
                    if info.generation > 0 {
                        line += &format!(", generation {}", info.generation);
                    }
                    println!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ClientError::Remote(error)) => {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&error)?);
                }
                eprintln!(
                    "corral: {} {}: {} ({})",
                    action.as_str(),
                    self.plugin,
                    error.message,
                    error.kind
                );
                Ok(ExitCode::from(1))
            }
            Err(error) => Err(error.into()),
        }
    }
}
