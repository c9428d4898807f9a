//! `corral-worker`: one plugin in one process. The binary is built by the
//! `corral` package (`supervisor/src/bin/corral-worker.rs`, so that
//! `cargo install --path supervisor` installs both); this library is all
//! of it.
//!
//! Started by `corral serve`, never by hand: executed afresh, or forked by
//! a `zygote` (the same binary started with `--zygote`, which prepares
//! what every worker shares once and forks workers on request). Either
//! way the supervisor's half of the sandbox
//! ([`corral_plugin_api::worker_setup`]) is in force, and the supervisor's
//! end of a socketpair is fd 3. The worker then runs the same sequence
//! every time, each step its own module and error:
//!
//! 1. `channel`: take fd 3;
//! 2. `handshake`: read `Hello`;
//! 3. `sandbox`: Landlock and `seccomp`, before any plugin code runs;
//! 4. `runtime`: load the plugin (its `init` may use host services over
//!    the `link`); a spare first says `Standby` and waits for `Activate`;
//! 5. send `Ready`, then `serve` calls until `Shutdown` or end of stream,
//!    from the supervisor and from the `direct` channels it attaches.
//!
//! Two binaries run this library: `corral-worker` (native and wasm
//! plugins) and `corral-worker-native` ([`main_native`]: native plugins
//! only; nothing it runs refers to wasmtime, so the linker leaves it out
//! and a native worker maps a tenth of the code).
//!
//! Exit codes: 0 after `Shutdown` or when the supervisor is gone (end of
//! stream on fd 3), 2 on a channel or protocol error, 3 when the plugin
//! cannot be loaded or initialized, 4 when the sandbox cannot be applied.
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
mod bpf;
mod channel;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod crash;
mod direct;
mod handshake;
mod host;
mod link;
mod reply;
mod runtime;
#[cfg(target_os = "linux")]
mod sandbox;
#[cfg(target_os = "linux")]
mod seccomp;
mod serve;
#[cfg(target_os = "linux")]
mod zygote;

use runtime::Runtimes;
use std::process::ExitCode;
use tracing::error;

/// Why the worker stopped early.
#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    #[error(transparent)]
    Load(#[from] runtime::LoadError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

impl WorkerError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Channel(_) | Self::Handshake(_) => 2,
            Self::Load(_) => 3,
            #[cfg(target_os = "linux")]
            Self::Sandbox(_) => 4,
        }
    }
}

/// The whole of `corral-worker`'s `main`: native and wasm plugins.
pub fn main() -> ExitCode {
    start(runtime::ALL)
}

/// The whole of `corral-worker-native`'s `main`: native plugins only.
pub fn main_native() -> ExitCode {
    start(runtime::NATIVE)
}

fn start(runtimes: Runtimes) -> ExitCode {
    init_logging();
    #[cfg(target_os = "linux")]
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == zygote::FLAG)
    {
        name_process(c"corral-zygote");
        return zygote::serve(runtimes);
    }
    #[cfg(target_os = "linux")]
    name_process(c"corral-worker");
    ExitCode::from(run_worker(runtimes))
}

/// Runs one worker to its end; its exit code.
fn run_worker(runtimes: Runtimes) -> u8 {
    match run(runtimes) {
        Ok(()) => 0,
        Err(error) => {
            error!("{error}");
            error.exit_code()
        }
    }
}

fn run(runtimes: Runtimes) -> Result<(), WorkerError> {
    let mut channel = channel::Channel::from_inherited_fd()?;
    let Some((hello, stats)) = handshake::receive_hello(&mut channel)? else {
        return Ok(()); // the supervisor went away before saying hello
    };
    let _span = tracing::info_span!("plugin", name = %hello.plugin).entered();
    let link = std::sync::Arc::new(link::Link::new(channel, hello.config.clone()));
    let started = std::time::Instant::now();
    #[cfg(target_os = "linux")]
    let layers = match sandbox::confine(&hello) {
        Ok(layers) => layers,
        Err(error) => {
            handshake::send_failed(&link, &format!("sandbox: {error}"))?;
            return Err(error.into());
        }
    };
    #[cfg(not(target_os = "linux"))]
    let layers = Vec::new();
    let confined = started.elapsed();
    if hello.standby && !handshake::stand_by(&link)? {
        return Ok(()); // the spare was not needed
    }
    if hello.debug {
        wait_for_debugger();
    }
    // The plugin's `init` may already use host services.
    let mut plugin = match link.serving(0, || (runtimes.load)(&hello, &link)) {
        Ok(plugin) => plugin,
        Err(error) => {
            handshake::send_failed(&link, &error.to_string())?;
            return Err(error.into());
        }
    };
    tracing::debug!(
        "sandboxed in {confined:?}, plugin loaded in {:?}",
        started.elapsed() - confined
    );
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let (Some(stats), Some(code)) = (&stats, plugin.code_address()) {
        crash::install(stats, code);
    }
    handshake::send_ready(&link, &hello, layers)?;
    serve::Server::new(&link, plugin.as_mut(), stats, &hello).serve()?;
    Ok(())
}

/// Names the process (`corral-worker`, `corral-zygote`) for `top`, `ps -e`
/// and `pgrep`: the supervisor executes it through `/proc/self/fd/N`,
/// which would leave the fd's number as its name (its command line names
/// the plugin).
#[cfg(target_os = "linux")]
fn name_process(name: &std::ffi::CStr) {
    debug_assert!(name.count_bytes() < 16);
    #[allow(unsafe_code, reason = "prctl(2)")]
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes, which the names given are.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
    }
}

/// Stops this process until a debugger (or `kill -CONT`) continues it:
/// confined already, the plugin not loaded yet, so breakpoints in it can
/// be set before any of its code runs.
fn wait_for_debugger() {
    tracing::warn!(
        "stopped for a debugger: gdb -p {} (then `continue`), or kill -CONT {0}",
        std::process::id()
    );
    #[allow(unsafe_code, reason = "kill(2)")]
    // SAFETY: kill takes a pid and a signal number. SIGSTOP stops the
    // whole process whichever thread gets it.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
    tracing::info!("continued");
}

fn init_logging() {
    // The wasm compiler's own debug output would drown the plugin's.
    const QUIET: &str = "cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime=warn,wasmtime_cranelift=warn,wasmtime_environ=warn";
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = std::env::var("CORRAL_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter: Targets = format!("{level},{QUIET}")
        .parse()
        .unwrap_or_else(|_| format!("info,{QUIET}").parse().expect("a valid filter"));
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time() // the supervisor timestamps what it reads
        .with_target(false)
        .finish()
        .with(filter)
        .init();
}
