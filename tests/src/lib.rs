//! Test harness for corral's end-to-end tests and benchmarks: real
//! `corral` and `corral-worker` binaries, real plugins, real sockets.
//!
//! Every [`Corral`] lives in its own temporary folder (plugins, socket,
//! log). Dropping it kills the supervisor and every worker pid the test
//! saw, even when the test panics, and removes the folder.
//!
//! The binaries and plugin libraries are found in the cargo target folder
//! the test binary runs from; build them first with
//! `cargo build --workspace` (the README's test command does).

pub mod bench;

use corral::blocking::Client;
use corral::{ExitInfo, PluginInfo, PluginState};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long helpers wait for something to happen before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// The workspace's cargo target folder (`target`), above
/// [`target_dir`].
pub fn cargo_target_dir() -> PathBuf {
    target_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .to_owned()
}

/// The cargo profile folder (`target/debug`, `target/release`) this test
/// binary was built into.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash>: the binaries are in target/<profile>
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("corral").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no corral binary above {}: run `cargo build --workspace` first",
                exe.display()
            )
        })
        .to_owned()
}

/// A built binary or library in the target folder; panics with the build
/// command when it is missing.
pub fn artifact(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// The `corral` binary.
pub fn corral_bin() -> PathBuf {
    artifact("corral")
}

/// Where `example-plugins/build-wasm.sh` leaves `{module}.wasm`
/// (`target/wasm-plugins/`); it may not exist.
pub fn wasm_module(module: &str) -> PathBuf {
    cargo_target_dir()
        .join("wasm-plugins")
        .join(format!("{module}.wasm"))
}

/// Builds a supervisor setup: plugin folders, flags.
pub struct CorralBuilder {
    dir: tempfile::TempDir,
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

    /// Installs a plugin built in this workspace (`lib{crate_name}.so`)
    /// under the plugin name `name`.
    pub fn native(self, name: &str, crate_name: &str) -> Self {
        self.native_with(name, crate_name, "")
    }

    /// Like [`native`](Self::native), with `extra` appended to the
    /// manifest (`[permissions]`, `[limits]` tables).
    pub fn native_with(self, name: &str, crate_name: &str, extra: &str) -> Self {
        let folder = self.plugins_dir().join(name);
        fs::create_dir_all(&folder).expect("plugin folder");
        let lib = format!("lib{}.so", crate_name.replace('-', "_"));
        fs::copy(artifact(&lib), folder.join(&lib)).expect("copy plugin library");
        let manifest = format!(
            "[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"{lib}\"\napi = 1\n\n{extra}"
        );
        fs::write(folder.join("plugin.toml"), manifest).expect("write plugin.toml");
        self
    }

    /// Installs a wasm module built by `example-plugins/build-wasm.sh`
    /// (`target/wasm-plugins/{module}.wasm`) as plugin `name`, with
    /// `extra` appended to the manifest.
    pub fn wasm_with(self, name: &str, module: &str, extra: &str) -> Self {
        let built = wasm_module(module);
        assert!(
            built.is_file(),
            "{} is missing: run example-plugins/build-wasm.sh first (tests/run.sh does)",
            built.display()
        );
        let folder = self.plugins_dir().join(name);
        fs::create_dir_all(&folder).expect("plugin folder");
        fs::copy(&built, folder.join(format!("{module}.wasm"))).expect("copy wasm module");
        let manifest = format!(
            "[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"wasm\"\nentry = \"{module}.wasm\"\napi = 1\n\n{extra}"
        );
        fs::write(folder.join("plugin.toml"), manifest).expect("write plugin.toml");
        self
    }

    /// Installs the `hello` example plugin as `name`.
    pub fn hello(self, name: &str) -> Self {
        self.native(name, "hello")
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
                    wrapped.args(words).arg(corral_bin()).process_group(0);
                    wrapped
                }
                None => Command::new(corral_bin()),
            },
            Some(uid) => {
                chown_tree(self.dir.path(), uid);
                let mut setpriv = Command::new("setpriv");
                let id = uid.to_string();
                setpriv.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"]);
                setpriv.arg(corral_bin());
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
        command
            .arg("serve")
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
            log_path,
            child,
            wrapped: wrapper.is_some(),
            seen_pids: Mutex::new(BTreeSet::new()),
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
    log_path: PathBuf,
    child: Child,
    /// Run under `CORRAL_SUPERVISOR_WRAPPER`: stopped with SIGTERM so that
    /// the profiler writes its output.
    wrapped: bool,
    seen_pids: Mutex<BTreeSet<u32>>,
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
        self.list()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no plugin {name} in corral ps"))
    }

    /// Waits until `name` is ready, and returns its status.
    pub fn wait_ready(&self, name: &str) -> PluginInfo {
        let mut info = None;
        self.wait_until(&format!("{name} is ready"), || {
            let plugin = self.plugin(name);
            let ready = plugin.state == PluginState::Ready;
            info = Some(plugin);
            ready
        });
        info.expect("checked at least once")
    }

    /// Waits until `name` is ready with a worker other than `old_pid`.
    pub fn wait_replaced(&self, name: &str, old_pid: Option<u32>) -> PluginInfo {
        let mut info = None;
        self.wait_until(&format!("{name} has a new ready worker"), || {
            let plugin = self.plugin(name);
            let replaced = plugin.state == PluginState::Ready && plugin.pid != old_pid;
            info = Some(plugin);
            replaced
        });
        info.expect("checked at least once")
    }

    /// Waits until `name`'s last exit meets `condition` (described by
    /// `what` in the failure message), and returns the plugin's status.
    pub fn wait_last_exit(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&ExitInfo) -> bool,
    ) -> PluginInfo {
        let mut info = None;
        self.wait_until(&format!("{name}: {what}"), || {
            let plugin = self.plugin(name);
            let met = plugin.last_exit.as_ref().is_some_and(&condition);
            info = Some(plugin);
            met
        });
        info.expect("checked at least once")
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
        let mut child = Command::new(corral_bin())
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
        let mut child = Command::new(corral_bin())
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

    /// Calls `plugin`'s `echo` in a loop on a thread of its own, counting
    /// calls and failures, until [`Neighbour::finish`].
    pub fn keep_calling(&self, plugin: &str) -> Neighbour {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicUsize::new(0));
        let mut client = self.client();
        let plugin = plugin.to_owned();
        let thread = {
            let (stop, errors) = (stop.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut calls = 0;
                loop {
                    match client.call(&plugin, "echo", b"ping") {
                        Ok(reply) if reply == b"ping" => {}
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    calls += 1;
                    if stop.load(Ordering::Relaxed) {
                        return calls;
                    }
                }
            })
        };
        Neighbour {
            stop,
            errors,
            thread,
        }
    }

    fn remember(&self, pids: impl IntoIterator<Item = u32>) {
        self.seen_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(pids);
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        if self.wrapped {
            let group = -i32::try_from(self.child.id()).expect("a pid fits in i32");
            // SAFETY: kill with a negative pid signals that process group.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > 6 * WAIT {
                    // SAFETY: as above; the group still has its leader.
                    unsafe { libc::kill(group, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Workers die with the supervisor (PDEATHSIG, end of channel); make
        // sure of it for every pid this test saw, if it is still a worker.
        for pid in self
            .seen_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if is_worker(*pid) {
                send_signal(*pid, libc::SIGKILL);
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

/// A plugin being called in the background by [`Corral::keep_calling`].
pub struct Neighbour {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
    thread: JoinHandle<usize>,
}

impl Neighbour {
    /// Stops calling; panics unless the neighbour answered every call (and
    /// was called at least once).
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let calls = self.thread.join().expect("neighbour thread");
        let errors = self.errors.load(Ordering::Relaxed);
        assert!(calls > 0, "the neighbour was never called");
        assert_eq!(errors, 0, "the neighbour failed {errors} of {calls} calls");
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) };
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// A process's command line, NUL separators turned into spaces.
pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim_end()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Whether `pid` is a live corral worker.
pub fn is_worker(pid: u32) -> bool {
    is_alive(pid) && cmdline(pid).starts_with("corral-worker: ")
}

/// Makes a test folder usable by every uid (mode 0777), so that what a
/// worker with a uid of its own is denied is denied by its sandbox.
pub fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).expect("chmod test folder");
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

/// The uid tests run an ordinary user's supervisor as.
pub const NOBODY: u32 = 65534;

/// [`NOBODY`] when a supervisor can run as that user here; otherwise says
/// loudly that `test` is skipped, and why.
pub fn nobody_or_skip(test: &str) -> Option<u32> {
    match cannot_run_as(NOBODY) {
        None => Some(NOBODY),
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

/// Why tests cannot run a supervisor as another user here, if they cannot:
/// not root, no `setpriv`, or the binaries are not reachable by `uid`.
pub fn cannot_run_as(uid: u32) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root, so cannot switch to another uid".into());
    }
    let id = uid.to_string();
    let probe = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .arg(corral_bin())
        .arg("--version")
        .output();
    match probe {
        Err(error) => Some(format!("setpriv is not available: {error}")),
        Ok(out) if !out.status.success() => Some(format!(
            "uid {uid} cannot run {}: {}",
            corral_bin().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}
