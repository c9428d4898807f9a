//! `corral profile`: runs a plugin in a private supervisor with its
//! seccomp filter reporting, makes the calls given, and prints the
//! syscalls it made beyond the baseline (text or `--json`).

use super::input::read_data;
use super::serve::{init_logging, worker_path};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `corral profile`'s arguments.
#[derive(Args)]
pub(super) struct ProfileArgs {
    /// The plugin folder
    dir: PathBuf,
    /// A call to make after the plugin's init: METHOD and INPUT (`-`
    /// reads stdin) (repeatable)
    #[arg(long = "call", num_args = 2, value_names = ["METHOD", "INPUT"])]
    calls: Vec<String>,
    /// A folder of plugin folders to take its dependencies from
    /// (repeatable)
    #[arg(long = "plugins", value_name = "DIR")]
    dependencies: Vec<PathBuf>,
    /// The corral-worker binary [default: next to corral]
    #[arg(long, env = "CORRAL_WORKER", value_name = "PATH")]
    worker: Option<PathBuf>,
    /// Deadline of the start and of each call, in milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    timeout_ms: u64,
    /// Log filter for the private supervisor (tracing syntax)
    #[arg(long, default_value = "error")]
    log: String,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl ProfileArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            dir,
            calls,
            dependencies,
            worker,
            timeout_ms,
            log,
            json,
        } = self;
        init_logging(&log)?;
        let calls = calls
            .chunks(2)
            .map(|pair| Ok((pair[0].clone(), read_data(Some(&pair[1]))?)))
            .collect::<Result<_>>()?;
        let request = corral::profile::ProfileRequest {
            dir,
            calls,
            dependencies,
            worker_exe: worker_path(worker)?,
            timeout: Duration::from_millis(timeout_ms),
        };
        profile(request, json)
    }
}

#[cfg(target_os = "linux")]
fn profile(request: corral::profile::ProfileRequest, json: bool) -> Result<ExitCode> {
    let profile = super::serve::block_on(corral::profile::profile(request))??;
    if json {
        let mut value = serde_json::to_value(&profile)?;
        value["line"] = serde_json::json!(profile.line());
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", profile_text(&profile));
    }
    Ok(if profile.start_error.is_some() {
        ExitCode::from(2)
    } else if !profile.kill.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(not(target_os = "linux"))]
fn profile(_request: corral::profile::ProfileRequest, _json: bool) -> Result<ExitCode> {
    anyhow::bail!("corral profile runs on Linux only")
}

#[cfg(target_os = "linux")]
fn profile_text(profile: &corral::profile::Profile) -> String {
    let mut out = format!(
        "{} {}: profiled with every sandbox layer in force, seccomp reporting\n",
        profile.plugin, profile.version
    );
    match &profile.start_error {
        Some(error) => out += &format!("  start   failed: {error}\n"),
        None => out += "  start   ok\n",
    }
    for call in &profile.calls {
        let outcome = match (&call.reply, &call.error) {
            (Some(reply), _) => format!("ok: {reply:?}"),
            (None, Some(error)) => format!("failed: {error}"),
            (None, None) => continue,
        };
        out += &format!("  call    {} {:?}: {outcome}\n", call.method, call.input);
    }
    let count = |name: &str| {
        profile
            .counts
            .iter()
            .find(|refusal| refusal.syscall == name)
            .map_or(0, |refusal| refusal.count)
    };
    match profile.line() {
        None => out += "nothing beyond the baseline: no [permissions] syscalls needed\n",
        Some(line) => {
            out += "beyond the baseline (times made):\n";
            for name in &profile.syscalls {
                out += &format!("  {name:<24} {}\n", count(name));
            }
            out += &format!("add to plugin.toml:\n  [permissions]\n  {line}\n");
        }
    }
    if !profile.listed.is_empty() {
        let unused: Vec<&str> = profile
            .listed
            .iter()
            .filter(|listed| !profile.syscalls.contains(listed))
            .map(String::as_str)
            .collect();
        out += &format!(
            "plugin.toml lists syscalls = {:?}{}\n",
            profile.listed,
            if unused.is_empty() {
                String::new()
            } else {
                format!("; not made in this profile: {}", unused.join(", "))
            }
        );
    }
    if !profile.kill.is_empty() {
        out +=
            "kill tier (no manifest can allow these; outside a profile the worker dies of them):\n";
        for name in &profile.kill {
            out += &format!("  {name:<24} {}\n", count(name));
        }
    }
    out
}
