//! `corral kill`: sends a signal, by name or number, to a plugin's
//! worker.

use super::socket::{SocketArg, connect};
use anyhow::{Result, bail};
use clap::Args;
use corral::ClientError;
use std::process::ExitCode;

/// `corral kill`'s arguments.
#[derive(Args)]
pub(super) struct KillArgs {
    /// Plugin name
    plugin: String,
    /// Signal: a name (TERM, SIGKILL, ...) or a number
    #[arg(short = 's', long, default_value = "TERM", value_name = "SIGNAL")]
    signal: String,
    #[command(flatten)]
    socket: SocketArg,
    /// Print the plugin's status as JSON
    #[arg(long)]
    json: bool,
}

impl KillArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            plugin,
            signal,
            socket,
            json,
        } = self;
        let number = parse_signal(&signal)?;
        match connect(&socket)?.kill(&plugin, number) {
            Ok(info) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                } else {
                    let pid = info
                        .pid
                        .map_or_else(|| "-".to_owned(), |pid| pid.to_string());
                    println!("{plugin}: sent {signal} to worker {pid}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ClientError::Remote(error)) => {
                eprintln!("corral: kill {plugin}: {} ({})", error.message, error.kind);
                Ok(ExitCode::from(1))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A signal by name (`TERM`, `SIGTERM`, any case) or number.
fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match name.parse::<nix::sys::signal::Signal>() {
        Ok(signal) => Ok(signal as i32),
        Err(_) => bail!("`{text}` is not a signal (try TERM, KILL, HUP, INT, USR1 or a number)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(
            parse_signal("NOPE")
                .unwrap_err()
                .to_string()
                .contains("not a signal")
        );
    }
}
