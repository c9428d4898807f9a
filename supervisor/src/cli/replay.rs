//! `corral replay ID`: reads a crash report from the serving corral
//! (admin uids), then replays its calls in a fresh worker under a private
//! supervisor and says whether the crash came again; exits 0 when it did,
//! 1 when it did not.

use super::serve::{init_logging, worker_path};
use super::socket::{SocketArg, connect};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `corral replay`'s arguments.
#[derive(Args)]
pub(super) struct ReplayArgs {
    /// The crash report's id (corral crashes lists them)
    id: String,
    /// The worker waits for a debugger before the plugin loads, as under
    /// `corral serve --debug`: the line to attach gdb is printed
    #[arg(long)]
    debug: bool,
    /// Replay even though the plugin's entry changed since the crash
    #[arg(long)]
    force: bool,
    /// A folder of plugin folders to take its dependencies from
    /// (repeatable)
    #[arg(long = "plugins", value_name = "DIR")]
    dependencies: Vec<PathBuf>,
    /// The corral-worker binary [default: next to corral]
    #[arg(long, env = "CORRAL_WORKER", value_name = "PATH")]
    worker: Option<PathBuf>,
    #[command(flatten)]
    socket: SocketArg,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl ReplayArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        // The gdb line is a warning of the private supervisor's.
        init_logging(if self.debug { "warn" } else { "error" })?;
        let report = connect(&self.socket)?.crash(&self.id)?;
        let request = corral::replay::ReplayRequest {
            report,
            dependencies: self.dependencies,
            worker_exe: worker_path(self.worker)?,
            force: self.force,
            debug: self.debug,
        };
        replay(request, self.json)
    }
}

#[cfg(target_os = "linux")]
fn replay(request: corral::replay::ReplayRequest, json: bool) -> Result<ExitCode> {
    let calls = request.report.calls.len();
    let replay = super::serve::block_on(corral::replay::replay(request))??;
    if json {
        println!("{}", serde_json::to_string_pretty(&replay)?);
    } else if let Some(error) = &replay.start_error {
        println!("{}: did not start: {error}", replay.plugin);
    } else {
        match &replay.exit {
            Some(exit) => println!(
                "{}: worker {} at call {} of {calls}",
                replay.plugin, exit.description, replay.sent
            ),
            None => println!("{}: all {calls} calls answered, no crash", replay.plugin),
        }
        if replay.reproduced {
            println!("reproduced: the same cause as crash {}", replay.id);
        } else {
            println!(
                "not reproduced: crash {} was: {}",
                replay.id, replay.expected
            );
        }
    }
    Ok(if replay.reproduced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(not(target_os = "linux"))]
fn replay(_request: corral::replay::ReplayRequest, _json: bool) -> Result<ExitCode> {
    anyhow::bail!("corral replay runs on Linux only")
}
