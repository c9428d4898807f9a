//! The hostile battery against the worker sandbox (Landlock + seccomp,
//! applied before the plugin is loaded). Each test has a well-behaved
//! neighbour that must answer every call throughout.

use corral::{ErrorKind, ExitCause, PluginState};
use corral_tests::{Corral, Workspace};

fn hostile(extra: &str) -> Corral {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", extra)
        .hello("neighbour")
        .start();
    corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    corral
}

#[test]
fn forbidden_syscalls_kill_the_worker_and_are_named() {
    let cases = [
        ("exec", "execve"),
        ("fork-bomb", "clone"),
        ("connect", "socket"),
        ("ptrace", "ptrace"),
        ("peek", "process_vm_readv"),
    ];
    // One supervisor per case, side by side: each crash costs a restart.
    std::thread::scope(|scope| {
        for (method, syscall) in cases {
            scope.spawn(move || {
                let corral = hostile("");
                let neighbour = corral.keep_calling("neighbour");
                let before = corral.plugin("hostile");
                let error = corral.client().call("hostile", method, b"").unwrap_err();
                assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{method}: {error}");
                let after = corral.wait_replaced("hostile", before.pid);
                let exit = after.last_exit.unwrap();
                assert_eq!(
                    exit.cause,
                    ExitCause::Seccomp,
                    "{method}: {}",
                    exit.description
                );
                assert_eq!(exit.signal, Some(31), "{method}: {}", exit.description);
                assert!(
                    exit.description
                        .contains(&format!("forbidden syscall {syscall} (")),
                    "{method}: {}",
                    exit.description
                );
                neighbour.finish();
            });
        }
    });
}

#[test]
fn files_outside_the_permissions_are_denied_and_the_worker_lives() {
    let allowed = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("in.txt"), b"readable").unwrap();
    std::fs::write(secret.path().join("secret.txt"), b"secret").unwrap();
    std::fs::create_dir(allowed.path().join("out")).unwrap();
    // Open to every uid: what is denied below is denied by Landlock.
    for dir in [allowed.path(), secret.path(), &allowed.path().join("out")] {
        corral_tests::open_to_all(dir);
    }
    let corral = hostile(&format!(
        "[permissions]\nread = [\"{}\"]\nwrite = [\"{}/out\"]\n",
        allowed.path().display(),
        allowed.path().display()
    ));
    let pid = corral.plugin("hostile").pid;
    let neighbour = corral.keep_calling("neighbour");
    let mut client = corral.client();
    let path = |p: &std::path::Path| p.to_str().unwrap().as_bytes().to_vec();

    let read = client.call(
        "hostile",
        "read-file",
        &path(&allowed.path().join("in.txt")),
    );
    assert_eq!(read.unwrap(), b"readable");
    for denied in [
        std::path::PathBuf::from("/etc/shadow"),
        secret.path().join("secret.txt"),
    ] {
        let error = client
            .call("hostile", "read-file", &path(&denied))
            .unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
        assert!(
            error.to_string().contains("Permission denied"),
            "{}: {error}",
            denied.display()
        );
    }
    // Writing: inside `write` yes, beside it (read-only) and elsewhere no.
    let error = client
        .call(
            "hostile",
            "write-file",
            &path(&allowed.path().join("not-here.bin")),
        )
        .unwrap_err();
    assert!(error.to_string().contains("Permission denied"), "{error}");
    let error = client
        .call("hostile", "write-file", &path(&secret.path().join("x.bin")))
        .unwrap_err();
    assert!(error.to_string().contains("Permission denied"), "{error}");
    let wrote = client.call(
        "hostile",
        "write-file",
        &path(&allowed.path().join("out/ok.bin")),
    );
    assert_eq!(wrote.unwrap(), b"wrote 16 MiB");
    let ops = client.call("hostile", "fs-ops", &path(&allowed.path().join("out")));
    assert_eq!(ops.unwrap(), br#"["b.txt"] 1"#);
    assert_eq!(corral.plugin("hostile").pid, pid, "denials do not kill");
    neighbour.finish();
}

#[test]
fn threads_time_and_allocation_work_in_the_sandbox() {
    let corral = hostile("");
    let mut client = corral.client();
    assert_eq!(
        client.call("hostile", "threads", b"8").unwrap(),
        b"8 threads ran"
    );
    assert_eq!(
        client.call("neighbour", "sleep", b"10").unwrap(),
        b"slept 10 ms"
    );
    assert_eq!(
        client.call("neighbour", "upper", b"still fine").unwrap(),
        b"STILL FINE"
    );
    assert_eq!(corral.plugin("hostile").restarts, 0);
}

#[test]
fn network_permission_allows_sockets() {
    let corral = hostile("[permissions]\nnetwork = true\n");
    let pid = corral.plugin("hostile").pid;
    let neighbour = corral.keep_calling("neighbour");
    let error = corral.client().call("hostile", "connect", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(error.to_string().contains("Connection refused"), "{error}");
    assert_eq!(corral.plugin("hostile").pid, pid);
    neighbour.finish();
}

#[test]
fn constructor_escape_at_dlopen_is_already_confined() {
    let corral = Corral::builder()
        .native("hostile-init", "hostile-init")
        .hello("neighbour")
        .start();
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_last_exit(
        "hostile-init",
        "the constructor's escape is recorded",
        |exit| exit.cause == ExitCause::Seccomp,
    );
    let plugin = corral.plugin("hostile-init");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.unwrap();
    assert!(
        exit.description.contains("forbidden syscall socket"),
        "{}",
        exit.description
    );
    neighbour.finish();
}

#[test]
fn every_thread_of_a_ready_worker_is_confined() {
    let corral = hostile("");
    let pid = corral.plugin("hostile").pid.unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_owned)
        };
        assert_eq!(field("Seccomp:").as_deref(), Some("2"), "{status}");
        assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{status}");
    }
    assert!(
        corral.log().contains("ready, every sandbox layer in force"),
        "{}",
        corral.log()
    );
}

#[test]
fn strict_refuses_a_worker_with_a_missing_layer() {
    let Some(nobody) = corral_tests::nobody_or_skip("strict_refuses_a_worker_with_a_missing_layer")
    else {
        return;
    };
    // An ordinary user's supervisor cannot give workers their own uid: with
    // --strict that missing layer is fatal.
    let corral = Corral::builder()
        .hello("hello")
        .as_user(nobody)
        .arg("--strict")
        .start();
    corral.wait_last_exit("hello", "the refusal is recorded", |exit| {
        exit.cause == ExitCause::Sandbox
    });
    let plugin = corral.plugin("hello");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.unwrap();
    assert!(
        exit.description
            .contains("strict: missing sandbox layers: uid"),
        "{}",
        exit.description
    );
    assert!(corral.client().call("hello", "echo", b"x").is_err());
}

#[test]
fn without_strict_a_missing_layer_is_a_warning_in_status() {
    let Some(nobody) =
        corral_tests::nobody_or_skip("without_strict_a_missing_layer_is_a_warning_in_status")
    else {
        return;
    };
    let corral = Corral::builder().hello("hello").as_user(nobody).start();
    corral.wait_ready("hello");
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
    let details = corral.client().inspect("hello").unwrap();
    let uid = details.layers.iter().find(|l| l.name == "uid").unwrap();
    assert!(!uid.active && uid.detail.contains("only root"), "{uid:?}");
    assert!(
        corral.log().contains("sandbox layers missing: uid"),
        "{}",
        corral.log()
    );
}
