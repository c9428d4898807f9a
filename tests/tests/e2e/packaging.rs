//! What ships beside the binaries (`supervisor/packaging/`), checked as far
//! as this machine allows: the systemd unit with `systemd-analyze verify`
//! and its readiness protocol with a real notify socket, the corral.toml
//! files with corral's own parser, the Kubernetes manifests as YAML, and
//! `cargo install --path supervisor` installing a `corral` that serves.

use corral::PluginState;
use corral::settings::Settings;
use corral_tests::{Corral, WAIT, Workspace, cargo_target_dir, corral_bin};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../supervisor/packaging")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What `systemd-analyze verify` says about `unit` (empty: nothing).
fn verify(dir: &Path, name: &str, unit: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, unit).expect("write the unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_systemd_unit_verifies_and_its_corral_toml_parses() {
    let unit = read(&packaging().join("systemd/corral.service"));
    for line in [
        "Type=notify",
        "Delegate=yes",
        "RuntimeDirectory=corral",
        "ExecReload=",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    let toml_path = packaging().join("systemd/corral.toml");
    let settings = Settings::parse(&read(&toml_path), &toml_path).expect("corral.toml parses");
    assert_eq!(
        settings.socket.as_deref(),
        Some(Path::new("/run/corral/corral.sock")),
        "the socket is in the unit's RuntimeDirectory"
    );
    assert!(unit.contains("--config /etc/corral/corral.toml"));

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // verify wants the programs to exist: the one built here.
    let here = unit.replace("/usr/local/bin/corral", &corral_bin().display().to_string());
    let said = verify(dir.path(), "corral.service", &here);
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    // And it does complain about a broken one.
    let broken = verify(
        dir.path(),
        "broken.service",
        &here.replace("Type=notify", "Type=notfy"),
    );
    assert!(broken.contains("notfy"), "{broken}");
}

#[test]
fn the_kubernetes_manifests_are_a_configmap_and_a_daemonset_running_corral() {
    let path = packaging().join("kubernetes/corral.yaml");
    let script = "import json, sys, yaml\n\
                  print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let output = match Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
    {
        Ok(output) if output.status.success() => output,
        Ok(output)
            if String::from_utf8_lossy(&output.stderr).contains("No module named 'yaml'") =>
        {
            eprintln!(
                "SKIPPED YAML check: python3 has no yaml module (apt-get install python3-yaml)"
            );
            return;
        }
        Ok(output) => panic!("{} is not YAML: {output:?}", path.display()),
        Err(error) => {
            eprintln!("SKIPPED YAML check: no python3 ({error})");
            return;
        }
    };
    let documents: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON from python");
    let kinds: Vec<&str> = documents
        .iter()
        .map(|doc| doc["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    let toml = documents[0]["data"]["corral.toml"]
        .as_str()
        .expect("corral.toml in the ConfigMap");
    let settings = Settings::parse(toml, Path::new("/etc/corral/corral.toml"))
        .unwrap_or_else(|e| panic!("the ConfigMap's corral.toml: {e}"));
    assert_eq!(settings.plugins, [PathBuf::from("/etc/corral/plugins")]);
    let pod = &documents[1]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .expect("a command")
        .iter()
        .filter_map(|word| word.as_str())
        .collect();
    assert_eq!(
        command,
        [
            "/usr/local/bin/corral",
            "serve",
            "--config",
            "/etc/corral/corral.toml"
        ]
    );
    let mounted: Vec<&str> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|mount| mount["mountPath"].as_str())
        .collect();
    for needed in [
        "/etc/corral/corral.toml",
        "/etc/corral/plugins",
        "/run/corral",
    ] {
        assert!(
            mounted.contains(&needed),
            "{needed} is not mounted: {mounted:?}"
        );
    }
    assert_eq!(
        documents[1]["spec"]["selector"]["matchLabels"],
        documents[1]["spec"]["template"]["metadata"]["labels"],
        "the selector matches the pod's labels"
    );
}

/// Reads notifications from `socket` until one contains `what`.
fn until_notified(socket: &UnixDatagram, what: &str) -> Vec<String> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    while started.elapsed() < WAIT {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if seen.last().is_some_and(|message| message.contains(what)) {
                return seen;
            }
        }
    }
    panic!("no {what:?} within {WAIT:?}; got {seen:?}");
}

#[test]
fn ready_is_sent_to_systemd_once_the_start_time_plugins_have_settled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("a notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut corral = Corral::builder()
        .hello("a")
        .hello("b")
        .native_with("lazy", "hello", "start = \"lazy\"\n")
        .folder("broken", &[("plugin.toml", b"[plugin]\nname = 1\n")])
        .env("NOTIFY_SOCKET", &path)
        .start();
    let seen = until_notified(&socket, "READY=1");
    // Sent once a and b were ready: neither the lazy plugin (waiting for a
    // call) nor the broken one held it up.
    let ready = seen.last().expect("a message");
    assert!(
        ready.contains("STATUS=serving 4 plugins, 2 ready"),
        "{ready}"
    );
    for name in ["a", "b"] {
        assert_eq!(corral.plugin(name).state, PluginState::Ready);
    }
    assert_eq!(corral.plugin("lazy").state, PluginState::Installed);
    corral.signal(libc::SIGTERM);
    until_notified(&socket, "STOPPING=1");
    assert!(corral.wait_exit().success());
}

/// Kills the child when dropped.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cargo_install_path_supervisor_installs_corral_and_its_worker() {
    let root = tempfile::tempdir().unwrap();
    // The workspace's own target folder: what the suite built is reused,
    // so nothing is compiled (or relinked over the binaries the other
    // tests are running) while the suite runs.
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "--path",
            "supervisor",
            "--debug",
            "--locked",
            "--root",
        ])
        .arg(root.path())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .output()
        .expect("cargo install");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo install failed:\n{log}");
    // What `cargo build --workspace` built is what gets installed: had
    // the workspace turned on other features of corral or its
    // dependencies, the suite would be testing other binaries.
    assert!(
        !log.contains("Compiling "),
        "cargo install rebuilt what the workspace build had built (features differ?):\n{log}"
    );
    let bin = root.path().join("bin");
    for binary in ["corral", "corral-worker", "corral-worker-native"] {
        assert!(bin.join(binary).is_file(), "cargo install made no {binary}");
    }

    // The installed corral finds the installed worker beside it.
    let setup = Corral::builder().hello("hello");
    let plugins = setup.plugins_dir();
    let socket = root.path().join("corral.sock");
    let serve = Command::new(bin.join("corral"))
        .args(["serve", "--plugins"])
        .arg(&plugins)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(root.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the installed corral");
    let _serve = Reap(serve);
    let started = Instant::now();
    loop {
        let called = Command::new(bin.join("corral"))
            .args(["call", "hello", "echo", "installed"])
            .env("CORRAL_SOCKET", &socket)
            .output()
            .expect("corral call");
        if called.status.success() {
            assert_eq!(called.stdout, b"installed");
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the installed corral never answered: {called:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
