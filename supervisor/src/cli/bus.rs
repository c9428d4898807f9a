//! `corral publish` and `corral subscribe`: the supervisor's message bus
//! from the command line.

use super::input::read_data;
use super::socket::{SocketArg, connect, remote_failure};
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// `corral publish`'s arguments.
#[derive(Args)]
pub(super) struct PublishArgs {
    /// Topic (a-z A-Z 0-9 . _ / -)
    topic: String,
    /// Payload bytes; `-` reads stdin [default: empty]
    data: Option<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// Print {"delivered": N}
    #[arg(long)]
    json: bool,
}

impl PublishArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            topic,
            data,
            socket,
            json,
        } = self;
        let payload = read_data(data.as_deref())?;
        match connect(&socket)?.publish(&topic, &payload) {
            Ok(delivered) if json => println!("{{\"delivered\":{delivered}}}"),
            Ok(delivered) => println!("{topic}: delivered to {delivered} subscribers"),
            Err(error) => return remote_failure(&format!("publish {topic}"), error),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `corral subscribe`'s arguments.
#[derive(Args)]
pub(super) struct SubscribeArgs {
    /// Topic patterns
    #[arg(required = true)]
    topics: Vec<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// One JSON object per message: {"topic", "from", "payload"}
    #[arg(long)]
    json: bool,
}

impl SubscribeArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            topics,
            socket,
            json,
        } = self;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let messages = match connect(&socket)?.subscribe(&topics) {
            Ok(messages) => messages,
            Err(error) => return remote_failure("subscribe", error),
        };
        let mut out = std::io::stdout().lock();
        for message in messages {
            let message = message?;
            let payload = String::from_utf8_lossy(&message.payload);
            if json {
                let object = serde_json::json!({
                    "topic": message.topic,
                    "from": message.from,
                    "payload": payload,
                });
                writeln!(out, "{object}")?;
            } else {
                let from = if message.from.is_empty() {
                    "-"
                } else {
                    &message.from
                };
                writeln!(out, "{}  {from}  {payload}", message.topic)?;
            }
            out.flush()?;
        }
        bail!("corral closed the connection")
    }
}
