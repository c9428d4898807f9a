//! A test kit for host-app and plugin authors: a real `corral serve` on a
//! temporary socket with the plugin folders a test gives it, clients for
//! it, and faults to inject (Linux only):
//!
//! ```toml
//! [dev-dependencies]
//! corral = { version = "0.1", default-features = false }
//! ```
//!
//! ```no_run
//! use corral::testing::Corral;
//! use corral::ErrorKind;
//!
//! let corral = Corral::builder()
//!     .plugin("hello", "plugins/hello".as_ref())   // a plugin folder of yours
//!     .start();
//! corral.wait_ready("hello");
//! let mut client = corral.client();
//! assert_eq!(client.call("hello", "echo", b"hi").unwrap(), b"hi");
//!
//! corral.crash_on_next_call("hello");                 // the next call is in flight when it dies
//! let error = client.call("hello", "echo", b"hi").unwrap_err();
//! assert_eq!(error.kind(), Some(ErrorKind::Crashed));
//! corral.wait_ready("hello");                         // restarted
//!
//! let frozen = corral.freeze("hello");                 // SIGSTOP: a hang
//! drop(frozen);                                       // SIGCONT
//! ```
//!
//! Faults: [`kill_worker`](Corral::kill_worker) (SIGKILL),
//! [`crash_on_next_call`](Corral::crash_on_next_call) (abort with a call
//! in flight), [`freeze`](Corral::freeze) (SIGSTOP, a hang),
//! [`fill_memory`](Corral::fill_memory) (allocate to the memory limit),
//! [`hang_up_during_call`](Corral::hang_up_during_call) (a host app that
//! goes away mid-call). The supervisor runs with `--faults`, which lets
//! its admin clients inject them; a production corral refuses them.
//!
//! Each [`Corral`] lives in its own temporary folder (plugins, socket,
//! state, log). Dropping it kills the supervisor and every worker pid the
//! test saw, even when the test panics, and removes the folder; when a
//! test panics, the supervisor's log is printed. Running the supervisor
//! under a profiler: `CORRAL_SUPERVISOR_WRAPPER="perf record -g --"`.

mod faults;
mod process;

use crate::client::blocking::Client;
use crate::{ExitInfo, PluginInfo, PluginState};
pub use faults::{Frozen, Neighbour};
use nix::sys::signal::{Signal, killpg};
use process::pid_of;
pub use process::{
    cmdline, is_alive, is_worker, send_signal, start_time, stat_field, still_running,
};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long helpers wait for something to happen before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// How to set up a supervisor: plugin folders, settings, flags. Made by
/// [`Corral::builder`].
pub struct CorralBuilder {
    dir: tempfile::TempDir,
    binary: Option<PathBuf>,
    faults: bool,
    args: Vec<String>,
    env: Vec<(String, std::ffi::OsString)>,
    uid: Option<u32>,
    state_dir: Option<PathBuf>,
}

impl CorralBuilder {
    /// The plugins folder every plugin of this builder goes into.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Runs this `corral` binary (default: `CORRAL_BIN`, else a `corral`
    /// in a folder above the running test binary, as in a cargo target
    /// folder, else `corral` from `PATH`); `corral-worker` is found next
    /// to it.
    pub fn binary(mut self, corral: impl Into<PathBuf>) -> Self {
        self.binary = Some(corral.into());
        self
    }

    /// Runs the supervisor without `--faults`, as in production: fault
    /// injection is refused.
    pub fn without_faults(mut self) -> Self {
        self.faults = false;
        self
    }

    /// Installs a copy of the plugin folder `source` (its `plugin.toml`,
    /// its entry and whatever else is in it) as `plugins/NAME`.
    pub fn plugin(self, name: &str, source: &Path) -> Self {
        crate::admin::install::copy_tree(source, &self.plugins_dir().join(name))
            .unwrap_or_else(|e| panic!("install plugin {name}: {e}"));
        self
    }

    /// Writes a plugin folder with the given files (name, contents).
    pub fn folder(self, folder: &str, files: &[(&str, &[u8])]) -> Self {
        let folder = self.plugins_dir().join(folder);
        fs::create_dir_all(&folder).expect("plugin folder");
        for (name, contents) in files {
            fs::write(folder.join(name), contents).expect("write plugin file");
        }
        self
    }

