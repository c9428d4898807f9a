//! Workers forked from the zygote: every sandbox layer in force, children
//! of the supervisor, the native-only binary for native plugins, no two
//! workers in one network namespace, a dead zygote replaced while its
//! workers serve on, and `fresh_exec` opting out.

use corral::SpawnMode;
use corral_tests::{Corral, Workspace, cmdline, send_signal, stat_field};
use std::fs;
use std::time::Duration;

/// The parent of `pid`.
fn parent(pid: u32) -> Option<String> {
    stat_field(pid, 4)
}

/// The supervisor's zygotes: its children named `corral-zygote`.
fn zygotes(supervisor: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "corral-zygote")
                && parent(pid) == Some(supervisor.to_string())
        })
        .collect()
}

fn namespace(pid: u32, name: &str) -> std::path::PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap()
}

fn status_field(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_forked_worker_is_the_supervisors_child_with_every_layer() {
    let mut builder = Corral::builder().hello("hello");
    let wasm = corral_tests::wasm_module("hello").is_file();
    if wasm {
        builder = builder.wasm_with("hello-wasm", "hello", "");
    } else {
        eprintln!("SKIPPED the wasm half: hello.wasm is missing (example-plugins/build-wasm.sh)");
    }
    let corral = builder.arg("--strict").start();
    let mut plugins = vec![("hello", "corral-worker-native")];
    if wasm {
        plugins.push(("hello-wasm", "corral-worker"));
    }
    for (name, binary) in plugins {
        let info = corral.wait_ready(name);
        let pid = info.pid.unwrap();
        assert_eq!(info.spawn_mode, Some(SpawnMode::Zygote), "{name}");
        // The supervisor's child (it reaps it and reads its exit status),
        // not the zygote's.
        assert_eq!(parent(pid), Some(corral.pid().to_string()), "{name}");
        // Native plugins run in the binary without the wasm runtime.
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            exe.file_name().unwrap(),
            binary,
            "{name}: {}",
            exe.display()
        );
        // Its own title, name and process group, as a fresh one has.
        assert_eq!(cmdline(pid), format!("corral-worker: {name}@1.0.0"));
        assert_eq!(
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap()
                .trim(),
            "corral-worker"
        );
        assert_eq!(
            stat_field(pid, 5),
            Some(pid.to_string()),
            "{name}: own group"
        );
        // Every layer, checked from outside (--strict refuses a worker
        // missing one): confined, its own uid, its own namespaces.
        assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
        assert_eq!(status_field(pid, "Seccomp:"), "2");
        assert_ne!(
            status_field(pid, "Uid:").split_whitespace().next(),
            Some("0")
        );
        for ns in ["user", "net", "ipc", "uts", "mnt"] {
            assert_ne!(
                namespace(pid, ns),
                namespace(corral.pid(), ns),
                "{name}: {ns}"
            );
        }
        if binary == "corral-worker-native" {
            // Stdio, the channel and the module: nothing of the zygote's.
            let fds: Vec<u32> = fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            assert!(fds.iter().all(|&fd| fd <= 5), "{name}: fds {fds:?}");
        }
        let inspect = corral.cli(&["inspect", name]);
        let text = String::from_utf8_lossy(&inspect.stdout);
        assert!(text.contains("(forked from the zygote)"), "{text}");
        assert!(!text.contains("\n  off "), "{text}");
        assert_eq!(
            corral.client().call(name, "echo", b"forked").unwrap(),
            b"forked"
        );
    }
    let ps = corral.cli(&["ps", "--json"]);
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(ps[0]["spawn_mode"], "zygote", "{ps}");
}

#[test]
fn no_two_workers_share_a_network_namespace() {
    let corral = Corral::builder()
        .hello("a")
        .hello("b")
        .hello("c")
        .native_with("online", "hello", "[permissions]\nnetwork = true\n")
        .start();
    let mut seen = Vec::new();
    // Restarts one after another: the zygote has no time to make a fresh
    // namespace between some of them.
    for round in 0..3 {
        for name in ["a", "b", "c", "online"] {
            if round > 0 {
                corral
                    .client()
                    .control(name, corral::Action::Restart, Duration::from_secs(10))
                    .unwrap();
            }
            let pid = corral.wait_ready(name).pid.unwrap();
            let net = namespace(pid, "net");
            if name == "online" {
                assert_eq!(net, namespace(corral.pid(), "net"), "network = true");
            } else {
                assert!(
                    seen.iter().all(|(other, _)| *other != net),
                    "{name} shares a network namespace: {net:?} in {seen:?}"
                );
                assert_ne!(net, namespace(corral.pid(), "net"));
                seen.push((net, name));
            }
        }
    }
}

#[test]
fn a_dead_zygote_is_replaced_and_its_workers_serve_on() {
    let corral = Corral::builder().hello("hello").start();
    let worker = corral.wait_ready("hello").pid.unwrap();
    let [zygote] = zygotes(corral.pid())[..] else {
        panic!("one zygote expected: {:?}", zygotes(corral.pid()));
    };
    send_signal(zygote, libc::SIGKILL);
    corral.wait_until(
        "a new zygote",
        || matches!(zygotes(corral.pid())[..], [new] if new != zygote),
    );
    // The worker it forked lives on, and serves.
    assert_eq!(
        corral
            .client()
            .call("hello", "echo", b"still here")
            .unwrap(),
        b"still here"
    );
    assert_eq!(corral.plugin("hello").pid, Some(worker));
    // The new zygote forks the next worker.
    corral
        .client()
        .control("hello", corral::Action::Restart, Duration::from_secs(10))
        .unwrap();
    let info = corral.wait_ready("hello");
    assert_ne!(info.pid, Some(worker));
    assert_eq!(info.spawn_mode, Some(SpawnMode::Zygote));
    assert!(
        corral.log().contains("zygote for native workers died"),
        "{}",
        corral.log()
    );
}

#[test]
fn fresh_exec_starts_a_worker_afresh() {
    let corral = Corral::builder()
        .native_with("hello", "hello", "[restart]\nfresh_exec = true\n")
        .arg("--strict")
        .start();
    let info = corral.wait_ready("hello");
    assert_eq!(info.spawn_mode, Some(SpawnMode::Exec));
    let pid = info.pid.unwrap();
    assert_eq!(parent(pid), Some(corral.pid().to_string()));
    assert_eq!(cmdline(pid), "corral-worker: hello@1.0.0");
    let inspect = corral.cli(&["inspect", "hello"]);
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains("(executed afresh)"),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
}
