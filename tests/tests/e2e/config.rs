//! `corral serve --config corral.toml`: settings from a file, flags over
//! them, and a bad file refused before anything starts.

use corral_tests::{Corral, WAIT, Workspace, corral_bin};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn call_timeout_ms(corral: &Corral, plugin: &str) -> u64 {
    corral
        .client()
        .inspect(plugin)
        .expect("inspect")
        .limits
        .call_timeout_ms
}

#[test]
fn serve_takes_plugins_socket_and_defaults_from_corral_toml() {
    let corral = Corral::builder().hello("hello").start_with_config(
        "# relative to this file's folder\n\
         plugins = [\"plugins\"]\n\
         socket = \"corral.sock\"\n\
         socket_mode = \"0640\"\n\
         max_plugins = 10\n\
         call_timeout_ms = 1234\n\
         \n\
         [limits]\n\
         memory_mb = 128\n",
    );
    corral.wait_ready("hello");
    assert_eq!(corral.client().call("hello", "echo", b"hi").unwrap(), b"hi");
    let details = corral.client().inspect("hello").expect("inspect");
    assert_eq!(details.limits.call_timeout_ms, 1234);
    assert_eq!(details.limits.memory_bytes, 128 << 20, "[limits] defaults");
    let mode = std::fs::metadata(&corral.socket)
        .expect("the socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "socket_mode");
}

#[test]
fn flags_win_over_corral_toml() {
    let builder = Corral::builder().hello("hello");
    let plugins = builder.plugins_dir();
    // The file names a folder that does not exist: --plugins replaces it.
    let corral = builder
        .arg("--plugins")
        .arg(plugins.to_str().expect("a UTF-8 temporary path"))
        .arg("--call-timeout-ms")
        .arg("4321")
        .start_with_config(
            "plugins = [\"no-such-folder\"]\nsocket = \"corral.sock\"\ncall_timeout_ms = 1234\n",
        );
    corral.wait_ready("hello");
    assert_eq!(call_timeout_ms(&corral, "hello"), 4321);
}

/// Runs `corral serve ARGS`, which must exit by itself (within [`WAIT`]).
fn serve_exits(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(corral_bin())
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env_remove("CORRAL_SOCKET")
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run corral serve");
    let start = Instant::now();
    while child.try_wait().expect("wait corral").is_none() {
        if start.elapsed() > WAIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("corral output");
            panic!(
                "corral serve {args:?} kept running\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().expect("corral output")
}

#[test]
fn a_bad_corral_toml_stops_serve_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let cases = [
        (
            "plugins = [\"plugins\"]\ncolour = \"red\"\n",
            "corral.toml:2:1: unknown field `colour`",
        ),
        (
            "plugins = [\"plugins\"]\nsocket_mode = \"999\"\n",
            "corral.toml:2:15: socket_mode = \"999\": expected an octal mode",
        ),
        (
            "plugins = [\"plugins\"]\n[limits]\nmemory_mb = 1\n",
            "corral.toml:3:13: [limits] memory_mb = 1: expected 16 to 1048576",
        ),
        (
            "plugins = \"plugins\"\n",
            "corral.toml:1:11: plugins: expected a list of plugin folders, or [plugins.NAME] tables",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("corral.toml"), text).unwrap();
        let output = serve_exits(dir.path(), &["--config", "corral.toml"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}\n{stderr}");
        assert!(
            stderr.contains(&format!("corral: {expected}")),
            "{text}\n{stderr}"
        );
    }
}

#[test]
fn serve_without_plugin_folders_says_how_to_name_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corral.toml"), "strict = false\n").unwrap();
    for args in [&["--config", "corral.toml"][..], &[]] {
        let output = serve_exits(dir.path(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no plugin folders: pass --plugins DIR"),
            "{args:?}: {stderr}"
        );
    }
    let output = serve_exits(dir.path(), &["--config", "missing.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("corral: missing.toml: No such file"),
        "{stderr}"
    );
}
