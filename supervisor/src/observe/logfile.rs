//! A plugin's captured output on disk: `DIR/NAME.log`, rotated by size to
//! `NAME.log.1` … `NAME.log.KEEP`, one timestamped line per output line,
//! readable from a point in time and followable live.
//!
//! It neither splits nor bounds lines (the output reader does) and never
//! fails its caller: a plugin's output is worth keeping, not worth stopping
//! a worker for.
//!
//! Longer than most modules because its tests are half of it: rotation
//! under a follower, reading across rotated files and lines cut mid-write
//! are easy to get subtly wrong, and they are tested here, beside the code.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use tracing::warn;

use crate::observe::clock::{now_ms, parse_utc, utc};

/// Most rotated files kept whatever is configured: rotating and reading try
/// every kept file name.
const MAX_KEEP: u32 = 1000;
/// Lines a follower may fall behind before it gets `RecvError::Lagged`.
const FOLLOW_BACKLOG: usize = 1024;
/// Longest line [`LogFile::read_to`] passes on; the rest of a longer one is
/// skipped. Only a hand-edited file has such lines: the supervisor writes at
/// most 4 KiB of output per line.
const MAX_READ_LINE: usize = 64 * 1024;
/// Length of the time that starts each line (`clock::utc`).
const TIME_LEN: usize = "1970-01-01T00:00:00.000Z".len();

/// One plugin's log files: `DIR/NAME.log` is appended to; when a line would
/// take it past `max_bytes`, it becomes `NAME.log.1` first (`NAME.log.1`
/// becomes `.2` and so on, `NAME.log.KEEP` is dropped) and a new `NAME.log`
/// is started. With `keep` = 0 the full file is simply replaced.
///
/// A line is `2026-11-25T14:24:30.123Z pid=1234 TEXT`. A line longer than
/// `max_bytes` is still written, alone in a new file, which then exceeds
/// `max_bytes` by that line. Appends from several threads are serialized;
/// the files' total size stays within about `(keep + 1) × max_bytes`.
#[derive(Debug)]
pub(crate) struct LogFile {
    dir: PathBuf,
    /// `NAME.log`; rotated files add `.N`.
    name: String,
    max_bytes: u64,
    keep: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `NAME.log`, or `None` after a failure until it is opened again.
    file: Option<File>,
    /// Bytes in `NAME.log`.
    size: u64,
    /// Rotations since open: the file that was `NAME.log` at a [`Mark`] is
    /// `NAME.log.{rotations - mark.rotations}` now.
    rotations: u64,
    /// Whether the last append failed; only the first failure in a row is
    /// logged.
    failing: bool,
    /// Lines lost since appending started failing.
    lost: u64,
    /// The followers' channel, while there are any: its backlog is
    /// allocated whole, and most plugins are never followed.
    lines: Option<broadcast::Sender<Arc<str>>>,
}

/// Where a [`LogFile`]'s files ended at some moment: [`LogFile::read_to`]
/// reads up to here, even after later rotations. Meaningful only for the
/// `LogFile` that made it.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    rotations: u64,
    /// Bytes of the then-current `NAME.log`.
    offset: u64,
}

