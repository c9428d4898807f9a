//! `corral crashes` and `corral crash ID`: the crash reports a serving
//! corral keeps (admin uids).

use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use corral::{CallEnd, CrashReport, RecordedCall};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `corral crashes`' arguments.
#[derive(Args)]
pub(super) struct CrashesArgs {
    /// Only this plugin's crashes
    name: Option<String>,
    #[command(flatten)]
    socket: SocketArg,
    /// A JSON array
    #[arg(long)]
    json: bool,
}

impl CrashesArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let crashes = connect(&self.socket)?.crashes(self.name.as_deref())?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&crashes)?);
            return Ok(ExitCode::SUCCESS);
        }
        if crashes.is_empty() {
            println!("no crash reports");
            return Ok(ExitCode::SUCCESS);
        }
        println!("ID                    TIME                      PLUGIN  CALLS  CAUSE");
        for crash in &crashes {
            let repeats = match crash.repeats {
                0 => String::new(),
                n => format!(" (and {n} more within a minute)"),
            };
            println!(
                "{:<21} {:<25} {}  {} ({} in flight)  {}{repeats}",
                crash.id,
                corral::clock::utc(crash.at_unix_ms),
                crash.plugin,
                crash.calls,
                crash.in_flight,
                crash.cause,
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `corral crash`'s arguments.
#[derive(Args)]
pub(super) struct CrashArgs {
    /// The report's id (corral crashes lists them)
    id: String,
    #[command(flatten)]
    socket: SocketArg,
    /// The report as JSON
    #[arg(long)]
    json: bool,
}

impl CrashArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let report = connect(&self.socket)?.crash(&self.id)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", describe(&report));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A report for people.
fn describe(report: &CrashReport) -> String {
    let mut out = String::new();
    let exit = &report.exit;
    let _ = writeln!(
        out,
        "{} {}  worker {} (generation {})  {}",
        report.plugin,
        report.version,
        report.pid,
        report.generation,
        corral::clock::utc(exit.at_unix_ms)
    );
    let _ = writeln!(
        out,
        "  cause        {} ({})",
        exit.description,
        exit.cause.as_str()
    );
    if report.repeats > 0 {
        let _ = writeln!(
            out,
            "  repeats      {} more within a minute",
            report.repeats
        );
    }
    let _ = writeln!(out, "  entry        {}", report.entry);
    let _ = writeln!(out, "  sha256       {}", report.entry_sha256);
    let limits = &report.limits;
    let _ = writeln!(
        out,
        "  limits       memory {} MiB, call {} ms, open files {}, threads {}",
        limits.memory_bytes >> 20,
        limits.call_timeout_ms,
        limits.open_files,
        limits.threads
    );
    let layers: Vec<&str> = report
        .layers
        .iter()
        .filter(|layer| layer.active)
        .map(|layer| layer.name.as_str())
        .collect();
    let _ = writeln!(out, "  sandbox      {}", layers.join(", "));
    let _ = writeln!(
        out,
        "calls ({}, oldest first{})",
        report.calls.len(),
        if report.inputs_recorded {
            ""
        } else {
            "; inputs not recorded: [debug] record = false"
        }
    );
    for call in &report.calls {
        let _ = writeln!(out, "  {}", call_line(call));
    }
    if !report.backtrace.is_empty() {
        let _ = writeln!(out, "backtrace (the crashing thread, innermost first)");
        for line in &report.backtrace {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !exit.output.is_empty() {
        let _ = writeln!(out, "last output");
        for line in &exit.output {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "replay it: corral replay {}", report.id);
    out
}

/// `#12 2026-…Z  direct 0  sum  8 bytes "1 2 3"  -> in flight`
fn call_line(call: &RecordedCall) -> String {
    let from = call
        .direct_channel
        .map_or_else(|| "relayed".to_owned(), |k| format!("direct {k}"));
    let ended = match call.ended {
        CallEnd::InFlight => "IN FLIGHT".to_owned(),
        CallEnd::Answered => "answered".to_owned(),
        CallEnd::Failed(kind) => format!("failed: {kind}"),
    };
    let shown = String::from_utf8_lossy(&call.input[..call.input.len().min(48)]);
    let cut = if (call.input.len() as u64) < u64::from(call.input_len) || call.input.len() > 48 {
        "…"
    } else {
        ""
    };
    format!(
        "#{} {}  {from}  {}  {} bytes {shown:?}{cut}  → {ended}",
        call.seq,
        corral::clock::utc(call.started_unix_ms),
        call.method,
        call.input_len,
    )
}
