//! Command-line interface: a thin layer over the client library and
//! [`corral::serve`]. This module parses the command line and hands each
//! subcommand to its module; the exit code is its answer, or 2 on error.

mod bus;
mod call;
mod check;
mod control;
mod crashes;
mod events;
mod human;
mod input;
mod inspect;
mod install;
mod kill;
mod kv;
mod logs;
mod new;
mod profile;
mod ps;
mod replay;
mod serve;
mod signing;
mod socket;

use anyhow::Result;
use clap::{Parser, Subcommand};
use corral::Action;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "corral", version, about = "Process-isolated plugin supervisor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The subcommands, in the order `corral --help` lists them; each one's
// doc comment is its help (it wins over its arguments' own). Not a doc
// comment here: clap would take it for `corral --help`'s about.
#[derive(Subcommand)]
enum Command {
    /// Run the supervisor in the foreground until SIGINT or SIGTERM
    Serve(serve::ServeArgs),
    /// Validate a plugin folder without running it: manifest, entry file,
    /// sha256, permissions; exits 1 if anything is wrong
    Check(check::CheckArgs),
    /// Run a plugin with every sandbox layer but its seccomp filter
    /// profiling, make the calls given, and print the syscalls it made
    /// beyond the baseline as a `[permissions] syscalls` line; exits 1 if
    /// it tried one that kills, 2 if it could not be profiled
    Profile(profile::ProfileArgs),
    /// Install a plugin (a .tar.gz archive, or a folder) into a plugin
    /// folder: checked (signature, archive, manifest, sha256), staged,
    /// then switched to in one step; a serving corral hot-reloads it
    Install(install::InstallArgs),
    /// Put a plugin's previous installed version back (hot reload)
    Rollback(install::RollbackArgs),
    /// Make an ed25519 key pair for signing plugins: STEM.key (secret,
    /// mode 0600) and STEM.pub
    Keygen(signing::KeygenArgs),
    /// Sign a plugin archive: writes ARCHIVE.sig
    Sign(signing::SignArgs),
    /// Check a plugin archive's signature against trusted keys; exits 1
    /// saying which check failed
    Verify(signing::VerifyArgs),
    /// Make a new plugin's folder: source, plugin.toml and a test, ready
    /// to build and serve (Rust native by default)
    New(new::NewArgs),
    /// Call a plugin method; the reply goes to stdout
    Call(call::CallArgs),
    /// Show one plugin: manifest, permissions, limits, sandbox layers in
    /// force, recent exits
    Inspect(inspect::InspectArgs),
    /// List plugins: NAME STATE PID UPTIME RESTARTS CPU% RSS/LIMIT GEN
    /// LAST-EXIT; exits 1 if any is not ready
    Ps(ps::PsArgs),
    /// Start a plugin's worker, forgiving past failures; waits until it is
    /// ready or has failed to start
    Start(control::ControlArgs),
    /// Stop a plugin's worker; it stays stopped until started
    Stop(control::ControlArgs),
    /// Stop a plugin's worker, then start a new one
    Restart(control::ControlArgs),
    /// Allow a disabled plugin to run again, and start it
    Enable(control::ControlArgs),
    /// Stop a plugin and keep it from running, across supervisor restarts,
    /// until enabled
    Disable(control::ControlArgs),
    /// Read a plugin's folder again and switch to a new generation without
    /// dropping calls; if the new one fails, the old one keeps serving
    Reload(control::ControlArgs),
    /// Show what happened: state changes, worker exits, reloads, health
    /// checks, admin actions, refused clients, host services and
    /// syscalls, limits
    Events(events::EventsArgs),
    /// Show a plugin's log: its workers' stdout and stderr and its log()
    /// calls, from the rotated files under the state folder
    Logs(logs::LogsArgs),
    /// Show plugins live: ps plus calls, errors, calls in flight and
    /// latency (p50/p99), refreshed every interval
    Top(ps::TopArgs),
    /// Publish a message on a topic to the plugins and host apps that
    /// subscribed
    Publish(bus::PublishArgs),
    /// Print what is published on topics (exact names, or prefixes ending
    /// in *) until interrupted
    Subscribe(bus::SubscribeArgs),
    /// Send a signal to a plugin's worker (its whole process group); its
    /// restart policy decides what follows
    Kill(kill::KillArgs),
    /// List the crash reports kept, newest first: time, plugin, calls
    /// recorded, cause
    Crashes(crashes::CrashesArgs),
    /// Show one crash report: cause, limits, sandbox, the calls recorded
    /// (those in flight marked), the last output lines
    Crash(crashes::CrashArgs),
    /// Look at or repair a plugin's storage while it runs: list [PREFIX],
    /// get KEY, put KEY VALUE, delete KEY (admin uids)
    Kv(kv::KvArgs),
    /// Replay a crash report's calls in a fresh worker with the same
    /// limits and sandbox, and say whether it crashed the same way (exits
    /// 0 if so, 1 if not); --debug waits for gdb first
    Replay(replay::ReplayArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("corral: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => args.run(),
        Command::Check(args) => args.run(),
        Command::Profile(args) => args.run(),
        Command::Install(args) => args.run(),
        Command::Rollback(args) => args.run(),
        Command::Keygen(args) => args.run(),
        Command::Sign(args) => args.run(),
        Command::Verify(args) => args.run(),
        Command::New(args) => args.run(),
        Command::Call(args) => args.run(),
        Command::Inspect(args) => args.run(),
        Command::Ps(args) => args.run(),
        Command::Start(args) => args.run(Action::Start),
        Command::Stop(args) => args.run(Action::Stop),
        Command::Restart(args) => args.run(Action::Restart),
        Command::Enable(args) => args.run(Action::Enable),
        Command::Disable(args) => args.run(Action::Disable),
        Command::Reload(args) => args.run(Action::Reload),
        Command::Events(args) => args.run(),
        Command::Logs(args) => args.run(),
        Command::Top(args) => args.run(),
        Command::Publish(args) => args.run(),
        Command::Subscribe(args) => args.run(),
        Command::Kill(args) => args.run(),
        Command::Crashes(args) => args.run(),
        Command::Crash(args) => args.run(),
        Command::Replay(args) => args.run(),
        Command::Kv(args) => args.run(),
    }
}
