//! `corral ps` and `corral top`: the plugins as a table (top adds the
//! call metrics and refreshes), or as JSON.

use super::human::{ago, human, human_us, mib, now_ms};
use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use corral::{ExitCause, PluginInfo, PluginState};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// `corral ps`'s arguments.
#[derive(Args)]
pub(super) struct PsArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// Only the plugins that provide this extension point (`provides`
    /// in their plugin.toml)
    #[arg(long, value_name = "POINT")]
    provides: Option<String>,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

impl PsArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            socket,
            provides,
            json,
        } = self;
        let plugins = match &provides {
            Some(point) => connect(&socket)?.providing(point)?,
            None => connect(&socket)?.list()?,
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&plugins)?);
        } else {
            print!("{}", ps_table(&plugins, now_ms()));
        }
        let all_ready = plugins.iter().all(|p| p.state == PluginState::Ready);
        Ok(if all_ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// `corral top`'s arguments.
#[derive(Args)]
pub(super) struct TopArgs {
    /// Refresh interval in milliseconds
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval_ms: u64,
    /// Stop after this many refreshes [default: until interrupted]
    #[arg(short = 'n', long, value_name = "COUNT")]
    iterations: Option<u64>,
    #[command(flatten)]
    socket: SocketArg,
    /// One JSON array per refresh, one per line
    #[arg(long)]
    json: bool,
}

impl TopArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            interval_ms,
            iterations,
            socket,
            json,
        } = self;
        let mut client = connect(&socket)?;
        let clear = !json && std::io::stdout().is_terminal();
        let mut out = std::io::stdout().lock();
        let mut done = 0;
        loop {
            let plugins = client.list()?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&plugins)?)?;
            } else {
                if clear {
                    write!(out, "\x1b[H\x1b[2J")?;
                }
                write!(out, "{}", top_table(&plugins, now_ms()))?;
            }
            out.flush()?;
            done += 1;
            if iterations.is_some_and(|limit| done >= limit) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
}

fn ps_table(plugins: &[PluginInfo], now_ms: u64) -> String {
    let mut rows = vec![ps_header()];
    rows.extend(plugins.iter().map(|plugin| ps_row(plugin, now_ms)));
    table(&rows)
}

/// `corral top`: the `ps` columns before LAST-EXIT, then the call metrics.
fn top_table(plugins: &[PluginInfo], now_ms: u64) -> String {
    let with_calls = |mut row: Vec<String>, calls: [String; 5]| {
        let last = row.pop().unwrap_or_default();
        row.extend(calls);
        row.push(last);
        row
    };
    let header = ["CALLS", "ERRORS", "INFLIGHT", "P50", "P99"].map(str::to_owned);
    let mut rows = vec![with_calls(ps_header(), header)];
    for plugin in plugins {
        let latency = |us: Option<u64>| {
            us.map_or_else(|| "-".to_owned(), |us| human_us(Duration::from_micros(us)))
        };
        let errors: u64 = plugin.errors.iter().map(|(_, count)| count).sum();
        let calls = [
            plugin.calls.to_string(),
            errors.to_string(),
            plugin.in_flight.to_string(),
            latency(plugin.latency_p50_us),
            latency(plugin.latency_p99_us),
        ];
        rows.push(with_calls(ps_row(plugin, now_ms), calls));
    }
    table(&rows)
}

