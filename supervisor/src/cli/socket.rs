//! Reaching a serving corral: the `--socket` flag, connecting, and the
//! supervisor's refusals as exit code 1.

use anyhow::{Context, Result, bail};
use clap::Args;
use corral::{ClientError, blocking};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(super) struct SocketArg {
    /// Host socket [default: /run/corral/corral.sock for root,
    /// $XDG_RUNTIME_DIR/corral/corral.sock otherwise]
    #[arg(long, env = "CORRAL_SOCKET", value_name = "PATH")]
    pub(super) socket: Option<PathBuf>,
}

impl SocketArg {
    pub(super) fn path(&self) -> Result<PathBuf> {
        match &self.socket {
            Some(path) => Ok(path.clone()),
            None => corral::default_socket_path()
                .context("no socket path: pass --socket PATH, or set XDG_RUNTIME_DIR"),
        }
    }
}

pub(super) fn connect(socket: &SocketArg) -> Result<blocking::Client> {
    let path = socket.path()?;
    if !path.exists() {
        bail!(
            "no corral is serving on {} (start one with `corral serve`)",
            path.display()
        );
    }
    Ok(blocking::Client::connect(path)?)
}

/// Exit 1 with the supervisor's answer when it refused; 2 for anything
/// else.
pub(super) fn remote_failure(what: &str, error: ClientError) -> Result<ExitCode> {
    match error {
        ClientError::Remote(error) => {
            eprintln!("corral: {what}: {} ({})", error.message, error.kind);
            Ok(ExitCode::from(1))
        }
        error => Err(error.into()),
    }
}