impl LogFile {
    /// Opens (creating DIR, mode 0700, and the file, mode 0600) DIR/NAME.log
    /// for appending. An existing file is appended to and its size counts
    /// toward `max_bytes`. More than 1000 kept files count as 1000.
    pub(crate) fn open(dir: &Path, name: &str, max_bytes: u64, keep: u32) -> io::Result<Self> {
        if name.is_empty() || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?}: not usable as a log file name: expected a plugin name"),
            ));
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| {
                let what = format!("{}: cannot create the log directory", dir.display());
                if error.kind() == io::ErrorKind::AlreadyExists {
                    io::Error::new(
                        error.kind(),
                        format!("{what}: it exists and is not a directory"),
                    )
                } else {
                    with_context(&error, &what)
                }
            })?;
        let mut log = Self {
            dir: dir.to_owned(),
            name: format!("{name}.log"),
            max_bytes,
            keep: keep.min(MAX_KEEP),
            state: Mutex::new(State {
                file: None,
                size: 0,
                rotations: 0,
                failing: false,
                lost: 0,
                lines: None,
            }),
        };
        // Opened to check it can be (and to learn its size), then closed
        // until lines come: see [`Self::close`].
        let (_file, size) = log.open_current()?;
        log.state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .size = size;
        Ok(log)
    }

    /// Appends one line (`text` without a newline) for worker `pid`,
    /// rotating first when needed. Never panics and never returns an error:
    /// the first failure in a row is logged (naming the file) and the line
    /// dropped; later ones are only counted, and the count is logged when
    /// appending works again (or the `LogFile` is dropped). Followers get
    /// the line even when the disk did not.
    pub(crate) fn append(&self, pid: u32, text: &str) {
        self.append_with(now_ms, pid, text);
    }

    /// [`Self::append`] at a chosen time.
    #[cfg(test)]
    fn append_at(&self, unix_ms: u64, pid: u32, text: &str) {
        self.append_with(|| unix_ms, pid, text);
    }

    fn append_with(&self, now: impl FnOnce() -> u64, pid: u32, text: &str) {
        let mut state = self.lock();
        // Read the clock under the lock, so that times never go backwards
        // within the files (unless the wall clock does).
        let line = format!("{} pid={pid} {text}\n", utc(now()));
        match self.write(&mut state, line.as_bytes()) {
            Ok(()) => {
                if std::mem::take(&mut state.failing) {
                    let lost = std::mem::take(&mut state.lost);
                    warn!(
                        "plugin log {}: appending works again; {lost} lines were lost",
                        self.path(0).display()
                    );
                }
            }
            Err(error) => {
                state.lost += 1;
                if !std::mem::replace(&mut state.failing, true) {
                    // The error names the file that failed.
                    warn!(
                        "plugin log: {error}; dropping (and counting) lines until appending \
                         works again"
                    );
                }
            }
        }
        if let Some(lines) = &state.lines {
            let line = line.strip_suffix('\n').unwrap_or(&line);
            if lines.send(Arc::from(line)).is_err() {
                state.lines = None; // every follower is gone
            }
        }
    }

    /// Closes the file until the next append: a supervisor with thousands
    /// of plugins keeps no fd open for the quiet ones. The output task calls
    /// it when it has written what it read.
    pub(crate) fn close(&self) {
        self.lock().file = None;
    }

    /// Subscribes to lines appended from now on (without their newline) and
    /// returns where the files end now: reading [`Self::read_to`] this mark
    /// and then the receiver gives every line once.
    pub(crate) fn follow(&self) -> (broadcast::Receiver<Arc<str>>, Mark) {
        let mut state = self.lock();
        let lines = state
            .lines
            .get_or_insert_with(|| broadcast::channel(FOLLOW_BACKLOG).0)
            .subscribe();
        (lines, mark(&state))
    }

    /// Where the files end now, for reading without following.
    pub(crate) fn mark(&self) -> Mark {
        mark(&self.lock())
    }

    /// Calls `each` with every kept line written at or after `since_unix_ms`
    /// (0: all), oldest first, up to `mark`; lines appended after the mark
    /// are not read, even if the files were rotated since. Lines that do not
    /// start with a time (edited by hand) are passed on whatever
    /// `since_unix_ms`; lines longer than 64 KiB are cut, and invalid UTF-8
    /// is replaced. Blocking I/O with bounded memory.
    pub(crate) fn read_to(
        &self,
        mark: &Mark,
        since_unix_ms: u64,
        mut each: impl FnMut(&str),
    ) -> io::Result<()> {
        let mut line = Vec::new();
        // `back`: rotations between a file being `NAME.log` and the mark.
        for back in (0..=u64::from(self.keep)).rev() {
            let Some((file, path)) = self.open_kept(mark, back)? else {
                continue;
            };
            let limit = if back == 0 { mark.offset } else { u64::MAX };
            let mut reader = BufReader::new(file.take(limit));
            while read_line(&mut reader, &mut line).map_err(|error| {
                with_context(&error, &format!("{}: cannot read", path.display()))
            })? {
                let text = String::from_utf8_lossy(&line);
                if written_since(&text, since_unix_ms) {
                    each(&text);
                }
            }
        }
        Ok(())
    }

    /// Opens the file that was `NAME.log` `back` rotations before `mark`,
    /// if it is still kept. The name is worked out under the lock, so a
    /// concurrent rotation cannot make it the wrong file.
    fn open_kept(&self, mark: &Mark, back: u64) -> io::Result<Option<(File, PathBuf)>> {
        let state = self.lock();
        let index = state
            .rotations
            .saturating_sub(mark.rotations)
            .saturating_add(back);
        if index > u64::from(self.keep) {
            return Ok(None);
        }
        let path = self.path(index);
        match File::open(&path) {
            Ok(file) => Ok(Some((file, path))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(with_context(
                &error,
                &format!("{}: cannot open", path.display()),
            )),
        }
    }

    /// Writes one whole line, rotating first if it would not fit. On failure
    /// the line is dropped; after a failed write the file is opened again
    /// (and its size read again) on the next append.
    fn write(&self, state: &mut State, line: &[u8]) -> io::Result<()> {
        let mut file = if let Some(file) = state.file.take() {
            file
        } else {
            let (file, size) = self.open_current()?;
            state.size = size;
            file
        };
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        // An empty file takes any line, so a long line cannot rotate forever.
        if state.size > 0 && state.size.saturating_add(len) > self.max_bytes {
            if let Err(error) = self.rotate(state) {
                // Still `NAME.log`: the next append tries rotating again.
                state.file = Some(file);
                return Err(error);
            }
            drop(file);
            let (new, size) = self.open_current()?;
            file = new;
            state.size = size;
        }
        file.write_all(line).map_err(|error| {
            with_context(&error, &format!("{}: cannot write", self.path(0).display()))
        })?;
        state.size = state.size.saturating_add(len);
        state.file = Some(file);
        Ok(())
    }

    /// Shifts the rotated files up by one and `NAME.log` to `NAME.log.1`
    /// (or removes it if none are kept). Missing files are skipped; on any
    /// other failure the remaining files stay where they are.
    fn rotate(&self, state: &mut State) -> io::Result<()> {
        for index in (1..u64::from(self.keep)).rev() {
            rename_if_present(&self.path(index), &self.path(index + 1))?;
        }
        if self.keep == 0 {
            // Removed rather than truncated: a reader holding it open keeps
            // reading what it had.
            let path = self.path(0);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(with_context(
                        &error,
                        &format!("{}: cannot remove", path.display()),
                    ));
                }
            }
        } else {
            rename_if_present(&self.path(0), &self.path(1))?;
        }
        state.rotations += 1;
        state.size = 0;
        Ok(())
    }

    /// Opens (creating) `NAME.log` for appending; returns it and its size.
    fn open_current(&self) -> io::Result<(File, u64)> {
        let path = self.path(0);
        let context = |error: io::Error| {
            with_context(
                &error,
                &format!("{}: cannot open for appending", path.display()),
            )
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(context)?;
        let size = file.metadata().map_err(context)?.len();
        Ok((file, size))
    }

    /// `NAME.log` (0) or `NAME.log.{index}`.
    fn path(&self, index: u64) -> PathBuf {
        if index == 0 {
            self.dir.join(&self.name)
        } else {
            self.dir.join(format!("{}.{index}", self.name))
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the state is
        // still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let path = self.path(0);
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.failing && state.lost > 1 {
            warn!(
                "plugin log {}: {} lines were lost in all",
                path.display(),
                state.lost
            );
        }
    }
}

fn mark(state: &State) -> Mark {
    Mark {
        rotations: state.rotations,
        offset: state.size,
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(with_context(
            &error,
            &format!("cannot rename {} to {}", from.display(), to.display()),
        )),
    }
}

/// Whether a line was written at or after `since_unix_ms`; lines without a
/// time count as matching.
fn written_since(line: &str, since_unix_ms: u64) -> bool {
    since_unix_ms == 0
        || line
            .get(..TIME_LEN)
            .and_then(parse_utc)
            .is_none_or(|time| time >= since_unix_ms)
}

/// Reads the next line without its newline into `line`, keeping at most
/// [`MAX_READ_LINE`] bytes of it; returns false at the end.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let newline = buf.iter().position(|&byte| byte == b'\n');
        let end = newline.unwrap_or(buf.len());
        let room = MAX_READ_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..end.min(room)]);
        reader.consume(newline.map_or(end, |at| at + 1));
        if newline.is_some() {
            return Ok(true);
        }
    }
}