    /// Sets an environment variable for `corral serve`.
    pub fn env(mut self, key: &str, value: impl Into<std::ffi::OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Adds a flag to `corral serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Uses `dir` as the supervisor's state folder (which holds the
    /// compiled-module cache) instead of one in the temporary folder, so
    /// that supervisors started one after another share it. `dir` must be
    /// traversable by the workers' uids.
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self
    }

    /// Runs the supervisor as `uid` (and the same gid) through `setpriv`,
    /// with the temporary folder handed over to that user.
    pub fn as_user(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Starts `corral serve` and waits until its socket accepts clients.
    pub fn start(self) -> Corral {
        self.launch(None)
    }

    /// Like [`start`](Self::start), with `toml` written as `corral.toml`
    /// into the temporary folder and passed as `--config` instead of
    /// `--plugins` and `--socket`: the file names them, relative to that
    /// folder (`plugins = ["plugins"]`, `socket = "corral.sock"`, where the
    /// harness looks for it).
    pub fn start_with_config(self, toml: &str) -> Corral {
        self.launch(Some(toml))
    }

    fn launch(self, config: Option<&str>) -> Corral {
        let binary = self.binary.clone().unwrap_or_else(default_binary);
        let socket = self.dir.path().join("corral.sock");
        let log_path = self.dir.path().join("corral.log");
        fs::create_dir_all(self.plugins_dir()).expect("plugins folder");
        let log = fs::File::create(&log_path).expect("log file");
        let wrapper = std::env::var("CORRAL_SUPERVISOR_WRAPPER")
            .ok()
            .filter(|wrapper| !wrapper.trim().is_empty() && self.uid.is_none());
        let mut command = match self.uid {
            None => match &wrapper {
                // A profiler to run the supervisor under, e.g.
                // `valgrind --tool=callgrind`: split on spaces.
                Some(wrapper) => {
                    let mut words = wrapper.split_whitespace();
                    let mut wrapped = Command::new(words.next().expect("not empty"));
                    // A group of their own: stopping signals both.
                    wrapped.args(words).arg(binary.clone()).process_group(0);
                    wrapped
                }
                None => Command::new(binary.clone()),
            },
            Some(uid) => {
                chown_tree(self.dir.path(), uid);
                let mut setpriv = Command::new("setpriv");
                let id = uid.to_string();
                setpriv.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"]);
                setpriv.arg(binary.clone());
                setpriv
            }
        };
        // Worker uids are per plugin index; concurrent tests would share
        // them (and their RLIMIT_NPROC budget) without a base of their own.
        static SUPERVISORS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let uid_base = 300_000 + SUPERVISORS.fetch_add(1, Ordering::Relaxed) * 32;
        let state_dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("state"),
        };
        command.arg("serve");
        if self.faults {
            command.arg("--faults");
        }
        command
            .arg("--worker-uid-base")
            .arg(uid_base.to_string())
            .arg("--state-dir")
            .arg(state_dir);
        match config {
            None => command
                .arg("--plugins")
                .arg(self.plugins_dir())
                .arg("--socket")
                .arg(&socket),
            Some(toml) => {
                let path = self.dir.path().join("corral.toml");
                fs::write(&path, toml).expect("write corral.toml");
                // The variable would win over the file's socket.
                command
                    .env_remove("CORRAL_SOCKET")
                    .arg("--config")
                    .arg(path)
            }
        };
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("CORRAL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start corral serve");
        let corral = Corral {
            socket,
            binary,
            log_path,
            child,
            wrapped: wrapper.is_some(),
            seen_pids: Mutex::new(BTreeMap::new()),
            dir: self.dir,
        };
        corral.wait_until("the socket accepts clients", || {
            Client::connect(&corral.socket).is_ok()
        });
        corral
    }
}

/// A `corral` command that keeps printing, read line by line
/// ([`Corral::follow`]); killed when dropped.
pub struct Follower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    /// The first line from now on that `matches`; panics after [`WAIT`]
    /// with the lines that did not.
    pub fn find(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let left = WAIT.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no line with {what} within {WAIT:?}; got:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `corral serve` in a temporary folder.
pub struct Corral {
    /// The host socket.
    pub socket: PathBuf,
    /// The `corral` binary it runs.
    binary: PathBuf,
    log_path: PathBuf,
    child: Child,
    /// Run under `CORRAL_SUPERVISOR_WRAPPER`: stopped with SIGTERM so that
    /// the profiler writes its output.
    wrapped: bool,
    /// Worker pids seen in status, with their start times: the pid alone
    /// may name another process by the time the test ends.
    seen_pids: Mutex<BTreeMap<u32, u64>>,
    dir: tempfile::TempDir,
}

impl Corral {
    /// A new setup in a fresh temporary folder.
    pub fn builder() -> CorralBuilder {
        let dir = tempfile::Builder::new()
            .prefix("corral-test-")
            .tempdir()
            .expect("temp dir");
        // Traversable (not listable) by the workers' own uids, which keep
        // their compiled-module cache under it.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711))
                .expect("chmod temp dir");
        }
        CorralBuilder {
            dir,
            binary: None,
            faults: true,
            args: Vec::new(),
            env: Vec::new(),
            uid: None,
            state_dir: None,
        }
    }

    /// The temporary folder (plugins, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new blocking client connection.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    /// Every plugin's status; remembers the worker pids for cleanup.
    pub fn list(&self) -> Vec<PluginInfo> {
        let plugins = self.client().list().expect("list plugins");
        self.remember(
            plugins
                .iter()
                .flat_map(|p| p.pid.into_iter().chain(p.spare_pid)),
        );
        plugins
    }

    /// One plugin's status.
    pub fn plugin(&self, name: &str) -> PluginInfo {
        self.find(name)
            .unwrap_or_else(|| panic!("no plugin {name} in corral ps"))
    }

    /// One plugin's status, if `corral ps` lists it (yet).
    pub fn find(&self, name: &str) -> Option<PluginInfo> {
        self.list().into_iter().find(|p| p.name == name)
    }

    /// Waits until `name` is ready, and returns its status.
    pub fn wait_ready(&self, name: &str) -> PluginInfo {
        self.wait_plugin(name, &format!("{name} is ready"), |plugin| {
            plugin.state == PluginState::Ready
        })
    }

    /// Waits until `name` is ready with a worker other than `old_pid`.
    pub fn wait_replaced(&self, name: &str, old_pid: Option<u32>) -> PluginInfo {
        self.wait_plugin(name, &format!("{name} has a new ready worker"), |plugin| {
            plugin.state == PluginState::Ready && plugin.pid != old_pid
        })
    }

    /// Waits until `name`'s last exit meets `condition` (described by
    /// `what` in the failure message), and returns the plugin's status.
    pub fn wait_last_exit(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&ExitInfo) -> bool,
    ) -> PluginInfo {
        self.wait_plugin(name, &format!("{name}: {what}"), |plugin| {
            plugin.last_exit.as_ref().is_some_and(&condition)
        })
    }

    /// Waits until `name`'s status meets `condition` (`what` in the
    /// failure message), and returns it. A plugin not listed yet (a folder
    /// added while serving, until it is discovered) is waited for too.
    fn wait_plugin(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&PluginInfo) -> bool,
    ) -> PluginInfo {
        let mut met = None;
        self.wait_until(what, || {
            met = self.find(name).filter(|plugin| condition(plugin));
            met.is_some()
        });
        met.expect("wait_until returns once the condition holds")
    }

    /// Polls `condition` every 5 ms until it holds; panics after [`WAIT`]
    /// with the supervisor's log.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting until {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs the `corral` CLI against this supervisor's socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, b"")
    }

    /// Runs the `corral` CLI with `stdin` as its input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("CORRAL_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run corral");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child.wait_with_output().expect("corral output")
    }

    /// Starts a `corral` CLI command that keeps printing (`logs -f`,
    /// `events -f`, `subscribe`) against this supervisor; it is killed
    /// when the [`Follower`] is dropped.
    pub fn follow(&self, args: &[&str]) -> Follower {
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("CORRAL_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run corral");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// The supervisor's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `signal` to the supervisor.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the supervisor to exit (up to [`WAIT`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait corral") {
                return status;
            }
            assert!(
                start.elapsed() < WAIT,
                "corral did not exit\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn remember(&self, pids: impl IntoIterator<Item = u32>) {
        let seen = pids
            .into_iter()
            .filter_map(|pid| Some((pid, start_time(pid)?)));
        self.seen_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(seen);
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        if self.wrapped {
            let group = pid_of(self.child.id());
            let _ = killpg(group, Signal::SIGTERM);
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > 6 * WAIT {
                    // The group still has its leader: it is ours.
                    let _ = killpg(group, Signal::SIGKILL);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Workers die with the supervisor (PDEATHSIG, end of channel); make
        // sure of it for every pid this test saw, if it is still a worker.
        let seen = self.seen_pids.lock().unwrap_or_else(|e| e.into_inner());
        for (&pid, &started) in seen.iter() {
            if still_running(pid, started) && is_worker(pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- corral log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Gives `path` and everything below it to `uid` (and the same gid).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("dir entry").path(), uid);
        }
    }
}

/// The `corral` binary to run: `CORRAL_BIN`, else one in a folder above
/// the running (test) binary, else `corral` from `PATH`.
fn default_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("CORRAL_BIN") {
        return binary.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .map(|dir| dir.join("corral"))
                .find(|binary| binary.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("corral"))
}