fn ps_header() -> Vec<String> {
    [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "CPU%",
        "RSS/LIMIT",
        "GEN",
        "LAST-EXIT",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn ps_row(plugin: &PluginInfo, now_ms: u64) -> Vec<String> {
    // The latest error says more than the last exit (a failed reload, a
    // dependency waited for, why it gave up).
    let last_exit = match (&plugin.error, &plugin.last_exit) {
        (Some(error), _) => error.clone(),
        (None, Some(exit)) => {
            format!("{} {} ago", short_exit(exit), ago(now_ms, exit.at_unix_ms))
        }
        (None, None) => "-".to_owned(),
    };
    vec![
        plugin.name.clone(),
        plugin.state.as_str().to_owned(),
        plugin
            .pid
            .map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
        plugin
            .uptime_ms
            .map_or_else(|| "-".to_owned(), |ms| human(Duration::from_millis(ms))),
        plugin.restarts.to_string(),
        plugin
            .cpu_percent
            .map_or_else(|| "-".to_owned(), |cpu| cpu.to_string()),
        match (plugin.rss_bytes, plugin.memory_limit_bytes) {
            (Some(rss), Some(limit)) => format!("{}/{}", mib(rss), mib(limit)),
            (Some(rss), None) => mib(rss),
            (None, _) => "-".to_owned(),
        },
        match plugin.generation {
            0 => "-".to_owned(),
            generation => generation.to_string(),
        },
        last_exit,
    ]
}

/// Rows as left-aligned columns two spaces apart; the last column is not
/// padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `exit 3`, `SIGKILL`, or the cause when it says more (`seccomp`,
/// `call_deadline`, ...).
fn short_exit(exit: &corral::ExitInfo) -> String {
    match (exit.cause, exit.code, exit.signal) {
        (ExitCause::Clean | ExitCause::ExitCode, Some(code), _) => format!("exit {code}"),
        (ExitCause::Signal, _, Some(signal)) => signal_name(signal),
        (cause, _, _) => cause.as_str().to_owned(),
    }
}

fn signal_name(signal: i32) -> String {
    #[cfg(target_os = "linux")]
    if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
        return signal.as_str().to_owned();
    }
    format!("signal {signal}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral::ExitInfo;

    fn info(name: &str, state: PluginState) -> PluginInfo {
        PluginInfo {
            version: Some("1.0.0".into()),
            ..PluginInfo::new(name, format!("/p/{name}"), state)
        }
    }

    #[test]
    fn top_adds_call_metrics_before_the_last_exit() {
        let mut hello = info("hello", PluginState::Ready);
        hello.calls = 1200;
        hello.errors = vec![("timeout".into(), 2), ("plugin".into(), 1)];
        hello.in_flight = 4;
        hello.latency_p50_us = Some(48);
        hello.latency_p99_us = Some(2_340);
        let text = top_table(&[hello], 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME   STATE  PID  UPTIME  RESTARTS  CPU%  RSS/LIMIT  GEN  CALLS  ERRORS  INFLIGHT  P50   P99    LAST-EXIT",
                "hello  ready  -    -       0         -     -          -    1200   3       4         48us  2.3ms  -",
            ]
        );
    }

    #[test]
    fn ps_table_lines_up_columns() {
        let mut hello = info("hello", PluginState::Ready);
        hello.pid = Some(4242);
        hello.uptime_ms = Some(125_000);
        hello.restarts = 1;
        hello.last_exit = Some(ExitInfo {
            at_unix_ms: 1_000,
            code: None,
            signal: Some(9),
            cause: corral::ExitCause::Signal,
            description: "killed by signal 9 (SIGKILL)".into(),
            output: Vec::new(),
        });
        let mut bad = info("bad", PluginState::Failed);
        bad.error = Some("p/bad/plugin.toml:2:1: unknown field `x`".into());
        hello.generation = 2;
        hello.cpu_percent = Some(3);
        hello.rss_bytes = Some(5 * 1024 * 1024 + 300 * 1024);
        hello.memory_limit_bytes = Some(256 * 1024 * 1024);
        let table = ps_table(&[hello, bad], 6_000);
        assert_eq!(
            table,
            "NAME   STATE   PID   UPTIME  RESTARTS  CPU%  RSS/LIMIT  GEN  LAST-EXIT\n\
             hello  ready   4242  2m05s   1         3     5.3M/256M  2    SIGKILL 5s ago\n\
             bad    failed  -     -       0         -     -          -    p/bad/plugin.toml:2:1: unknown field `x`\n"
        );
    }
}
