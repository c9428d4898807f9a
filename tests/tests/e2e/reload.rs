//! Hot reload: a plugin's files change while host apps call it; a new
//! generation takes over without a failed call, or, when it cannot start,
//! the old one keeps serving.

use corral::{ErrorKind, PluginState};
use corral_tests::{Corral, Workspace, artifact};
use std::fs;
use std::path::Path;

/// Replaces `dir/name` atomically (write beside, rename), as a deploy does.
fn replace(dir: &Path, name: &str, contents: &[u8]) {
    let staged = dir.join(format!(".{name}.new"));
    fs::write(&staged, contents).unwrap();
    fs::rename(&staged, dir.join(name)).unwrap();
}

fn manifest(dir: &Path, version: &str) {
    let text = format!(
        "[plugin]\nname = \"swap\"\nversion = \"{version}\"\nkind = \"native\"\nentry = \"libhello.so\"\napi = 1\n"
    );
    replace(dir, "plugin.toml", text.as_bytes());
}

#[test]
fn a_replaced_library_takes_over_without_a_failed_call_and_a_broken_one_is_rolled_back() {
    let corral = Corral::builder().hello("swap").start();
    let dir = corral.dir().join("plugins/swap");
    let first = corral.wait_ready("swap");
    assert_eq!(first.generation, 1);
    // `swap` answers `echo` either way; the loop must never fail.
    let caller = corral.keep_calling("swap");

    // A new build: the hostile battery also answers `echo`, but not `sum`.
    replace(
        &dir,
        "libhello.so",
        &fs::read(artifact("libhostile.so")).unwrap(),
    );
    manifest(&dir, "2.0.0");
    corral.wait_until("generation 2 serves", || {
        let swap = corral.plugin("swap");
        swap.generation == 2 && swap.state == PluginState::Ready
    });
    let second = corral.plugin("swap");
    assert_eq!(second.version.as_deref(), Some("2.0.0"));
    assert_ne!(second.pid, first.pid);
    let error = corral.client().call("swap", "sum", b"1 2").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::UnknownMethod), "{error}");
    corral.wait_until("generation 1 drained and stopped", || {
        !corral_tests::is_alive(first.pid.unwrap())
    });

    // A broken build: generation 2 keeps serving, the failure is shown.
    replace(&dir, "libhello.so", b"\x7fELF truncated by a failed build");
    corral.wait_until("the failed reload is reported", || {
        corral
            .plugin("swap")
            .error
            .is_some_and(|error| error.contains("reload failed, generation 2 still serving"))
    });
    let kept = corral.plugin("swap");
    assert_eq!(kept.generation, 2);
    assert_eq!(kept.pid, second.pid);
    assert_eq!(kept.state, PluginState::Ready);
    let ps = String::from_utf8_lossy(&corral.cli(&["ps"]).stdout).into_owned();
    assert!(ps.contains("reload failed"), "{ps}");

    // Fixed again by hand: `corral reload` does what the watcher does.
    fs::copy(artifact("libhello.so"), dir.join("libhello.so")).unwrap();
    let out = corral.cli(&["reload", "swap"]);
    assert!(out.status.success(), "{out:?}");
    let third = corral.plugin("swap");
    assert!(third.generation >= 3, "{third:?}");
    assert_eq!(third.error, None);
    assert_eq!(corral.client().call("swap", "sum", b"1 2").unwrap(), b"3");
    caller.finish();
}

#[test]
fn a_manifest_broken_by_an_edit_keeps_the_running_version() {
    let corral = Corral::builder().hello("swap").start();
    let dir = corral.dir().join("plugins/swap");
    let first = corral.wait_ready("swap");
    let caller = corral.keep_calling("swap");
    manifest(&dir, "banana");
    corral.wait_until("the failed reload is reported", || {
        corral.plugin("swap").error.is_some_and(|error| {
            error.contains("reload failed") && error.contains("not a semver version")
        })
    });
    assert_eq!(corral.plugin("swap").pid, first.pid);
    let out = corral.cli(&["reload", "swap"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reload failed"),
        "{out:?}"
    );
    caller.finish();
}

#[test]
fn plugin_folders_added_and_removed_while_serving() {
    let corral = Corral::builder().hello("first").start();
    corral.wait_ready("first");
    let plugins = corral.dir().join("plugins");
    // A new folder is picked up.
    let added = plugins.join("added");
    fs::create_dir(&added).unwrap();
    fs::copy(artifact("libhello.so"), added.join("libhello.so")).unwrap();
    fs::write(
        added.join("plugin.toml"),
        "[plugin]\nname = \"added\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"libhello.so\"\napi = 1\n",
    )
    .unwrap();
    corral.wait_until("the new folder is served", || {
        corral
            .list()
            .iter()
            .any(|plugin| plugin.name == "added" && plugin.state == PluginState::Ready)
    });
    let info = corral.plugin("added");
    assert_eq!(
        corral.client().call("added", "upper", b"new").unwrap(),
        b"NEW"
    );
    // A removed one stops and goes away.
    fs::remove_dir_all(&added).unwrap();
    corral.wait_until("added is gone", || {
        corral.list().iter().all(|plugin| plugin.name != "added")
    });
    corral.wait_until("its worker is gone", || {
        !corral_tests::is_alive(info.pid.unwrap())
    });
    let error = corral.client().call("added", "echo", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::UnknownPlugin), "{error}");
    assert_eq!(corral.plugin("first").state, PluginState::Ready);
}
