//! `tokio-relay`: a plugin that runs its own tokio runtime (current
//! thread, I/O and time drivers) inside its calls, to show that a real
//! async runtime works under corral's default seccomp policy: its epoll,
//! eventfd, pipe and timers are all in the baseline.
//!
//! | method  | input               | reply                                        |
//! |---------|---------------------|----------------------------------------------|
//! | `relay` | any bytes           | the same bytes, written into a pipe by one task after a 5 ms timer and read back by another |
//! | `ticks` | a count, as text    | `N ticks in M ms` of a 1 ms interval          |

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The plugin: its runtime, made at init and kept for every call.
#[derive(Default)]
pub struct Relay {
    runtime: Option<Runtime>,
}

impl Plugin for Relay {
    fn init(&mut self, _host: &Host) -> Result<(), PluginError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| PluginError::new(format!("cannot start tokio: {error}")))?;
        self.runtime = Some(runtime);
        Ok(())
    }

    fn call(&mut self, _host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| PluginError::new("not initialized"))?;
        match method {
            "relay" => runtime.block_on(relay(input.to_vec())).map_err(io),
            "ticks" => {
                let count: u32 = std::str::from_utf8(input)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .ok_or_else(|| PluginError::new("ticks: expected a count as text"))?;
                Ok(runtime.block_on(ticks(count)).into_bytes())
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

/// Writes `bytes` into a pipe from one task after a timer; reads them
/// back on another.
async fn relay(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let (mut sender, mut receiver) = tokio::net::unix::pipe::pipe()?;
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        sender.write_all(&bytes).await
        // dropping the sender ends the reader's stream
    });
    let reader = tokio::spawn(async move {
        let mut read = Vec::new();
        receiver.read_to_end(&mut read).await.map(|_| read)
    });
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, writer)
        .await
        .map_err(|_| std::io::Error::other("the writer timed out"))?
        .map_err(std::io::Error::other)??;
    tokio::time::timeout(deadline, reader)
        .await
        .map_err(|_| std::io::Error::other("the reader timed out"))?
        .map_err(std::io::Error::other)?
}

async fn ticks(count: u32) -> String {
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..count {
        interval.tick().await;
    }
    format!("{count} ticks in {} ms", started.elapsed().as_millis())
}

fn io(error: std::io::Error) -> PluginError {
    PluginError::new(error.to_string())
}

export_plugin!(Relay);
