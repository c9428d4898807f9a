//! `corral serve`: the supervisor in the foreground, set up from
//! corral.toml and the flags; also where the `corral-worker` binary and
//! the log filter are worked out (`corral profile` runs a private
//! supervisor the same way).

use super::socket::SocketArg;
use anyhow::{Context, Result, bail};
use clap::Args;
use corral::ServeConfig;
use corral::settings::Settings;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `corral serve`'s flags.
#[derive(Args)]
pub(super) struct ServeArgs {
    /// Settings file (corral.toml); the flags given here win over it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder whose subfolders with a plugin.toml are plugins
    /// (repeatable) [default: the config file's plugins]
    #[arg(long = "plugins", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    #[command(flatten)]
    socket: SocketArg,
    /// The corral-worker binary [default: next to corral]
    #[arg(long, env = "CORRAL_WORKER", value_name = "PATH")]
    worker: Option<PathBuf>,
    /// Default call deadline of a plugin, in milliseconds (its [limits]
    /// call_timeout_ms overrides); a worker that misses it is killed
    /// [default: 30000]
    #[arg(long, value_name = "MS")]
    call_timeout_ms: Option<u64>,
    /// A delegated cgroup v2 folder: each plugin gets DIR/NAME with
    /// memory.max, pids.max, cpu.max; `auto`: corral's own cgroup, as
    /// a systemd unit with Delegate=yes gets it
    #[arg(long, value_name = "DIR")]
    cgroup: Option<PathBuf>,
    /// Where corral keeps state (compiled wasm modules) [default:
    /// /var/lib/corral for root, $XDG_STATE_HOME/corral otherwise]
    #[arg(long, env = "CORRAL_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Refuse workers with a sandbox layer missing (default: warn)
    #[arg(long)]
    strict: bool,
    /// Run this plugin's worker for a debugger: it stops (SIGSTOP)
    /// once sandboxed, before the plugin loads, and the log prints the
    /// `gdb -p PID` line; no call or start deadline, health check or
    /// CPU watchdog applies to it
    #[arg(long, value_name = "PLUGIN")]
    debug: Option<String>,
    /// Profile this plugin's syscalls while it serves: what the
    /// seccomp baseline does not allow is let through (a killing
    /// syscall refused, not killed) and listed by `corral inspect`
    #[arg(long, value_name = "PLUGIN")]
    profile: Option<String>,
    /// Let admin clients inject faults into workers (crash on the next
    /// call, fill memory): for tests, as corral::testing does
    #[arg(long)]
    faults: bool,
    /// As root, plugin number i (in name order) runs as uid/gid BASE+i
    /// [default: 200000]
    #[arg(long, value_name = "BASE")]
    worker_uid_base: Option<u32>,
    /// Time a worker has from spawn to Ready, in milliseconds [default:
    /// 10000]
    #[arg(long, value_name = "MS")]
    start_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9464) [default: off]
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Largest frame or payload either side of a channel may send, in MiB
    /// (a 4K RGBA video frame is 32 MiB) [default: 16]
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_frame_mb: Option<u32>,
    /// Log filter (tracing syntax: info, debug, corral=trace, ...)
    #[arg(long, env = "CORRAL_LOG", default_value = "info")]
    log: String,
}

impl ServeArgs {
    pub(super) fn run(self) -> Result<ExitCode> {
        let Self {
            config,
            plugin_dirs,
            socket,
            worker,
            call_timeout_ms,
            start_timeout_ms,
            worker_uid_base,
            strict,
            debug,
            profile,
            faults,
            cgroup,
            state_dir,
            metrics_addr,
            max_frame_mb,
            log,
        } = self;
        init_logging(&log)?;
        let worker = worker_path(worker)?;
        let settings = match &config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        let plugin_dirs = if plugin_dirs.is_empty() {
            settings.plugins.clone()
        } else {
            plugin_dirs
        };
        if plugin_dirs.is_empty() {
            bail!(
                "no plugin folders: pass --plugins DIR, or list them in a corral.toml \
                 (plugin_dirs = [\"DIR\"]) given with --config FILE"
            );
        }
        let socket = match (socket.socket.as_ref(), settings.socket.as_ref()) {
            (Some(path), _) | (None, Some(path)) => path.clone(),
            (None, None) => socket.path()?,
        };
        let config_file = config.map(std::path::absolute).transpose()?;
        let mut config = ServeConfig::new(plugin_dirs, socket, worker);
        settings.apply(&mut config);
        config.config_file = config_file;
        if let Some(ms) = call_timeout_ms {
            config.call_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = start_timeout_ms {
            config.start_timeout = Duration::from_millis(ms);
        }
        if let Some(base) = worker_uid_base {
            config.worker_uid_base = base;
        }
        config.strict |= strict;
        config.debug = debug;
        config.profile = profile;
        config.faults = faults;
        if cgroup.is_some() {
            config.cgroup = cgroup;
        }
        if state_dir.is_some() {
            config.state_dir = state_dir;
        }
        if config.state_dir.is_none() {
            config.state_dir = corral::default_state_dir();
        }
        if metrics_addr.is_some() {
            config.metrics_addr = metrics_addr;
        }
        if let Some(mb) = max_frame_mb {
            config.max_frame = mb << 20;
        }
        serve(config)
    }
}

#[cfg(target_os = "linux")]
fn serve(config: ServeConfig) -> Result<ExitCode> {
    block_on(corral::serve(config))??;
    Ok(ExitCode::SUCCESS)
}

/// Runs `future` to its end on a single-threaded runtime with IO, time
/// and signals, as the supervisor and its private uses (profile, replay)
/// need.
#[cfg(target_os = "linux")]
pub(super) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

#[cfg(not(target_os = "linux"))]
fn serve(_config: ServeConfig) -> Result<ExitCode> {
    bail!("corral serve runs on Linux only")
}

/// The `corral-worker` binary: as given, else next to `corral`.
pub(super) fn worker_path(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(worker) => Ok(worker),
        None => Ok(std::env::current_exe()
            .context("cannot find corral's own path")?
            .with_file_name("corral-worker")),
    }
}

pub(super) fn init_logging(filter: &str) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = filter
        .parse()
        .with_context(|| format!("bad log filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .finish()
        .with(filter)
        .init();
    Ok(())
}
