//! The seccomp policy with runtimes nobody here wrote (CPython embedded in
//! a C plugin, a tokio runtime in a Rust one), and the profiler that
//! finds what a plugin needs beyond the baseline: `corral profile` and
//! `corral serve --profile`, by the real binary. The tiers themselves are
//! tested against the hostile battery in `sandbox.rs`.

use corral_plugin_api::seccomp::Tier;
use corral_tests::{Corral, Workspace, corral_bin};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("example-plugins")
        .join(path)
}

/// Builds the CPython plugin into `dir` with its own Makefile, against
/// Debian's libpython3-dev (which `tests/run.sh` installs).
fn build_python(dir: &Path) {
    assert!(
        Path::new("/usr/bin/python3-config").exists(),
        "Debian's libpython3-dev is missing: tests/run.sh installs it (apt-get install libpython3-dev)"
    );
    fs::create_dir_all(dir).expect("plugin folder");
    let source = example("runtimes/python");
    let output = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&source)
        .arg(format!("OUT={}", dir.display()))
        .output()
        .expect("run make");
    assert!(
        output.status.success(),
        "make failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    fs::copy(source.join("plugin.toml"), dir.join("plugin.toml")).expect("copy plugin.toml");
}

fn profile(args: &[&str]) -> Output {
    Command::new(corral_bin())
        .arg("profile")
        .args(args)
        .output()
        .expect("run corral profile")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn cpython_embedded_in_a_c_plugin_runs_under_the_default_policy() {
    let builder = Corral::builder().hello("neighbour");
    build_python(&builder.plugins_dir().join("python"));
    let corral = builder.start();
    corral.wait_ready("python");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let mut client = corral.client();
    assert_eq!(
        client.call("python", "eval", b"sum(range(10))").unwrap(),
        b"45"
    );
    let digest = String::from_utf8(client.call("python", "digest", b"hello").unwrap()).unwrap();
    assert_eq!(
        digest,
        r#"{"bytes": 5, "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#
    );
    // Landlock still holds: the standard library is readable, /etc not.
    let error = client
        .call("python", "eval", b"open('/etc/hostname').read()")
        .unwrap_err();
    assert!(error.to_string().contains("Permission denied"), "{error}");
    let details = client.inspect("python").unwrap();
    assert!(details.refused.is_empty(), "{:?}", details.refused);
    assert_eq!(details.info.restarts, 0);
    neighbour.finish();
}

#[test]
fn a_tokio_runtime_with_timers_and_a_pipe_runs_under_the_default_policy() {
    let corral = Corral::builder()
        .native("tokio-relay", "tokio-relay")
        .hello("neighbour")
        .start();
    corral.wait_ready("tokio-relay");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let mut client = corral.client();
    let pid = corral.plugin("tokio-relay").pid;
    for _ in 0..3 {
        assert_eq!(
            client
                .call("tokio-relay", "relay", b"through a pipe, after a timer")
                .unwrap(),
            b"through a pipe, after a timer"
        );
    }
    let ticks = String::from_utf8(client.call("tokio-relay", "ticks", b"20").unwrap()).unwrap();
    assert!(ticks.starts_with("20 ticks in "), "{ticks}");
    let details = client.inspect("tokio-relay").unwrap();
    assert!(details.refused.is_empty(), "{:?}", details.refused);
    assert_eq!(corral.plugin("tokio-relay").pid, pid);
    neighbour.finish();
}

#[test]
fn profile_prints_the_syscalls_line_that_makes_a_plugin_work() {
    let builder = Corral::builder().native("needy", "hostile");
    let dir = builder.plugins_dir().join("needy");
    let path = dir.to_str().unwrap();
    let output = profile(&[
        path,
        "--call",
        "syscall",
        "inotify_init1 0",
        "--call",
        "echo",
        "still here",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{output:?}");
    assert!(text.contains("  start   ok\n"), "{text}");
    assert!(
        text.contains("  call    syscall \"inotify_init1 0\": ok: \"inotify_init1 returned "),
        "{text}"
    );
    assert!(
        text.contains("  call    echo \"still here\": ok: \"still here\"\n"),
        "{text}"
    );
    assert!(text.contains("  inotify_init1            1\n"), "{text}");
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("syscalls = "))
        .unwrap_or_else(|| panic!("no syscalls line: {text}"))
        .trim()
        .to_owned();
    assert_eq!(line, r#"syscalls = ["inotify_init1"]"#);

    // The line, pasted into the manifest, makes it work under enforcement.
    let manifest = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{text}\n[permissions]\n{line}\n")).unwrap();
    let corral = builder.start();
    corral.wait_ready("needy");
    let reply = corral
        .client()
        .call("needy", "syscall", b"inotify_init1 0")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("inotify_init1 returned "), "{reply}");
    assert!(corral.client().inspect("needy").unwrap().refused.is_empty());

    // Profiled again, the manifest's own list is compared with the profile.
    let output = profile(&[path, "--call", "echo", "x"]);
    let text = stdout(&output);
    assert!(
        text.contains(
            "plugin.toml lists syscalls = [\"inotify_init1\"]; not made in this profile: inotify_init1"
        ),
        "{text}"
    );
}

#[test]
fn profile_reports_a_killing_syscall_without_dying_and_exits_1() {
    let builder = Corral::builder().native("escaper", "hostile");
    let dir = builder.plugins_dir().join("escaper");
    let output = profile(&[
        dir.to_str().unwrap(),
        "--call",
        "syscall",
        "unshare 0x10000000",
        "--call",
        "echo",
        "after",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["plugin"], "escaper");
    assert_eq!(report["kill"], serde_json::json!(["unshare"]));
    assert_eq!(report["syscalls"], serde_json::json!([]));
    assert_eq!(report["line"], serde_json::Value::Null);
    assert_eq!(
        report["calls"][0]["reply"],
        "unshare failed: errno 1 (Operation not permitted (os error 1))"
    );
    assert_eq!(report["calls"][1]["reply"], "after");
    assert_eq!(report["counts"][0]["tier"], "kill");
    assert_eq!(report["start_error"], serde_json::Value::Null);
}

#[test]
fn profile_of_plugins_within_the_baseline_finds_nothing_to_add() {
    let builder = Corral::builder()
        .hello("hello")
        .native("tokio-relay", "tokio-relay");
    build_python(&builder.plugins_dir().join("python"));
    for (plugin, method, input) in [
        ("hello", "upper", "hi"),
        ("python", "digest", "x"),
        ("tokio-relay", "relay", "x"),
    ] {
        let dir = builder.plugins_dir().join(plugin);
        let output = profile(&[dir.to_str().unwrap(), "--call", method, input]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}{output:?}");
        assert!(
            text.contains("nothing beyond the baseline: no [permissions] syscalls needed"),
            "{}: {text}",
            dir.display()
        );
    }
}

#[test]
fn profile_refuses_a_bad_manifest_naming_the_line() {
    let builder = Corral::builder().native_with(
        "bad",
        "hostile",
        "[permissions]\nsyscalls = [\"process_vm_writev\"]\n",
    );
    let dir = builder.plugins_dir().join("bad");
    let output = profile(&[dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("plugin.toml:9:")
            && error.contains("\"process_vm_writev\" can never be allowed"),
        "{error}"
    );
    let check = Command::new(corral_bin())
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(stdout(&check).contains("can never be allowed"), "{check:?}");
}

#[test]
fn an_ordinary_user_can_profile_a_plugin() {
    let Some(nobody) = corral_tests::nobody_or_skip("an_ordinary_user_can_profile_a_plugin") else {
        return;
    };
    let builder = Corral::builder().native("needy", "hostile");
    let dir = builder.plugins_dir().join("needy");
    let id = nobody.to_string();
    let output = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .arg(corral_bin())
        .args([
            "profile",
            dir.to_str().unwrap(),
            "--call",
            "syscall",
            "inotify_init1 0",
        ])
        .env("TMPDIR", "/tmp")
        .output()
        .expect("run corral profile as nobody");
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{output:?}");
    assert!(
        text.contains("  syscalls = [\"inotify_init1\"]\n"),
        "{text}"
    );
}

#[test]
fn serve_profile_lets_refused_syscalls_through_and_refuses_killing_ones() {
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .hello("neighbour")
        .arg("--profile")
        .arg("hostile")
        .start();
    corral.wait_ready("hostile");
    corral.wait_ready("neighbour");
    let pid = corral.plugin("hostile").pid;
    let mut client = corral.client();
    let made = String::from_utf8(
        client
            .call("hostile", "syscall", b"inotify_init1 0")
            .unwrap(),
    )
    .unwrap();
    assert!(made.starts_with("inotify_init1 returned "), "{made}");
    let refused = String::from_utf8(
        client
            .call("hostile", "syscall", b"unshare 0x10000000")
            .unwrap(),
    )
    .unwrap();
    assert!(refused.starts_with("unshare failed: errno 1"), "{refused}");
    assert_eq!(
        corral.plugin("hostile").pid,
        pid,
        "nothing kills while profiling"
    );

    let details = client.inspect("hostile").unwrap();
    let seen: Vec<(&str, Tier, u64)> = details
        .refused
        .iter()
        .map(|refusal| (refusal.syscall.as_str(), refusal.tier, refusal.count))
        .collect();
    assert!(
        seen.contains(&("inotify_init1", Tier::Refuse, 1)),
        "{seen:?}"
    );
    assert!(seen.contains(&("unshare", Tier::Kill, 1)), "{seen:?}");
    let mut layer = |name: &str| {
        let details = client.inspect(name).unwrap();
        details
            .layers
            .into_iter()
            .find(|layer| layer.name == "seccomp")
            .unwrap()
    };
    assert!(layer("hostile").detail.starts_with("profiling: "));
    assert!(
        !layer("neighbour").detail.starts_with("profiling"),
        "only the one named"
    );
    let text = stdout(&corral.cli(&["inspect", "hostile"]));
    assert!(text.contains("unshare 1 (kill tier)"), "{text}");
    let events = stdout(&corral.cli(&["events", "--plugin", "hostile"]));
    assert!(
        events.contains("profiling: syscall inotify_init1 (") && events.contains("let through"),
        "{events}"
    );
}

/// The README's tables are the policy's groups, name for name: a change to
/// one without the other fails here.
#[test]
fn the_readme_lists_the_policy_the_worker_enforces() {
    use corral_plugin_api::seccomp::{ALLOW, ALLOW_IN_FORM, Group, KILL, REFUSE};
    let readme = fs::read_to_string(example("../README.md")).expect("README.md");
    let start = readme
        .find("### Syscalls: allow, refuse, kill")
        .expect("the Syscalls section");
    let section = &readme[start..];
    let row = |first_cell: &str| -> Vec<String> {
        let line = section
            .lines()
            .find(|line| line.starts_with(&format!("| {first_cell} |")))
            .unwrap_or_else(|| panic!("README has no row for {first_cell:?}"));
        let names = line.rsplit('|').nth(1).expect("a second cell");
        names
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let groups: Vec<&Group> = ALLOW.iter().chain(KILL).chain(REFUSE).collect();
    for group in groups {
        assert_eq!(row(group.reason), group.syscalls, "{}", group.reason);
    }
    for form in ALLOW_IN_FORM {
        let line = section
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", form.name)))
            .unwrap_or_else(|| panic!("README has no row for {}", form.name));
        assert!(
            line.contains(form.allowed)
                && line.ends_with(&format!("| {} |", form.otherwise.as_str())),
            "{line}"
        );
    }
}
