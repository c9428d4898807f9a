//! Test harness for corral's end-to-end tests and benchmarks: the test
//! kit ([`corral::testing`]: a real `corral serve` in a temporary folder,
//! clients, faults), plus what is particular to this workspace: where the
//! built binaries, plugin libraries and wasm modules are, and installing
//! them ([`Workspace`]).
//!
//! The binaries and plugin libraries are found in the cargo target folder
//! the test binary runs from; build them first with
//! `cargo build --workspace` (the README's test command does).

pub mod bench;

pub use corral::testing::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Where `example-plugins/build-js.sh` leaves the bundle of the JavaScript
/// example `example` (`example-plugins/{example}/dist/plugin.js`).
pub fn js_bundle(example: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../example-plugins")
        .join(example)
        .join("dist/plugin.js")
}

/// Installs this workspace's plugins into a [`CorralBuilder`].
pub trait Workspace: Sized {
    /// Installs a plugin built in this workspace (`lib{crate_name}.so`)
    /// under the plugin name `name`.
    fn native(self, name: &str, crate_name: &str) -> Self;
    /// Like [`native`](Self::native), with `extra` appended to the
    /// manifest (`[permissions]`, `[limits]` tables).
    fn native_with(self, name: &str, crate_name: &str, extra: &str) -> Self;
    /// Installs a wasm module built by `example-plugins/build-wasm.sh`
    /// (`target/wasm-plugins/{module}.wasm`) as plugin `name`, with
    /// `extra` appended to the manifest.
    fn wasm_with(self, name: &str, module: &str, extra: &str) -> Self;
    /// Installs the bundle of a JavaScript example plugin built by
    /// `example-plugins/build-js.sh` (`example-plugins/{example}/dist/plugin.js`)
    /// as plugin `name`, with `extra` appended to the manifest.
    fn js_with(self, name: &str, example: &str, extra: &str) -> Self;
    /// Installs the example plugin folder `example-plugins/{example}`
    /// under its own name: its `plugin.toml` and the `built` files (paths
    /// in the folder, e.g. `build/as-hello.wasm`), which must exist.
    fn example(self, example: &str, built: &[&str]) -> Self;
    /// Installs the `hello` example plugin as `name`.
    fn hello(self, name: &str) -> Self;
}

impl Workspace for CorralBuilder {
    fn native(self, name: &str, crate_name: &str) -> Self {
        self.native_with(name, crate_name, "")
    }

    fn native_with(self, name: &str, crate_name: &str, extra: &str) -> Self {
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

    fn wasm_with(self, name: &str, module: &str, extra: &str) -> Self {
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

    fn js_with(self, name: &str, example: &str, extra: &str) -> Self {
        let built = js_bundle(example);
        assert!(
            built.is_file(),
            "{} is missing: run example-plugins/build-js.sh first (tests/run.sh does)",
            built.display()
        );
        let manifest = format!(
            "[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"plugin.js\"\napi = 1\n\n{extra}"
        );
        self.folder(
            name,
            &[
                ("plugin.js", &fs::read(&built).expect("read the bundle")),
                ("plugin.toml", manifest.as_bytes()),
            ],
        )
    }

    fn example(self, example: &str, built: &[&str]) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../example-plugins")
            .join(example);
        let folder = self.plugins_dir().join(example);
        for file in built.iter().chain(&["plugin.toml"]) {
            let from = source.join(file);
            assert!(
                from.is_file(),
                "{} is missing: run example-plugins/build-js.sh first (tests/run.sh does)",
                from.display()
            );
            let to = folder.join(file);
            fs::create_dir_all(to.parent().expect("in the folder")).expect("plugin folder");
            fs::copy(&from, &to).expect("copy the example's file");
        }
        self
    }

    fn hello(self, name: &str) -> Self {
        self.native(name, "hello")
    }
}

/// Attaches a real gdb to `pid` in batch mode and checks it sees the
/// process; skips loudly when gdb is not installed.
pub fn gdb_attaches(pid: u32) {
    if Command::new("gdb").arg("--version").output().is_err() {
        eprintln!("SKIPPED the gdb attach: gdb is not installed (apt-get install gdb)");
        return;
    }
    let gdb = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-ex", "info inferiors"])
        .output()
        .expect("gdb");
    let said = String::from_utf8_lossy(&gdb.stdout);
    assert!(said.contains(&pid.to_string()), "gdb said:\n{said}{gdb:?}");
}

/// Makes a test folder usable by every uid (mode 0777), so that what a
/// worker with a uid of its own is denied is denied by its sandbox.
pub fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).expect("chmod test folder");
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
