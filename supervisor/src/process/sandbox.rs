//! The supervisor's view of a worker's sandbox: the layers applied before
//! the plugin (by [`corral_plugin_api::worker_setup`], in the forked
//! child) as `corral inspect` shows them, and the checks from outside that
//! a worker which said `Ready` is confined.

use corral_plugin_api::wire::{EffectiveLimits, Layer, PluginKind};
use corral_plugin_api::worker_setup::{JS_RUNTIME_BYTES, MEMLOCK_BYTES, WASM_RUNTIME_BYTES};
use std::io;
use std::path::PathBuf;

/// The layers applied before the plugin, as `corral inspect` shows
/// them (the worker reports its own: Landlock, seccomp).
pub(crate) fn applied_layers(limits: &EffectiveLimits, kind: PluginKind) -> Vec<Layer> {
    const MIB: u64 = 1024 * 1024;
    let layer = |name: &str, active: bool, detail: String| Layer {
        name: name.to_owned(),
        active,
        detail,
    };
    let cpu = limits
        .cpu_seconds
        .map_or_else(|| "unlimited".to_owned(), |secs| format!("{secs} s"));
    vec![
        layer(
            "session",
            true,
            "own session and process group; stdin /dev/null; only fds 0-5 (channel, module, seccomp listener socket); empty environment"
                .into(),
        ),
        layer(
            "rlimits",
            true,
            format!(
                "data {} MiB{}, open files {}, file size {} MiB, cpu {cpu}, core 0, memlock {} MiB",
                limits.memory_bytes / MIB,
                match kind {
                    PluginKind::Native => String::new(),
                    PluginKind::Js => format!(
                        " (engine heap; +{} MiB for the worker)",
                        JS_RUNTIME_BYTES / MIB
                    ),
                    PluginKind::Wasm => format!(
                        " (guest; +{} MiB for the wasm runtime)",
                        WASM_RUNTIME_BYTES / MIB
                    ),
                },
                limits.open_files,
                limits.file_size_bytes / MIB,
                MEMLOCK_BYTES / MIB
            ),
        ),
        layer(
            "no_new_privs",
            true,
            "PR_SET_NO_NEW_PRIVS, verified in /proc before the first call".into(),
        ),
        layer(
            "pdeathsig",
            true,
            "SIGKILL when the supervisor dies; end of channel too".into(),
        ),
        layer(
            "watchdog",
            true,
            format!(
                "at most {} threads; {}",
                limits.threads,
                limits.cpu_percent.map_or_else(
                    || "CPU use unwatched".to_owned(),
                    |percent| format!(
                        "at most {percent}% CPU sustained over {} s",
                        crate::process::watchdog::WINDOW.as_secs()
                    )
                )
            ),
        ),
    ]
}

/// A worker that said `Ready` but is not confined, or cannot be checked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnconfinedError {
    /// Its `/proc` entries cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A thread lacks a layer.
    #[error("sandbox not in force: {} has {field} {found}, expected {wanted}", path.display())]
    NotInForce {
        /// The thread's status file.
        path: PathBuf,
        /// `NoNewPrivs:` or `Seccomp:`.
        field: &'static str,
        /// Its value, or `missing`.
        found: String,
        wanted: &'static str,
    },
}

/// Checks from outside that a worker that said `Ready` is confined:
/// `/proc/PID/status` must show `NoNewPrivs: 1` and `Seccomp: 2` (filter
/// mode) for every one of its threads.
pub(crate) fn verify(pid: u32) -> Result<(), UnconfinedError> {
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let read = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| UnconfinedError::Read { path, source }
    };
    for task in std::fs::read_dir(&tasks).map_err(read(&tasks))? {
        let path = task.map_err(read(&tasks))?.path().join("status");
        let status = read_proc(&path).map_err(read(&path))?;
        for (field, wanted) in [("NoNewPrivs:", "1"), ("Seccomp:", "2")] {
            let value = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .map(str::trim);
            if value != Some(wanted) {
                return Err(UnconfinedError::NotInForce {
                    path,
                    field,
                    found: value.unwrap_or("missing").to_owned(),
                    wanted,
                });
            }
        }
    }
    Ok(())
}

/// The layers only the outside can see, read from `/proc`: which
/// namespaces the worker is in (compared with the supervisor's) and which
/// uid it runs as.
pub(crate) fn observe(pid: u32, uid: Option<u32>, network: bool) -> Vec<Layer> {
    let namespace = |name: &str| {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        matches!((theirs, ours), (Ok(theirs), Ok(ours)) if theirs != ours)
    };
    let wanted: &[&str] = if network {
        &["user", "ipc", "uts", "mnt"]
    } else {
        &["user", "net", "ipc", "uts", "mnt"]
    };
    let (entered, missing): (Vec<&str>, Vec<&str>) =
        wanted.iter().partition(|name| namespace(name));
    let mut detail = if entered.is_empty() {
        "none".to_owned()
    } else {
        format!("own {}", entered.join(", "))
    };
    if !missing.is_empty() {
        detail += &format!("; missing {} (refused by this kernel)", missing.join(", "));
    }
    if network {
        detail += "; shares the host network (network = true)";
    }
    let running_as = read_proc(std::path::Path::new(&format!("/proc/{pid}/status")))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned());
    let uid_layer = match uid {
        Some(uid) => Layer {
            name: "uid".into(),
            active: running_as == uid.to_string(),
            detail: format!("own uid/gid {uid} (runs as {running_as}); RLIMIT_NPROC per plugin"),
        },
        None => Layer {
            name: "uid".into(),
            active: false,
            detail: format!(
                "runs as the supervisor's uid {running_as}: only root can give each worker its own"
            ),
        },
    };
    vec![
        Layer {
            name: "namespaces".into(),
            active: missing.is_empty(),
            detail,
        },
        uid_layer,
    ]
}

/// A `/proc` file read whole: its size shows as 0, so std would read it
/// in growing pieces; one page takes a status file in one read.
fn read_proc(path: &std::path::Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(4096);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}
