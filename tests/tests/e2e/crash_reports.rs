//! Crash reports and replay, end to end through the real `corral` CLI: a
//! plugin that crashes on a given input after good calls leaves a report
//! holding that input, and `corral replay` makes it crash the same way; a
//! seccomp kill and a deadline kill reproduce too; reports are refused to
//! an app uid; a plugin with `[debug] record = false` keeps no inputs; a
//! crash loop is counted, not written again and again; a changed build is
//! not replayed without `--force`.

use corral::{CallEnd, CrashReport, CrashSummary, ExitCause};
use corral_tests::{Corral, Workspace, corral_bin};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

/// A supervisor serving the hostile battery as `hostile`, with `extra`
/// in its manifest.
fn hostile(extra: &str) -> Corral {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", extra)
        .start();
    corral.wait_ready("hostile");
    corral
}

/// Calls `method` expecting the worker to die of it (the caller told it
/// crashed, or timed out when the deadline killed it); waits for its
/// replacement.
fn crash(corral: &Corral, method: &str, input: &[u8]) {
    let before = corral.plugin("hostile");
    let error = corral.client().call("hostile", method, input).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            Some(corral::ErrorKind::Crashed | corral::ErrorKind::Timeout)
        ),
        "{error}"
    );
    corral.wait_replaced("hostile", before.pid);
}

/// The reports `corral crashes --json` lists, once `count` are there.
fn reports(corral: &Corral, count: usize) -> Vec<CrashSummary> {
    let mut listed = Vec::new();
    corral.wait_until("the crash report is written", || {
        let out = corral.cli(&["crashes", "--json"]);
        assert!(out.status.success(), "{out:?}");
        listed = serde_json::from_slice(&out.stdout).unwrap();
        listed.len() >= count
    });
    listed
}

