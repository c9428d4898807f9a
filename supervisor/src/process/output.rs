//! A worker's stdout and stderr: one pipe, read line by line (a line is
//! cut at [`MAX_LINE`] bytes) into the plugin's rotated log file, and into
//! the supervisor's log with a bound (at most [`LINES_PER_SECOND`] lines a
//! second, the rest counted), so a plugin that floods its output costs the
//! supervisor neither memory nor a flooded log. The last [`TAIL_LINES`]
//! lines are kept for the exit record.

use crate::observe::logfile::LogFile;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Lines kept for the exit record.
pub(crate) const TAIL_LINES: usize = 10;
/// Longest line logged; the rest of it is dropped.
pub(crate) const MAX_LINE: usize = 4096;
/// Lines logged per second and worker.
pub(crate) const LINES_PER_SECOND: u32 = 100;

/// Splits a byte stream into bounded lines and keeps the tail.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    current: Vec<u8>,
    cut: bool,
    tail: VecDeque<String>,
}

impl Lines {
    /// Feeds `bytes`; calls `line` for each complete line.
    pub(crate) fn feed(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        for &byte in bytes {
            if byte == b'\n' {
                self.finish_line(&mut line);
            } else if self.current.len() < MAX_LINE {
                self.current.push(byte);
            } else {
                self.cut = true;
            }
        }
    }

    /// Flushes a last line without a newline.
    pub(crate) fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.current.is_empty() {
            self.finish_line(&mut line);
        }
    }

    fn finish_line(&mut self, line: &mut impl FnMut(&str)) {
        let mut text = String::from_utf8_lossy(&self.current).into_owned();
        if std::mem::take(&mut self.cut) {
            text.push_str(" [cut]");
        }
        self.current.clear();
        line(&text);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text);
    }

    pub(crate) fn into_tail(self) -> Vec<String> {
        self.tail.into()
    }
}

/// Logs the worker's output until end of stream, every line into the
/// plugin's log file (when it has one); returns the last lines.
pub(crate) async fn forward(
    output: OwnedFd,
    plugin: Arc<str>,
    pid: u32,
    file: Option<Arc<LogFile>>,
) -> Vec<String> {
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(output) {
        Ok(pipe) => pipe,
        Err(error) => {
            warn!(plugin = %plugin, pid, "cannot read the worker's output: {error}");
            return Vec::new();
        }
    };
    let mut lines = Lines::default();
    let mut budget = Budget::new(plugin.clone(), pid);
    let line = |budget: &mut Budget, text: &str| {
        if let Some(file) = &file {
            file.append(pid, text);
        }
        budget.log(text);
    };
    loop {
        // With lines dropped, wake up at least once a second to say so.
        let ready = if budget.dropped > 0 {
            tokio::time::timeout(Duration::from_secs(1), pipe.readable()).await
        } else {
            Ok(pipe.readable().await)
        };
        match ready {
            Err(_) => {
                budget.roll();
                continue;
            }
            Ok(Err(_)) => break,
            Ok(Ok(())) => {}
        }
        // Read into this thread's buffer, not one per worker: a
        // supervisor has thousands of quiet workers.
        let read = SCRATCH.with_borrow_mut(|buf| match pipe.try_read(buf) {
            Ok(0) => Err(()),
            Ok(n) => {
                lines.feed(&buf[..n], |text| line(&mut budget, text));
                if let Some(file) = &file {
                    file.close();
                }
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(_) => Err(()),
        });
        if read.is_err() {
            break;
        }
    }
    lines.finish(|text| line(&mut budget, text));
    budget.report();
    lines.into_tail()
}

thread_local! {
    /// Where output is read into, shared by the workers' output tasks of a
    /// thread (none holds it across an await).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// At most [`LINES_PER_SECOND`] lines logged a second; the rest counted
/// and reported.
struct Budget {
    plugin: Arc<str>,
    pid: u32,
    window: Instant,
    logged: u32,
    dropped: u64,
}

impl Budget {
    fn new(plugin: Arc<str>, pid: u32) -> Self {
        Self {
            plugin,
            pid,
            window: Instant::now(),
            logged: 0,
            dropped: 0,
        }
    }

    fn log(&mut self, line: &str) {
        self.roll();
        if self.logged < LINES_PER_SECOND {
            self.logged += 1;
            info!(target: "worker", plugin = %self.plugin, pid = self.pid, "{line}");
        } else {
            self.dropped += 1;
        }
    }

    /// Starts a new second when the current one is over.
    fn roll(&mut self) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.report();
            self.window = Instant::now();
            self.logged = 0;
        }
    }

    fn report(&mut self) {
        if self.dropped > 0 {
            warn!(
                plugin = %self.plugin,
                pid = self.pid,
                "dropped {} lines of worker output (over {LINES_PER_SECOND}/s)",
                self.dropped
            );
            self.dropped = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_cut_and_tailed() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        lines.feed(b"one\ntw", |l| seen.push(l.to_owned()));
        lines.feed(b"o\n", |l| seen.push(l.to_owned()));
        let long = vec![b'x'; MAX_LINE + 10];
        lines.feed(&long, |l| seen.push(l.to_owned()));
        lines.feed(b"\nlast", |l| seen.push(l.to_owned()));
        lines.finish(|l| seen.push(l.to_owned()));
        assert_eq!(seen[..2], ["one", "two"]);
        assert_eq!(seen[2].len(), MAX_LINE + " [cut]".len());
        assert_eq!(seen[3], "last");
        for i in 0..20 {
            lines.feed(format!("line {i}\n").as_bytes(), |_| {});
        }
        let tail = lines.into_tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("line 19"));
    }
}
