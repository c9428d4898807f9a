//! `corral logs`: a plugin's log lines from the supervisor, since an age
//! or a time, as text or JSON, optionally followed.

use super::human::now_ms;
use super::socket::{SocketArg, connect, remote_failure};
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// `corral logs`' arguments.
#[derive(Args)]
pub(super) struct LogsArgs {
    /// Plugin name
    plugin: String,
    /// Keep printing new lines as they are written
    #[arg(short, long)]
    follow: bool,
    /// Only lines since then: an age (30s, 10m, 2h, 1d) or a UTC time
    /// (2026-11-25T14:00:00.000Z)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// One JSON object per line: {"at", "pid", "text"}
    #[arg(long)]
    json: bool,
}

impl LogsArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            plugin,
            follow,
            since,
            socket,
            json,
        } = self;
        let since = match since.as_deref() {
            Some(since) => parse_since(since, now_ms())?,
            None => 0,
        };
        let lines = match connect(&socket)?.logs(&plugin, since, follow) {
            Ok(lines) => lines,
            Err(error) => return remote_failure(&format!("logs {plugin}"), error),
        };
        let mut out = std::io::stdout().lock();
        for line in lines {
            let line = match line {
                Ok(line) => line,
                Err(error) => return remote_failure(&format!("logs {plugin}"), error),
            };
            if json {
                writeln!(out, "{}", log_json(&line))?;
            } else {
                writeln!(out, "{line}")?;
            }
            if follow {
                out.flush()?;
            }
        }
        if follow {
            bail!("corral closed the connection");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `--since`: an age (`30s`, `10m`, `2h`, `1d`) before `now_ms`, or a UTC
/// time as corral prints them.
pub(super) fn parse_since(text: &str, now_ms: u64) -> Result<u64> {
    if let Some(at) = corral::clock::parse_utc(text) {
        return Ok(at);
    }
    match humantime::parse_duration(text) {
        Ok(age) => Ok(now_ms.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))),
        Err(_) => bail!(
            "--since {text:?}: expected an age like 30s, 10m, 2h, 1d or a UTC time like 2026-11-25T14:00:00.000Z"
        ),
    }
}

/// A log line (`TIME pid=PID TEXT`) as a JSON object.
fn log_json(line: &str) -> serde_json::Value {
    let mut parts = line.splitn(3, ' ');
    let (at, pid, text) = (parts.next(), parts.next(), parts.next());
    match (
        at,
        pid.and_then(|p| p.strip_prefix("pid=")?.parse::<u32>().ok()),
    ) {
        (Some(at), Some(pid)) => {
            serde_json::json!({ "at": at, "pid": pid, "text": text.unwrap_or("") })
        }
        _ => serde_json::json!({ "at": null, "pid": null, "text": line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_ages_and_times() {
        let now = 1_795_608_000_000;
        assert_eq!(parse_since("30s", now).unwrap(), now - 30_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_since("1h 30m", now).unwrap(), now - 5_400_000);
        assert_eq!(
            parse_since("2026-11-25T11:00:00.000Z", now).unwrap(),
            now - 3_600_000
        );
        for bad in ["", "10", "m", "-5m", "10x", "yesterday"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_lines_as_json() {
        assert_eq!(
            log_json("2026-11-25T11:00:00.000Z pid=42 hello world"),
            serde_json::json!({"at": "2026-11-25T11:00:00.000Z", "pid": 42, "text": "hello world"})
        );
        assert_eq!(log_json("garbage")["text"], "garbage");
    }
}
