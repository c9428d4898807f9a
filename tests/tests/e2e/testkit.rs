//! The test kit's faults (`corral::testing`), each against the real
//! supervisor: what the caller sees, that the plugin comes back, and that
//! a neighbour plugin loses nothing.

use corral::{ErrorKind, ExitCause, PluginState};
use corral_tests::{Corral, Workspace, artifact, is_alive};

fn setup(limits: &str) -> Corral {
    let corral = Corral::builder()
        .native_with("victim", "hello", limits)
        .hello("neighbour")
        .start();
    corral.wait_ready("victim");
    corral.wait_ready("neighbour");
    corral
}

#[test]
fn crash_on_next_call_fails_that_call_and_the_plugin_comes_back() {
    let corral = setup("");
    let neighbour = corral.keep_calling("neighbour");
    let old = corral.worker_pid("victim");
    corral.crash_on_next_call("victim");
    let error = corral
        .client()
        .call("victim", "echo", b"x")
        .expect_err("crashed");
    assert_eq!(error.kind(), Some(ErrorKind::Crashed), "{error}");
    assert!(error.to_string().contains("SIGABRT"), "{error}");
    corral.wait_replaced("victim", Some(old));
    assert_eq!(corral.client().call("victim", "echo", b"y").unwrap(), b"y");
    neighbour.finish();
}

#[test]
fn a_frozen_worker_misses_its_deadline_and_is_replaced() {
    let corral = setup("[limits]\ncall_timeout_ms = 300\n");
    let neighbour = corral.keep_calling("neighbour");
    let frozen = corral.freeze("victim");
    let error = corral
        .client()
        .call("victim", "echo", b"x")
        .expect_err("a hang");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    corral.wait_last_exit("victim", "killed at its deadline", |exit| {
        exit.cause == ExitCause::CallDeadline
    });
    let old = frozen.pid();
    assert!(!is_alive(old), "the frozen worker was killed");
    drop(frozen);
    corral.wait_replaced("victim", Some(old));
    assert_eq!(corral.client().call("victim", "echo", b"y").unwrap(), b"y");
    neighbour.finish();
}

#[test]
fn filling_memory_hits_the_limit_and_the_plugin_comes_back() {
    let corral = setup("[limits]\nmemory_mb = 32\n");
    let neighbour = corral.keep_calling("neighbour");
    let old = corral.worker_pid("victim");
    corral.fill_memory("victim");
    let info = corral.wait_last_exit("victim", "died of its memory limit", |exit| {
        exit.cause == ExitCause::OutOfMemory
            || exit
                .output
                .iter()
                .any(|line| line.contains("memory allocation"))
    });
    assert!(!is_alive(old));
    let exit = info.last_exit.expect("an exit");
    assert!(
        exit.description.contains("SIGABRT") || exit.cause == ExitCause::OutOfMemory,
        "{exit:?}"
    );
    corral.wait_replaced("victim", Some(old));
    neighbour.finish();
}

#[test]
fn a_host_app_hanging_up_mid_call_loses_nothing_else() {
    let corral = setup("");
    let neighbour = corral.keep_calling("neighbour");
    let pid = corral.worker_pid("victim");
    for _ in 0..5 {
        corral.hang_up_during_call("victim", "sleep", b"50");
    }
    // The worker finishes those calls, answers nobody, and keeps serving.
    assert_eq!(corral.client().call("victim", "echo", b"y").unwrap(), b"y");
    assert_eq!(corral.worker_pid("victim"), pid, "not restarted");
    assert_eq!(corral.plugin("victim").state, PluginState::Ready);
    neighbour.finish();
}

#[test]
fn kill_worker_is_a_crash_the_plugin_recovers_from() {
    let corral = setup("");
    let old = corral.kill_worker("victim");
    let info = corral.wait_replaced("victim", Some(old));
    let exit = info.last_exit.expect("an exit");
    assert_eq!(exit.signal, Some(libc::SIGKILL), "{exit:?}");
}

#[test]
fn a_supervisor_without_faults_refuses_them() {
    // A plugin folder of the test's own, installed with `plugin` as a host
    // app's test would.
    let source = tempfile::tempdir().unwrap();
    std::fs::copy(artifact("libhello.so"), source.path().join("libhello.so")).unwrap();
    std::fs::write(
        source.path().join("plugin.toml"),
        "[plugin]\nname = \"hello\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"libhello.so\"\napi = 1\n",
    )
    .unwrap();
    let corral = Corral::builder()
        .plugin("hello", source.path())
        .without_faults()
        .start();
    corral.wait_ready("hello");
    let refused = corral
        .client()
        .inject("hello", corral::Fault::CrashOnNextCall)
        .expect_err("refused");
    assert_eq!(
        refused.kind(),
        Some(ErrorKind::PermissionDenied),
        "{refused}"
    );
    assert!(refused.to_string().contains("--faults"), "{refused}");
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
}
