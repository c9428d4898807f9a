//! `corral events`: what happened (state changes, exits, reloads, admin
//! actions, ...), one line or JSON object per event, optionally followed.

use super::socket::{SocketArg, connect};
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// `corral events`' arguments.
#[derive(Args)]
pub(super) struct EventsArgs {
    /// Keep printing new events as they happen
    #[arg(short, long)]
    follow: bool,
    /// Only this plugin's events
    #[arg(long, value_name = "NAME")]
    plugin: Option<String>,
    /// Only events since then: an age (30s, 10m, 2h, 1d) or a UTC time;
    /// earlier runs' events are kept in the state folder's journal
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
}

impl EventsArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            follow,
            plugin,
            since,
            socket,
            json,
        } = self;
        let since = match since.as_deref() {
            Some(since) => super::logs::parse_since(since, super::human::now_ms())?,
            None => 0,
        };
        let mut client = connect(&socket)?;
        let mut out = std::io::stdout().lock();
        let mut print = |event: &corral::Event| -> Result<()> {
            if plugin.as_ref().is_none_or(|name| *name == event.plugin) && event.at_unix_ms >= since
            {
                if json {
                    writeln!(out, "{}", serde_json::to_string(event)?)?;
                } else {
                    writeln!(out, "{}", event_line(event))?;
                }
                out.flush()?;
            }
            Ok(())
        };
        if !follow {
            for event in &client.events(0)? {
                print(event)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        for event in client.follow_events(0)? {
            print(&event?)?;
        }
        bail!("corral closed the connection")
    }
}

/// `2026-11-25T12:00:00.123Z  hello  gen 2  exit  worker 123 killed by ...`
fn event_line(event: &corral::Event) -> String {
    let plugin = if event.plugin.is_empty() {
        "-"
    } else {
        &event.plugin
    };
    format!(
        "{}  {plugin}  gen {}  {}  {}",
        corral::clock::utc(event.at_unix_ms),
        event.generation,
        event.kind.as_str(),
        event.detail
    )
}