fn with_context(error: &io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::sync::broadcast::error::TryRecvError;

    /// 2026-11-25T12:00:00.000Z
    const NOON: u64 = 1_795_608_000_000;

    fn all_lines(log: &LogFile, mark: &Mark, since: u64) -> Vec<String> {
        let mut lines = Vec::new();
        log.read_to(mark, since, |line| lines.push(line.to_owned()))
            .expect("read the log");
        lines
    }

    /// The TEXT part of `TIME pid=PID TEXT`.
    fn text(line: &str) -> &str {
        let rest = &line[TIME_LEN + 1..];
        let (pid, text) = rest.split_once(' ').expect("pid and text");
        assert!(pid.starts_with("pid="), "{line:?}");
        text
    }

    fn texts(lines: &[String]) -> Vec<&str> {
        lines.iter().map(|line| text(line)).collect()
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list the dir")
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8 name")
            })
            .collect();
        names.sort();
        names
    }

    fn numbered(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|i| format!("line-{i:03}")).collect()
    }

    #[test]
    fn log_file_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LogFile>();
        send_sync::<Mark>();
    }

    #[test]
    fn appended_lines_carry_time_and_pid_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 10 << 20, 5).expect("open");
        let before = now_ms();
        log.append(1234, "first");
        log.append(1235, "second line, with spaces");
        log.append(1234, "");
        let after = now_ms();

        let on_disk = fs::read_to_string(dir.path().join("hello.log")).expect("read");
        let lines: Vec<&str> = on_disk.lines().collect();
        assert_eq!(lines.len(), 3, "{on_disk:?}");
        assert!(on_disk.ends_with('\n'));
        for (line, (pid, expected)) in lines.iter().zip([
            (1234, "first"),
            (1235, "second line, with spaces"),
            (1234, ""),
        ]) {
            let time = parse_utc(&line[..TIME_LEN]).expect("a parseable time");
            assert!((before..=after).contains(&time), "{line:?}");
            assert_eq!(&line[TIME_LEN..], format!(" pid={pid} {expected}"));
        }
        assert_eq!(all_lines(&log, &log.mark(), 0), lines);
    }

    #[test]
    fn created_dir_and_file_are_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("state/logs");
        let log = LogFile::open(&logs, "hello", 100, 2).expect("open");
        let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&logs.join("hello.log")), 0o600);
        for i in 0..10 {
            log.append(1, &format!("line {i} long enough to rotate"));
        }
        assert_eq!(mode(&logs.join("hello.log")), 0o600);
        assert_eq!(mode(&logs.join("hello.log.1")), 0o600);
    }

    #[test]
    fn rotation_keeps_the_newest_lines_within_max_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 3).expect("open");
        for line in numbered(0, 40) {
            log.append_at(NOON, 42, &line);
        }
        // Lines are 41 bytes, so 4 fit in 200: 10 files' worth, 4 kept.
        assert_eq!(format!("{} pid=42 line-000\n", utc(NOON)).len(), 41);
        assert_eq!(
            file_names(dir.path()),
            ["hello.log", "hello.log.1", "hello.log.2", "hello.log.3"]
        );
        let mut concatenated = String::new();
        for name in ["hello.log.3", "hello.log.2", "hello.log.1", "hello.log"] {
            let content = fs::read_to_string(dir.path().join(name)).expect("read");
            assert!(content.len() <= 200, "{name} has {} bytes", content.len());
            concatenated.push_str(&content);
        }
        let read = all_lines(&log, &log.mark(), 0);
        assert_eq!(texts(&read), numbered(24, 40));
        assert_eq!(read, concatenated.lines().collect::<Vec<_>>());
    }

    #[test]
    fn since_filter_skips_older_lines_and_keeps_untimed_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(
            dir.path().join("hello.log"),
            "a note added by hand\n2026-13-01T00:00:00.000Z pid=1 no such month\n",
        )
        .expect("write");
        let log = LogFile::open(dir.path(), "hello", 200, 10).expect("open");
        for (i, line) in numbered(0, 10).iter().enumerate() {
            log.append_at(NOON + 1000 * i as u64, 7, line);
        }
        assert!(
            dir.path().join("hello.log.2").exists(),
            "spans several files"
        );
        let mark = log.mark();
        let untimed = [
            "a note added by hand",
            "2026-13-01T00:00:00.000Z pid=1 no such month",
        ];

        let read = all_lines(&log, &mark, NOON + 5000);
        assert_eq!(read[..2], untimed);
        assert_eq!(texts(&read[2..]), numbered(5, 10));

        let read = all_lines(&log, &mark, NOON + 4999);
        assert_eq!(texts(&read[2..]), numbered(5, 10));

        let read = all_lines(&log, &mark, 0);
        assert_eq!(read[..2], untimed);
        assert_eq!(texts(&read[2..]), numbered(0, 10));

        assert_eq!(all_lines(&log, &mark, u64::MAX), untimed);
    }

    #[test]
    fn follow_splits_lines_exactly_once_across_rotations() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 3).expect("open");
        let before: Vec<String> = (0..3).map(|i| format!("before-{i}")).collect();
        let after: Vec<String> = (0..8).map(|i| format!("after-{i}")).collect();
        for line in &before {
            log.append(1, line);
        }
        let (mut receiver, mark) = log.follow();
        for line in &after {
            log.append(2, line);
        }
        assert!(
            log.lock().rotations >= mark.rotations + 2,
            "the test should rotate twice after the mark"
        );

        assert_eq!(texts(&all_lines(&log, &mark, 0)), before);
        let mut followed = Vec::new();
        loop {
            match receiver.try_recv() {
                Ok(line) => followed.push(line.to_string()),
                Err(TryRecvError::Empty) => break,
                Err(error) => panic!("receiving: {error}"),
            }
        }
        assert_eq!(texts(&followed), after);
        // The receiver gets the lines as they are on disk.
        let now = all_lines(&log, &log.mark(), 0);
        assert_eq!(now[now.len() - followed.len()..], followed);
    }

    #[test]
    fn a_mark_rotated_out_reads_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 1).expect("open");
        for line in numbered(0, 3) {
            log.append(1, &line);
        }
        let mark = log.mark();
        for line in numbered(3, 20) {
            log.append(1, &line);
        }
        assert!(log.lock().rotations > mark.rotations + 1);
        assert_eq!(all_lines(&log, &mark, 0), Vec::<String>::new());
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 3).expect("open");
        for line in numbered(0, 3) {
            log.append_at(NOON, 42, &line);
        }
        drop(log);
        let log = LogFile::open(dir.path(), "hello", 200, 3).expect("reopen");
        for line in numbered(3, 6) {
            log.append_at(NOON, 42, &line);
        }
        // 41-byte lines: 4 fit, so the fifth rotated.
        let current = fs::read_to_string(dir.path().join("hello.log")).expect("read");
        assert_eq!(current.lines().count(), 2, "{current:?}");
        assert_eq!(texts(&all_lines(&log, &log.mark(), 0)), numbered(0, 6));
    }

    #[test]
    fn a_line_longer_than_max_bytes_is_written_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 3).expect("open");
        let huge = "x".repeat(300);
        log.append(1, &huge);
        assert_eq!(
            file_names(dir.path()),
            ["hello.log"],
            "nothing to rotate yet"
        );
        log.append(1, "a");
        log.append(1, &huge);
        log.append(1, "b");
        assert_eq!(
            file_names(dir.path()),
            ["hello.log", "hello.log.1", "hello.log.2", "hello.log.3"]
        );
        let size = |name: &str| fs::metadata(dir.path().join(name)).expect("stat").len();
        assert!(size("hello.log.1") > 300);
        assert!(size("hello.log") < 200);
        assert_eq!(
            texts(&all_lines(&log, &log.mark(), 0)),
            [huge.as_str(), "a", huge.as_str(), "b"]
        );
    }

    #[test]
    fn keeping_nothing_replaces_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 200, 0).expect("open");
        for line in numbered(0, 3) {
            log.append_at(NOON, 42, &line);
        }
        let (mut receiver, mark) = log.follow();
        for line in numbered(3, 10) {
            log.append_at(NOON, 42, &line);
        }
        assert_eq!(file_names(dir.path()), ["hello.log"]);
        assert_eq!(texts(&all_lines(&log, &log.mark(), 0)), numbered(8, 10));
        assert_eq!(all_lines(&log, &mark, 0), Vec::<String>::new());
        assert_eq!(text(&receiver.try_recv().expect("a line")), "line-003");
    }

    #[test]
    fn open_fails_clearly_without_a_usable_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("logs");
        fs::write(&file, "not a directory").expect("write");

        let error = LogFile::open(&file, "hello", 200, 3).expect_err("a file as the dir");
        let message = error.to_string();
        assert!(message.contains(&*file.to_string_lossy()), "{message}");
        assert!(message.contains("not a directory"), "{message}");

        let below = file.join("sub");
        let error = LogFile::open(&below, "hello", 200, 3).expect_err("a dir below a file");
        let message = error.to_string();
        assert!(message.contains(&*below.to_string_lossy()), "{message}");

        let error = LogFile::open(dir.path(), "../hello", 200, 3).expect_err("a bad name");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn appending_after_the_dir_is_removed_counts_and_recovers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let log = LogFile::open(&logs, "hello", 200, 3).expect("open");
        log.append(1, "kept");
        fs::remove_dir_all(&logs).expect("remove");
        for line in numbered(0, 20) {
            log.append(1, &line);
        }
        {
            let state = log.lock();
            assert!(state.failing);
            assert!(state.lost > 10, "lost {}", state.lost);
        }
        assert_eq!(all_lines(&log, &log.mark(), 0), Vec::<String>::new());

        fs::create_dir(&logs).expect("create");
        log.append(1, "back");
        {
            let state = log.lock();
            assert!(!state.failing);
            assert_eq!(state.lost, 0);
        }
        assert_eq!(texts(&all_lines(&log, &log.mark(), 0)), ["back"]);
    }

    #[test]
    fn concurrent_appends_stay_whole_lines_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(dir.path(), "hello", 4096, 100).expect("open");
        std::thread::scope(|scope| {
            for pid in 1..=4 {
                let log = &log;
                scope.spawn(move || {
                    for i in 0..200 {
                        log.append(pid, &format!("{pid}-{i}"));
                    }
                });
            }
        });
        let lines = all_lines(&log, &log.mark(), 0);
        assert_eq!(lines.len(), 800);
        let mut next = [0; 5];
        let mut last_time = 0;
        for line in &lines {
            let time = parse_utc(&line[..TIME_LEN]).expect("time");
            assert!(time >= last_time, "{line:?}");
            last_time = time;
            let (pid, i) = text(line).split_once('-').expect("pid-i");
            let pid: usize = pid.parse().expect("pid");
            assert!(line.contains(&format!(" pid={pid} ")), "{line:?}");
            assert_eq!(i, next[pid].to_string(), "{line:?}");
            next[pid] += 1;
        }
    }

    #[test]
    fn reading_bounds_long_lines_and_replaces_bad_utf8() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut edited = vec![b'x'; 100 * 1024];
        edited.extend_from_slice(b"\nbad \xff\xfe bytes\nno newline at the end");
        fs::write(dir.path().join("hello.log"), edited).expect("write");
        let log = LogFile::open(dir.path(), "hello", 10 << 20, 1).expect("open");
        let lines = all_lines(&log, &log.mark(), 0);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "x".repeat(MAX_READ_LINE));
        assert_eq!(lines[1], "bad \u{fffd}\u{fffd} bytes");
        assert_eq!(lines[2], "no newline at the end");
    }

    #[test]
    fn read_line_splits_and_cuts() {
        let input = b"one\n\ntwo\nthree";
        let mut reader = BufReader::with_capacity(2, &input[..]);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut reader, &mut line).expect("read") {
            lines.push(String::from_utf8(line.clone()).expect("utf-8"));
        }
        assert_eq!(lines, ["one", "", "two", "three"]);
    }
}