fn report(corral: &Corral, id: &str) -> CrashReport {
    let out = corral.cli(&["crash", id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn replay(corral: &Corral, id: &str, extra: &[&str]) -> Output {
    let mut args = vec!["replay", id];
    args.extend(extra);
    corral.cli(&args)
}

#[test]
fn a_crash_is_reported_with_its_input_and_replay_reproduces_it() {
    let corral = hostile("");
    for input in [&b"first"[..], b"second"] {
        assert_eq!(
            corral.client().call("hostile", "echo", input).unwrap(),
            input
        );
    }
    crash(&corral, "segfault", b"the input that crashes");
    let listed = reports(&corral, 1);
    let summary = &listed[0];
    assert_eq!(summary.plugin, "hostile");
    assert_eq!(summary.cause, "killed by signal 11 (SIGSEGV)");
    assert_eq!((summary.calls, summary.in_flight), (3, 1));

    let full = report(&corral, &summary.id);
    assert_eq!(full.exit.signal, Some(11));
    assert!(full.inputs_recorded);
    assert_eq!(full.entry_sha256.len(), 64);
    assert!(
        full.layers
            .iter()
            .any(|layer| layer.name == "seccomp" && layer.active)
    );
    let calls: Vec<(&str, &[u8], CallEnd)> = full
        .calls
        .iter()
        .map(|call| (call.method.as_str(), call.input.as_slice(), call.ended))
        .collect();
    assert_eq!(
        calls,
        [
            ("echo", &b"first"[..], CallEnd::Answered),
            ("echo", b"second", CallEnd::Answered),
            ("segfault", b"the input that crashes", CallEnd::InFlight),
        ]
    );
    // The crashing thread, the plugin's frames symbolized from its debug
    // info (the test build has it) when binutils' addr2line is here.
    let in_plugin: Vec<&String> = full
        .backtrace
        .iter()
        .filter(|line| line.contains("(libhostile.so+0x"))
        .collect();
    assert!(!in_plugin.is_empty(), "{:#?}", full.backtrace);
    if Command::new("addr2line").arg("--version").output().is_ok() {
        assert!(
            in_plugin
                .iter()
                .any(|line| line.contains("example-plugins/hostile/battery/src/lib.rs")),
            "{:#?}",
            full.backtrace
        );
    } else {
        eprintln!(
            "SKIPPED symbolized frames: addr2line is not installed (apt-get install binutils)"
        );
    }
    // What an admin reads.
    let text = String::from_utf8(corral.cli(&["crash", &summary.id]).stdout).unwrap();
    assert!(text.contains("killed by signal 11 (SIGSEGV)"), "{text}");
    assert!(
        text.contains("segfault  22 bytes \"the input that crashes\"  → IN FLIGHT"),
        "{text}"
    );
    // The report file is the supervisor's alone.
    let file = corral
        .dir()
        .join(format!("state/crashes/{}.json", summary.id));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let out = replay(&corral, &summary.id, &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        said.contains("killed by signal 11 (SIGSEGV) at call 3 of 3"),
        "{said}"
    );
    assert!(said.contains("reproduced"), "{said}");
    // The serving plugin was not touched by the replay.
    assert_eq!(corral.plugin("hostile").restarts, 1);
}

#[test]
fn an_abort_has_its_backtrace_too() {
    let corral = Corral::builder().hello("hello").start();
    let before = corral.wait_ready("hello");
    assert!(corral.client().call("hello", "crash", b"").is_err());
    corral.wait_replaced("hello", before.pid);
    let summary = reports(&corral, 1).remove(0);
    assert_eq!(summary.cause, "killed by signal 6 (SIGABRT)");
    let full = report(&corral, &summary.id);
    assert!(
        full.backtrace
            .iter()
            .any(|line| line.contains("(libhello.so+0x")),
        "{:#?}",
        full.backtrace
    );
}

#[test]
fn seccomp_and_deadline_kills_reproduce() {
    let corral = hostile("[limits]\ncall_timeout_ms = 300\n");
    crash(&corral, "ptrace", b"");
    crash(&corral, "spin", b"");
    let listed = reports(&corral, 2);
    for (cause, expected) in [
        (ExitCause::Seccomp, "forbidden syscall ptrace"),
        (ExitCause::CallDeadline, "deadline"),
    ] {
        let summary = listed
            .iter()
            .find(|summary| report(&corral, &summary.id).exit.cause == cause)
            .unwrap_or_else(|| panic!("no {cause:?} report in {listed:?}"));
        assert!(summary.cause.contains(expected), "{summary:?}");
        let out = replay(&corral, &summary.id, &["--json"]);
        assert!(out.status.success(), "{cause:?}: {out:?}");
        let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(replayed["reproduced"], true, "{replayed}");
    }
}

#[test]
fn a_recording_disabled_plugin_reports_no_inputs_and_crash_loops_are_counted() {
    let corral =
        hostile("[restart]\nbackoff_ms = 1\nbackoff_max_ms = 1\n\n[debug]\nrecord = false\n");
    crash(&corral, "segfault", b"secret-token-1");
    crash(&corral, "segfault", b"secret-token-2");
    let listed = reports(&corral, 1);
    corral.wait_until("the second crash is counted", || {
        reports(&corral, 1)[0].repeats == 1
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    let full = report(&corral, &listed[0].id);
    assert!(!full.inputs_recorded);
    assert!(
        full.calls.iter().all(|call| call.input.is_empty()),
        "{:?}",
        full.calls
    );
    assert_eq!(full.calls.last().unwrap().input_len, 14);
    let file =
        std::fs::read_to_string(corral.dir().join(format!("state/crashes/{}.json", full.id)))
            .unwrap();
    assert!(!file.contains("secret"));
}

#[test]
fn a_changed_build_is_not_replayed_without_force() {
    let corral = hostile("");
    crash(&corral, "segfault", b"x");
    let id = reports(&corral, 1)[0].id.clone();
    let library = corral.dir().join("plugins/hostile/libhostile.so");
    let mut bytes = std::fs::read(&library).unwrap();
    bytes.extend_from_slice(b"a rebuilt library");
    std::fs::write(&library, bytes).unwrap();
    let out = replay(&corral, &id, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("changed since the crash") && said.contains("--force"),
        "{said}"
    );
    let out = replay(&corral, &id, &["--force"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn crash_reports_are_refused_to_an_app_uid() {
    let Some(nobody) = corral_tests::nobody_or_skip("crash_reports_are_refused") else {
        return;
    };
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .start_with_config(&format!(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\nsocket_mode = \"0666\"\nallowed_uids = [{nobody}]\n"
        ));
    corral.wait_ready("hostile");
    crash(&corral, "segfault", b"x");
    let id = reports(&corral, 1)[0].id.clone();
    for args in [
        vec!["crashes"],
        vec!["crash", id.as_str()],
        vec!["replay", id.as_str()],
    ] {
        let uid = nobody.to_string();
        let out = Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
            .arg(corral_bin())
            .args(&args)
            .arg("--socket")
            .arg(&corral.socket)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("may not read the crash reports of"),
            "{args:?}: {said}"
        );
    }
}

#[test]
fn replay_debug_waits_for_gdb_then_crashes_the_same_way() {
    let corral = hostile("");
    crash(&corral, "segfault", b"under gdb");
    let id = reports(&corral, 1)[0].id.clone();
    let mut replaying = Replaying(Some(
        Command::new(corral_bin())
            .args(["replay", &id, "--debug", "--socket"])
            .arg(&corral.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // The private supervisor names the stopped worker to attach to.
    let stderr = BufReader::new(replaying.child().stderr.take().unwrap());
    let mut pid = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some((_, after)) = line.split_once("debug: worker ") {
            pid = after
                .split_once(" is stopped")
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            assert!(line.contains("gdb -p"), "{line}");
            break;
        }
    }
    let pid = pid.expect("the gdb line");
    corral.wait_until("the worker is stopped", || {
        corral_tests::stat_field(pid, 3).as_deref() == Some("T")
    });
    corral_tests::gdb_attaches(pid);
    corral_tests::send_signal(pid, libc::SIGCONT);
    let out = replaying.0.take().unwrap().wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {out:?}");
    assert!(said.contains("reproduced"), "{said}");
}

/// A `corral replay` running; killed (with its private supervisor, whose
/// workers die with it) if the test fails first.
struct Replaying(Option<std::process::Child>);

impl Replaying {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Replaying {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
