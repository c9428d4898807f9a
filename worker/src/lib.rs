//! `corral-worker`: one plugin in one process. The binary is built by the
//! `corral` package (`supervisor/src/bin/corral-worker.rs`, so that
//! `cargo install --path supervisor` installs both); this library is all
//! of it.
//!
//! Started by `corral serve`, never by hand. The supervisor's end of a
//! socketpair is inherited as fd 3. The worker runs the same sequence every
//! time, each step its own module and error:
//!
//! 1. `channel`: take fd 3;
//! 2. `handshake`: read `Hello`;
//! 3. `sandbox`: Landlock and `seccomp`, before any plugin code runs;
//! 4. `runtime`: load the plugin (its `init` may use host services over
//!    the `link`); a spare first says `Standby` and waits for `Activate`;
//! 5. send `Ready`, then `serve` calls until `Shutdown` or end of stream,
//!    from the supervisor and from the `direct` channels it attaches.
//!
//! Exit codes: 0 after `Shutdown` or when the supervisor is gone (end of
//! stream on fd 3), 2 on a channel or protocol error, 3 when the plugin
//! cannot be loaded or initialized, 4 when the sandbox cannot be applied.
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
mod bpf;
mod channel;
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

/// Runs the worker: the whole of `corral-worker`'s `main`.
pub fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    name_process();
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run() -> Result<(), WorkerError> {
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
    let mut plugin = match link.serving(0, || runtime::load(&hello, &link)) {
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
    handshake::send_ready(&link, &hello, layers)?;
    serve::Server::new(&link, plugin.as_mut(), stats, &hello).serve()?;
    Ok(())
}

/// Names the process `corral-worker` for `top`, `ps -e` and `pgrep`: the
/// supervisor executes it through `/proc/self/fd/N`, which would leave
/// the fd's number as its name (its command line names the plugin).
#[cfg(target_os = "linux")]
fn name_process() {
    #[allow(unsafe_code, reason = "prctl(2)")]
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes, which this is.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"corral-worker".as_ptr());
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
    #[allow(unsafe_code, reason = "raise(3)")]
    // SAFETY: raise takes a signal number and touches no memory of ours.
    unsafe {
        libc::raise(libc::SIGSTOP);
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
