//! Command-line interface: a thin layer over the client library and
//! [`corral::serve`].

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use corral::settings::Settings;
use corral::{
    Action, ClientError, ExitCause, PluginDetails, PluginInfo, PluginState, ServeConfig, blocking,
};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(name = "corral", version, about = "Process-isolated plugin supervisor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct SocketArg {
    /// Host socket [default: /run/corral/corral.sock for root,
    /// $XDG_RUNTIME_DIR/corral/corral.sock otherwise]
    #[arg(long, env = "CORRAL_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl SocketArg {
    fn path(&self) -> Result<PathBuf> {
        match &self.socket {
            Some(path) => Ok(path.clone()),
            None => corral::default_socket_path()
                .context("no socket path: pass --socket PATH, or set XDG_RUNTIME_DIR"),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the supervisor in the foreground until SIGINT or SIGTERM
    Serve {
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
        /// Log filter (tracing syntax: info, debug, corral=trace, ...)
        #[arg(long, env = "CORRAL_LOG", default_value = "info")]
        log: String,
    },
    /// Validate a plugin folder without running it: manifest, entry file,
    /// sha256, permissions; exits 1 if anything is wrong
    Check {
        /// The plugin folder, or its plugin.toml
        path: PathBuf,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin (a .tar.gz archive, or a folder) into a plugin
    /// folder: checked (signature, archive, manifest, sha256), staged,
    /// then switched to in one step; a serving corral hot-reloads it
    Install {
        /// The archive (ARCHIVE.sig beside it when signed) or folder
        source: PathBuf,
        #[command(flatten)]
        place: PlaceArgs,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Put a plugin's previous installed version back (hot reload)
    Rollback {
        /// Plugin name
        name: String,
        #[command(flatten)]
        place: PlaceArgs,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 key pair for signing plugins: STEM.key (secret,
    /// mode 0600) and STEM.pub
    Keygen {
        /// Path and name of the key files, without extension
        stem: PathBuf,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Sign a plugin archive: writes ARCHIVE.sig
    Sign {
        /// The secret key (from corral keygen)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The archive
        archive: PathBuf,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Check a plugin archive's signature against trusted keys; exits 1
    /// saying which check failed
    Verify {
        /// The archive (its signature is ARCHIVE.sig)
        archive: PathBuf,
        /// A trusted public key: 64 hex digits, or a .pub file
        /// (repeatable) [default: corral.toml's trusted_keys]
        #[arg(long, value_name = "KEY")]
        trust: Vec<String>,
        /// Settings file with trusted_keys
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Make a new plugin's folder: source, plugin.toml and a test, ready
    /// to build and serve (Rust native by default)
    New {
        /// Plugin name: 1-64 of a-z, 0-9 and '-'
        name: String,
        /// A Rust plugin built as a WebAssembly module (./build.sh)
        #[arg(long, conflicts_with = "c")]
        wasm: bool,
        /// A plugin in C (make; make test)
        #[arg(long)]
        c: bool,
        /// Where to make it [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The corral-plugin-api crate a Rust plugin depends on (by path)
        /// [default: the one this corral was built from]
        #[arg(long, value_name = "DIR")]
        api_path: Option<PathBuf>,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// Call a plugin method; the reply goes to stdout
    Call {
        /// Plugin name
        plugin: String,
        /// Method name
        method: String,
        /// Input bytes; `-` reads stdin [default: empty]
        data: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
        /// Deadline in milliseconds
        #[arg(long, default_value_t = 30_000, value_name = "MS")]
        timeout_ms: u64,
        /// Print the outcome as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin: manifest, permissions, limits, sandbox layers in
    /// force, recent exits
    Inspect {
        /// Plugin name
        plugin: String,
        #[command(flatten)]
        socket: SocketArg,
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
    /// List plugins: NAME STATE PID UPTIME RESTARTS CPU% RSS/LIMIT GEN
    /// LAST-EXIT; exits 1 if any is not ready
    Ps {
        #[command(flatten)]
        socket: SocketArg,
        /// Only the plugins that provide this extension point (`provides`
        /// in their plugin.toml)
        #[arg(long, value_name = "POINT")]
        provides: Option<String>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Start a plugin's worker, forgiving past failures; waits until it is
    /// ready or has failed to start
    Start(ControlArgs),
    /// Stop a plugin's worker; it stays stopped until started
    Stop(ControlArgs),
    /// Stop a plugin's worker, then start a new one
    Restart(ControlArgs),
    /// Allow a disabled plugin to run again, and start it
    Enable(ControlArgs),
    /// Stop a plugin and keep it from running, across supervisor restarts,
    /// until enabled
    Disable(ControlArgs),
    /// Read a plugin's folder again and switch to a new generation without
    /// dropping calls; if the new one fails, the old one keeps serving
    Reload(ControlArgs),
    /// Show what happened: state changes, worker exits, reloads, health
    /// checks, admin actions, refused clients and host services, limits
    Events {
        /// Keep printing new events as they happen
        #[arg(short, long)]
        follow: bool,
        /// Only this plugin's events
        #[arg(long, value_name = "NAME")]
        plugin: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's log: its workers' stdout and stderr and its log()
    /// calls, from the rotated files under the state folder
    Logs {
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
    },
    /// Show plugins live: ps plus calls, errors, calls in flight and
    /// latency (p50/p99), refreshed every interval
    Top {
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
    },
    /// Publish a message on a topic to the plugins and host apps that
    /// subscribed
    Publish {
        /// Topic (a-z A-Z 0-9 . _ / -)
        topic: String,
        /// Payload bytes; `-` reads stdin [default: empty]
        data: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
        /// Print {"delivered": N}
        #[arg(long)]
        json: bool,
    },
    /// Print what is published on topics (exact names, or prefixes ending
    /// in *) until interrupted
    Subscribe {
        /// Topic patterns
        #[arg(required = true)]
        topics: Vec<String>,
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object per message: {"topic", "from", "payload"}
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a plugin's worker (its whole process group); its
    /// restart policy decides what follows
    Kill {
        /// Plugin name
        plugin: String,
        /// Signal: a name (TERM, SIGKILL, ...) or a number
        #[arg(short = 's', long, default_value = "TERM", value_name = "SIGNAL")]
        signal: String,
        #[command(flatten)]
        socket: SocketArg,
        /// Print the plugin's status as JSON
        #[arg(long)]
        json: bool,
    },
}

/// What every admin action takes.
#[derive(Args)]
struct ControlArgs {
    /// Plugin name
    plugin: String,
    #[command(flatten)]
    socket: SocketArg,
    /// How long to wait for the action to settle, in milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    wait_ms: u64,
    /// Print the plugin's status afterwards as JSON
    #[arg(long)]
    json: bool,
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
        Command::Serve {
            config,
            plugin_dirs,
            socket,
            worker,
            call_timeout_ms,
            start_timeout_ms,
            worker_uid_base,
            strict,
            debug,
            faults,
            cgroup,
            state_dir,
            metrics_addr,
            log,
        } => {
            init_logging(&log)?;
            let worker = match worker {
                Some(worker) => worker,
                None => std::env::current_exe()
                    .context("cannot find corral's own path")?
                    .with_file_name("corral-worker"),
            };
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
            serve(config)
        }
        Command::Check { path, json } => check(&path, json),
        Command::Install {
            source,
            place,
            json,
        } => {
            let (plugins, trust) = place.resolve()?;
            match corral::install::install(&source, &plugins, &trust) {
                Ok(installed) => print_installed(&installed, "installed", json),
                Err(error) => refused(&error.to_string(), json),
            }
        }
        Command::Rollback { name, place, json } => {
            let (plugins, _) = place.resolve()?;
            match corral::install::rollback(&plugins, &name) {
                Ok(installed) => print_installed(&installed, "rolled back to", json),
                Err(error) => refused(&error.to_string(), json),
            }
        }
        Command::Keygen { stem, json } => {
            let public = corral::signing::keygen(&stem)?;
            if json {
                let report = serde_json::json!({
                    "public_key": public,
                    "secret": stem.with_extension("key"),
                    "public": stem.with_extension("pub"),
                });
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "wrote {} (secret: keep it) and {}\npublic key: {public}",
                    stem.with_extension("key").display(),
                    stem.with_extension("pub").display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign { key, archive, json } => {
            let signature = corral::signing::sign(&archive, &key)?;
            if json {
                let report = serde_json::json!({ "signature": signature });
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("wrote {}", signature.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            archive,
            trust,
            config,
            json,
        } => {
            let mut keys = match &config {
                Some(path) => Settings::load(path)?.trusted_keys,
                None => Vec::new(),
            };
            for key in trust {
                keys.push(public_key(&key)?);
            }
            match corral::signing::verify(&archive, &keys) {
                Ok(key) => {
                    if json {
                        let report = serde_json::json!({ "valid": true, "key": key });
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        println!("{}: signed by {key}, a trusted key", archive.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => refused(&error.to_string(), json),
            }
        }
        Command::New {
            name,
            wasm,
            c,
            dir,
            api_path,
            json,
        } => new_plugin(&name, wasm, c, dir, api_path, json),
        Command::Call {
            plugin,
            method,
            data,
            socket,
            timeout_ms,
            json,
        } => {
            let input = read_data(data.as_deref())?;
            let mut client = connect(&socket)?;
            let timeout = Duration::from_millis(timeout_ms);
            let result = client.call_with_timeout(&plugin, &method, &input, timeout);
            print_call(result, json)
        }
        Command::Inspect {
            plugin,
            socket,
            json,
        } => {
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
        Command::Start(args) => control(&args, Action::Start),
        Command::Stop(args) => control(&args, Action::Stop),
        Command::Restart(args) => control(&args, Action::Restart),
        Command::Enable(args) => control(&args, Action::Enable),
        Command::Disable(args) => control(&args, Action::Disable),
        Command::Reload(args) => control(&args, Action::Reload),
        Command::Events {
            follow,
            plugin,
            socket,
            json,
        } => {
            let mut client = connect(&socket)?;
            let mut out = std::io::stdout().lock();
            let mut print = |event: &corral::Event| -> Result<()> {
                if plugin.as_ref().is_none_or(|name| *name == event.plugin) {
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
        Command::Logs {
            plugin,
            follow,
            since,
            socket,
            json,
        } => {
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
        Command::Top {
            interval_ms,
            iterations,
            socket,
            json,
        } => {
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
        Command::Publish {
            topic,
            data,
            socket,
            json,
        } => {
            let payload = read_data(data.as_deref())?;
            match connect(&socket)?.publish(&topic, &payload) {
                Ok(delivered) if json => println!("{{\"delivered\":{delivered}}}"),
                Ok(delivered) => println!("{topic}: delivered to {delivered} subscribers"),
                Err(error) => return remote_failure(&format!("publish {topic}"), error),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Subscribe {
            topics,
            socket,
            json,
        } => {
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
        Command::Kill {
            plugin,
            signal,
            socket,
            json,
        } => {
            let number = parse_signal(&signal)?;
            match connect(&socket)?.kill(&plugin, number) {
                Ok(info) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&info)?);
                    } else {
                        let pid = info
                            .pid
                            .map_or_else(|| "-".to_owned(), |pid| pid.to_string());
                        println!("{plugin}: sent {signal} to worker {pid}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(ClientError::Remote(error)) => {
                    eprintln!("corral: kill {plugin}: {} ({})", error.message, error.kind);
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error.into()),
            }
        }
        Command::Ps {
            socket,
            provides,
            json,
        } => {
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
}

#[cfg(target_os = "linux")]
fn serve(config: ServeConfig) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(corral::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_os = "linux"))]
fn serve(_config: ServeConfig) -> Result<ExitCode> {
    bail!("corral serve runs on Linux only")
}

#[cfg(target_os = "linux")]
fn check(path: &Path, json: bool) -> Result<ExitCode> {
    let report = corral::check::check(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where `install` and `rollback` work, and what they trust.
#[derive(clap::Args)]
struct PlaceArgs {
    /// The plugin folder [default: the first of the config file's
    /// plugin_dirs]
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Settings file: plugin_dirs, require_signature, trusted_keys
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl PlaceArgs {
    fn resolve(&self) -> Result<(PathBuf, corral::install::Trust)> {
        let settings = match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        let plugins = match (&self.plugins, settings.plugins.first()) {
            (Some(dir), _) | (None, Some(dir)) => dir.clone(),
            (None, None) => bail!(
                "which plugin folder? pass --plugins DIR, or --config FILE whose plugin_dirs names it"
            ),
        };
        let trust = corral::install::Trust {
            require_signature: settings.require_signature,
            trusted_keys: settings.trusted_keys,
        };
        Ok((plugins, trust))
    }
}

/// A public key given on the command line: hex, or a `.pub` file.
fn public_key(key: &str) -> Result<String> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("cannot read {key}"))?
    } else {
        key.to_owned()
    };
    Ok(corral::signing::check_public_key(text.trim())?)
}

fn print_installed(
    installed: &corral::install::Installed,
    what: &str,
    json: bool,
) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(installed)?);
    } else {
        print!(
            "{what} {} {} ({})",
            installed.name,
            installed.version,
            installed.dir.display()
        );
        if let Some(previous) = &installed.previous {
            print!("; previous: {previous}");
        }
        if let Some(key) = &installed.signed_by {
            print!("; signed by {key}");
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused install, rollback or verification: the message (or a JSON
/// object with it) and exit code 1.
fn refused(message: &str, json: bool) -> Result<ExitCode> {
    if json {
        let report = serde_json::json!({ "valid": false, "error": message });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("corral: {message}");
    }
    Ok(ExitCode::from(1))
}

fn new_plugin(
    name: &str,
    wasm: bool,
    c: bool,
    dir: Option<PathBuf>,
    api_path: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    use corral::scaffold::{self, Template};
    let template = match (wasm, c) {
        (true, _) => Template::RustWasm,
        (_, true) => Template::C,
        _ => Template::Rust,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let api = api_path.unwrap_or_else(scaffold::default_api_path);
    let files = scaffold::scaffold(&dir, name, template, &api)?;
    let steps: &[&str] = match template {
        Template::Rust => &["cargo test", "cargo build --release"],
        Template::RustWasm => &["cargo test", "./build.sh"],
        Template::C => &["make test"],
    };
    if json {
        let report = serde_json::json!({
            "name": name,
            "dir": dir,
            "files": files,
            "build": steps,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("made plugin `{name}` in {}:", dir.display());
    for file in &files {
        println!("  {}", file.display());
    }
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    println!(
        "
next:"
    );
    println!("  (cd {} && {})", dir.display(), steps.join(" && "));
    println!(
        "  corral serve --plugins {}    # serves the plugin folders in it",
        parent.display()
    );
    println!("  corral call {name} greet world");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_os = "linux"))]
fn check(_path: &Path, _json: bool) -> Result<ExitCode> {
    bail!("corral check runs on Linux only")
}

fn init_logging(filter: &str) -> Result<()> {
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

/// A signal by name (`TERM`, `SIGTERM`, any case) or number.
fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match name.parse::<nix::sys::signal::Signal>() {
        Ok(signal) => Ok(signal as i32),
        Err(_) => bail!("`{text}` is not a signal (try TERM, KILL, HUP, INT, USR1 or a number)"),
    }
}

/// Runs an admin action; exit 1 when corral refuses it or it fails.
fn control(args: &ControlArgs, action: Action) -> Result<ExitCode> {
    let wait = Duration::from_millis(args.wait_ms);
    match connect(&args.socket)?.control(&args.plugin, action, wait) {
        Ok(info) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                let mut line = format!("{}: {}", info.name, info.state.as_str());
                if let Some(pid) = info.pid {
                    line += &format!(", pid {pid}");
                }
                if info.generation > 0 {
                    line += &format!(", generation {}", info.generation);
                }
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Remote(error)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&error)?);
            }
            eprintln!(
                "corral: {} {}: {} ({})",
                action.as_str(),
                args.plugin,
                error.message,
                error.kind
            );
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error.into()),
    }
}

fn connect(socket: &SocketArg) -> Result<blocking::Client> {
    let path = socket.path()?;
    if !path.exists() {
        bail!(
            "no corral is serving on {} (start one with `corral serve`)",
            path.display()
        );
    }
    Ok(blocking::Client::connect(path)?)
}

fn print_call(result: Result<Vec<u8>, ClientError>, json: bool) -> Result<ExitCode> {
    match (result, json) {
        (Ok(reply), false) => {
            std::io::stdout().write_all(&reply)?;
            Ok(ExitCode::SUCCESS)
        }
        (Ok(reply), true) => {
            let value = match String::from_utf8(reply) {
                Ok(text) => serde_json::json!({ "ok": true, "reply": text }),
                Err(bytes) => serde_json::json!({ "ok": true, "reply_bytes": bytes.into_bytes() }),
            };
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        (Err(ClientError::Remote(error)), false) => {
            eprintln!("corral: {} ({})", error.message, error.kind);
            Ok(ExitCode::from(1))
        }
        (Err(ClientError::Remote(error)), true) => {
            println!("{}", serde_json::json!({ "ok": false, "error": error }));
            Ok(ExitCode::from(1))
        }
        (Err(error), _) => Err(error.into()),
    }
}

/// A command's input bytes: the argument, stdin for `-`, or nothing.
fn read_data(data: Option<&str>) -> Result<Vec<u8>> {
    Ok(match data {
        Some("-") => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("cannot read stdin")?;
            input
        }
        Some(data) => data.as_bytes().to_vec(),
        None => Vec::new(),
    })
}

/// Exit 1 with the supervisor's answer when it refused; 2 for anything
/// else.
fn remote_failure(what: &str, error: ClientError) -> Result<ExitCode> {
    match error {
        ClientError::Remote(error) => {
            eprintln!("corral: {what}: {} ({})", error.message, error.kind);
            Ok(ExitCode::from(1))
        }
        error => Err(error.into()),
    }
}

/// `--since`: an age (`30s`, `10m`, `2h`, `1d`) before `now_ms`, or a UTC
/// time as corral prints them.
fn parse_since(text: &str, now_ms: u64) -> Result<u64> {
    if let Some(at) = corral::clock::parse_utc(text) {
        return Ok(at);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(count) if scale > 0 => Ok(now_ms.saturating_sub(count.saturating_mul(scale))),
        _ => bail!(
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
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

/// A latency for people: `850us`, `1.2ms`, `340ms`, `2.5s`.
fn human_us(duration: Duration) -> String {
    let us = duration.as_micros();
    if us < 1_000 {
        format!("{us}us")
    } else if us < 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// Bytes as mebibytes, `12.3M` below 100 MiB, `256M` above.
fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib < 100.0 {
        format!("{mib:.1}M")
    } else {
        format!("{mib:.0}M")
    }
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

fn ago(now_ms: u64, at_unix_ms: u64) -> String {
    human(Duration::from_millis(now_ms.saturating_sub(at_unix_ms)))
}

fn inspect_text(details: &PluginDetails, now_ms: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    let info = &details.info;
    let mut out = format!(
        "{} {} ({})  {}",
        info.name,
        info.version.as_deref().unwrap_or("?"),
        match details.kind {
            corral::PluginKind::Native => "native",
            corral::PluginKind::Wasm => "wasm",
        },
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

fn signal_name(signal: i32) -> String {
    #[cfg(target_os = "linux")]
    if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
        return signal.as_str().to_owned();
    }
    format!("signal {signal}")
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
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
    fn since_takes_ages_and_times() {
        let now = 1_795_608_000_000;
        assert_eq!(parse_since("30s", now).unwrap(), now - 30_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
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

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(
            parse_signal("NOPE")
                .unwrap_err()
                .to_string()
                .contains("not a signal")
        );
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (61, "1m01s"),
            (3_660, "1h01m"),
            (90_000, "1d01h"),
        ];
        for (secs, text) in cases {
            assert_eq!(human(Duration::from_secs(secs)), text);
        }
    }
}
