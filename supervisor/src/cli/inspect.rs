//! `corral inspect`: one plugin in full (manifest, permissions, limits,
//! sandbox layers, syscalls, recent exits), as text or `--json`.

use super::human::{ago, human, now_ms};
use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use corral::{ClientError, PluginDetails};
use std::process::ExitCode;
use std::time::Duration;

/// `corral inspect`'s arguments.
#[derive(Args)]
pub(super) struct InspectArgs {
    /// Plugin name
    plugin: String,
    #[command(flatten)]
    socket: SocketArg,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl InspectArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            plugin,
            socket,
            json,
        } = self;
        let details = match connect(&socket)?.inspect(&plugin) {
            Ok(details) => details,
            Err(ClientError::Remote(error)) => {
                eprintln!("corral: {} ({})", error.message, error.kind);
                return Ok(ExitCode::from(1));
            }
            Err(error) => return Err(error.into()),
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&details)?);
        } else {
            print!("{}", inspect_text(&details, now_ms()));
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn inspect_text(details: &PluginDetails, now_ms: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    let info = &details.info;
    let mut out = format!(
        "{} {} ({})  {}",
        info.name,
        info.version.as_deref().unwrap_or("?"),
        details.kind.as_str(),
        info.state.as_str()
    );
    if let Some(pid) = info.pid {
        out += &format!("  pid {pid}");
    }
    if let Some(uptime) = info.uptime_ms {
        out += &format!("  up {}", human(Duration::from_millis(uptime)));
    }
    if let Some(start) = info.start_us {
        out += &format!("  started in {:.1} ms", start as f64 / 1000.0);
    }
    match info.spawn_mode {
        Some(corral::SpawnMode::Zygote) => out += " (forked from the zygote)",
        Some(corral::SpawnMode::Exec) => out += " (executed afresh)",
        None => {}
    }
    out += &format!("  restarts {}\n", info.restarts);
    let row = |out: &mut String, key: &str, value: &str| *out += &format!("  {key:<12} {value}\n");
    if let Some(spare) = info.spare_pid {
        row(
            &mut out,
            "spare",
            &format!("pid {spare}, sandboxed, waiting to take over"),
        );
    }
    row(&mut out, "manifest", &details.manifest);
    row(&mut out, "entry", &details.entry);
    if let Some(error) = &info.error {
        row(&mut out, "error", error);
    }
    let list = |paths: &[String]| {
        if paths.is_empty() {
            "(none)".to_owned()
        } else {
            paths.join(", ")
        }
    };
    out += "permissions\n";
    row(&mut out, "read", &list(&details.read));
    row(&mut out, "write", &list(&details.write));
    row(
        &mut out,
        "network",
        if details.network { "yes" } else { "no" },
    );
    row(&mut out, "host", &list(&details.host));
    row(&mut out, "subscribe", &list(&details.subscribe));
    if !info.provides.is_empty() {
        row(&mut out, "provides", &info.provides.join(", "));
    }
    if !details.methods.is_empty() {
        out += "methods
";
        for (name, description) in &details.methods {
            row(&mut out, name, description);
        }
    }
    if !details.config.is_empty() {
        out += "config (effective: plugin.toml [config] with corral.toml overrides)
";
        for line in details.config.lines() {
            out += &format!(
                "  {line}
"
            );
        }
    }
    let limits = &details.limits;
    out += "limits\n";
    row(
        &mut out,
        "memory",
        &format!("{} MiB", limits.memory_bytes / MIB),
    );
    row(
        &mut out,
        "call",
        &format!("{} ms, then the worker is killed", limits.call_timeout_ms),
    );
    row(
        &mut out,
        "cpu time",
        &limits
            .cpu_seconds
            .map_or_else(|| "unlimited".into(), |s| format!("{s} s")),
    );
    row(
        &mut out,
        "cpu use",
        &limits.cpu_percent.map_or_else(
            || "unwatched".into(),
            |p| format!("{p}% sustained, then killed"),
        ),
    );
    row(&mut out, "open files", &limits.open_files.to_string());
    row(&mut out, "threads", &limits.threads.to_string());
    row(
        &mut out,
        "file size",
        &format!("{} MiB", limits.file_size_bytes / MIB),
    );
    out += "sandbox\n";
    if details.layers.is_empty() {
        out += "  (no worker has started yet)\n";
    }
    for layer in &details.layers {
        let mark = if layer.active { "on " } else { "OFF" };
        out += &format!("  {mark} {:<12} {}\n", layer.name, layer.detail);
    }
    out += "syscalls (seccomp)\n";
    row(
        &mut out,
        "allowed",
        &if details.syscalls.is_empty() {
            "the baseline".to_owned()
        } else {
            format!("the baseline + {}", details.syscalls.join(", "))
        },
    );
    let refused: Vec<String> = details
        .refused
        .iter()
        .map(|refusal| match refusal.tier {
            corral_plugin_api::seccomp::Tier::Kill => {
                format!("{} {} (kill tier)", refusal.syscall, refusal.count)
            }
            _ => format!("{} {}", refusal.syscall, refusal.count),
        })
        .collect();
    row(&mut out, "refused", &list(&refused));
    out += "recent exits (newest last)\n";
    if details.exits.is_empty() {
        out += "  (none)\n";
    }
    for exit in &details.exits {
        out += &format!(
            "  {:>7} ago  {:<18} {}\n",
            ago(now_ms, exit.at_unix_ms),
            exit.cause.as_str(),
            exit.description
        );
    }
    if let Some(last) = details.exits.last().filter(|exit| !exit.output.is_empty()) {
        out += "last output of the last worker\n";
        for line in &last.output {
            out += &format!("  | {line}\n");
        }
    }
    out
}
