//! The plugin lifecycle an admin sees: start, stop, restart, enable and
//! disable over the socket; restart policies, giving up, crash loops and
//! health checks; dependencies; lazy start.

use corral::{ErrorKind, ExitCause, PluginState};
use corral_tests::{Corral, Workspace, is_alive, is_worker, send_signal};
use std::process::Output;

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A plugin folder whose entry is not a library: every start fails.
fn unloadable(
    builder: corral_tests::CorralBuilder,
    name: &str,
    extra: &str,
) -> corral_tests::CorralBuilder {
    let manifest = format!(
        "[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"lib.so\"\napi = 1\n\n{extra}"
    );
    builder.folder(
        name,
        &[
            ("plugin.toml", manifest.as_bytes()),
            ("lib.so", b"\x7fELF but not really"),
        ],
    )
}

#[test]
fn stop_start_and_restart_over_the_socket() {
    let corral = Corral::builder().hello("hello").hello("neighbour").start();
    let first = corral.wait_ready("hello");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");

    let out = ok(&corral.cli(&["stop", "hello"]));
    assert!(out.starts_with("hello: stopped"), "{out}");
    let stopped = corral.plugin("hello");
    assert_eq!(stopped.state, PluginState::Stopped);
    assert_eq!(stopped.pid, None);
    assert!(!corral_tests::is_alive(first.pid.unwrap()));
    let error = corral.client().call("hello", "echo", b"x").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Unavailable), "{error}");
    assert!(error.to_string().contains("is stopped"), "{error}");
    // It stays stopped: no restart behind the admin's back.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(corral.plugin("hello").state, PluginState::Stopped);

    let out = ok(&corral.cli(&["start", "hello"]));
    assert!(out.starts_with("hello: ready, pid "), "{out}");
    let started = corral.plugin("hello");
    assert_eq!(started.state, PluginState::Ready);
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");

    let json = ok(&corral.cli(&["restart", "hello", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["state"], "ready", "{json}");
    assert_ne!(info["pid"].as_u64(), started.pid.map(u64::from));
    assert_eq!(corral.plugin("hello").restarts, 2);
    let last = corral.plugin("hello").last_exit.unwrap();
    assert_eq!(last.cause, ExitCause::Stopped, "{last:?}");

    let error = refused(&corral.cli(&["stop", "nope"]));
    assert!(error.contains("no plugin named `nope`"), "{error}");
    neighbour.finish();
}

#[test]
fn disabled_survives_a_supervisor_restart_until_enabled() {
    let state = tempfile::tempdir().unwrap();
    {
        let corral = Corral::builder()
            .hello("hello")
            .state_dir(state.path())
            .start();
        corral.wait_ready("hello");
        let out = ok(&corral.cli(&["disable", "hello"]));
        assert!(out.starts_with("hello: disabled"), "{out}");
        let error = refused(&corral.cli(&["start", "hello"]));
        assert!(
            error.contains("is disabled: `corral enable hello` first"),
            "{error}"
        );
    }
    let corral = Corral::builder()
        .hello("hello")
        .state_dir(state.path())
        .start();
    corral.wait_until("hello comes back disabled", || {
        corral.plugin("hello").state == PluginState::Disabled
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(corral.plugin("hello").pid, None);
    let out = ok(&corral.cli(&["enable", "hello"]));
    assert!(out.starts_with("hello: ready"), "{out}");
    assert_eq!(
        corral.client().call("hello", "upper", b"on").unwrap(),
        b"ON"
    );
}

#[test]
fn restart_policies_decide_after_an_exit() {
    let corral = Corral::builder()
        .native_with("never", "hostile", "[restart]\npolicy = \"never\"\n")
        .native_with(
            "on-failure",
            "hostile",
            "[restart]\npolicy = \"on-failure\"\n",
        )
        .start();
    corral.wait_ready("never");
    corral.wait_ready("on-failure");
    let mut client = corral.client();
    // A clean exit 0: on-failure does not restart, and neither does never.
    let _ = client.call("on-failure", "exit", b"0");
    corral.wait_until("on-failure stays stopped", || {
        corral.plugin("on-failure").state == PluginState::Stopped
    });
    // A crash: on-failure restarts; never gives up.
    corral.cli(&["start", "on-failure"]);
    let before = corral.wait_ready("on-failure");
    let _ = client.call("on-failure", "exit", b"3");
    corral.wait_replaced("on-failure", before.pid);
    let _ = client.call("never", "exit", b"3");
    corral.wait_until("never has failed", || {
        corral.plugin("never").state == PluginState::Failed
    });
    let never = corral.plugin("never");
    assert!(
        never
            .error
            .as_deref()
            .unwrap_or("")
            .contains("policy is \"never\""),
        "{never:?}"
    );
    // An admin's start overrides.
    ok(&corral.cli(&["start", "never"]));
    assert_eq!(client.call("never", "echo", b"back").unwrap(), b"back");
}

#[test]
fn give_up_after_repeated_failures_and_crash_loop_before_that() {
    let corral = unloadable(
        unloadable(
            Corral::builder(),
            "gives-up",
            "[restart]\ngive_up_after = 3\nbackoff_ms = 1\n",
        ),
        "loops",
        "[restart]\nbackoff_ms = 1\nbackoff_max_ms = 50\n",
    )
    .hello("neighbour")
    .start();
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_until("gives-up has failed", || {
        corral.plugin("gives-up").state == PluginState::Failed
    });
    let gave_up = corral.plugin("gives-up");
    assert!(
        gave_up
            .error
            .as_deref()
            .unwrap_or("")
            .contains("gave up after 3 failures in a row"),
        "{gave_up:?}"
    );
    assert_eq!(gave_up.restarts, 2, "{gave_up:?}");
    corral.wait_until("loops is in a crash loop", || {
        corral.plugin("loops").state == PluginState::Crashloop
    });
    // Still retried: its start count keeps growing.
    let restarts = corral.plugin("loops").restarts;
    corral.wait_until("loops is retried", || {
        corral.plugin("loops").restarts > restarts
    });
    assert!(corral.log().contains("crash loop"), "{}", corral.log());
    neighbour.finish();
}

#[test]
fn failing_health_checks_make_it_unhealthy_then_restart_it() {
    let corral = Corral::builder()
        .native_with(
            "sick",
            "hostile",
            "[health]\ninterval_ms = 100\ntimeout_ms = 1000\nfailures = 3\n",
        )
        .start();
    let first = corral.wait_ready("sick");
    let mut client = corral.client();
    assert_eq!(client.call("sick", "sick", b"").unwrap(), b"sick");
    corral.wait_until("sick is unhealthy", || {
        corral.plugin("sick").state == PluginState::Unhealthy
    });
    let unhealthy = corral.plugin("sick");
    assert!(
        unhealthy
            .error
            .as_deref()
            .unwrap_or("")
            .contains("health check failed (1 of 3): the plugin reports itself unhealthy"),
        "{unhealthy:?}"
    );
    // Still serving while unhealthy.
    assert_eq!(client.call("sick", "echo", b"still").unwrap(), b"still");
    let replaced = corral.wait_replaced("sick", first.pid);
    let exit = replaced.last_exit.unwrap();
    assert_eq!(exit.cause, ExitCause::Unhealthy, "{exit:?}");
    assert!(exit.description.contains("3 health checks"), "{exit:?}");
}

#[test]
fn dependencies_are_resolved_and_failures_name_the_chain() {
    let builder = Corral::builder()
        .hello("storage")
        .native_with("app", "hello", "[dependencies]\nstorage = \"^1\"\n")
        .native_with("orphan", "hello", "[dependencies]\nmissing = \"^1.2\"\n")
        .native_with("picky", "hello", "[dependencies]\nstorage = \"^2\"\n")
        .native_with("chained", "hello", "[dependencies]\npicky = \"1\"\n");
    let corral = builder.start();
    corral.wait_ready("storage");
    corral.wait_ready("app");
    let error = |name: &str| corral.plugin(name).error.unwrap_or_default();
    for name in ["orphan", "picky", "chained"] {
        assert_eq!(corral.plugin(name).state, PluginState::Failed, "{name}");
    }
    assert!(
        error("orphan").contains("orphan 1.0.0 needs missing ^1.2, which is not installed"),
        "{}",
        error("orphan")
    );
    assert!(
        error("picky").contains("picky 1.0.0 needs storage ^2, found storage 1.0.0"),
        "{}",
        error("picky")
    );
    assert!(
        error("chained").contains(
            "chained 1.0.0 needs picky ^1, which cannot start: picky 1.0.0 needs storage ^2"
        ),
        "{}",
        error("chained")
    );
    let refusal = refused(&corral.cli(&["start", "orphan"]));
    assert!(refusal.contains("cannot start"), "{refusal}");
    assert_eq!(corral.client().call("app", "upper", b"ok").unwrap(), b"OK");
}

#[test]
fn a_lazy_plugin_starts_on_its_first_call() {
    let corral = Corral::builder()
        .native_with("lazy", "hello", "start = \"lazy\"\n")
        .hello("eager")
        .start();
    corral.wait_ready("eager");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let idle = corral.plugin("lazy");
    assert_eq!(idle.state, PluginState::Installed, "{idle:?}");
    assert_eq!(idle.pid, None);
    assert_eq!(
        corral.client().call("lazy", "upper", b"wake").unwrap(),
        b"WAKE"
    );
    let woken = corral.plugin("lazy");
    assert_eq!(woken.state, PluginState::Ready);
    assert!(woken.pid.is_some());
}

#[test]
fn a_sha256_mismatch_fails_the_plugin_with_both_hashes() {
    let library = corral_tests::artifact("libhello.so");
    let sum = std::process::Command::new("sha256sum")
        .arg(&library)
        .output()
        .unwrap();
    let actual = String::from_utf8(sum.stdout).unwrap()[..64].to_owned();
    let wrong = "0".repeat(64);
    let corral = Corral::builder()
        .native_with("pinned", "hello", &format!("sha256 = \"{actual}\"\n"))
        .native_with("tampered", "hello", &format!("sha256 = \"{wrong}\"\n"))
        .start();
    corral.wait_ready("pinned");
    corral.wait_until("tampered has failed", || {
        corral.plugin("tampered").state == PluginState::Failed
    });
    let error = corral.plugin("tampered").error.unwrap_or_default();
    assert!(
        error.contains(&format!("sha256 mismatch: plugin.toml says {wrong}"))
            && error.contains(&actual),
        "{error}"
    );
    // Nothing of it ran.
    assert_eq!(corral.plugin("tampered").pid, None);
    assert_eq!(corral.plugin("tampered").restarts, 0);
    // Fixing the manifest is a reload, and a new try.
    let manifest = corral.dir().join("plugins/tampered/plugin.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(&wrong, &actual);
    std::fs::write(&manifest, text).unwrap();
    let fixed = corral.wait_ready("tampered");
    assert_eq!(
        fixed.generation, 1,
        "the first version that served: {fixed:?}"
    );
    assert_eq!(fixed.error, None);
}

#[test]
fn max_plugins_caps_running_workers() {
    let corral = Corral::builder()
        .hello("alpha")
        .hello("beta")
        .start_with_config("plugins = [\"plugins\"]\nsocket = \"corral.sock\"\nmax_plugins = 1\n");
    corral.wait_until("one of them runs", || {
        corral.list().iter().any(|p| p.state == PluginState::Ready)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let plugins = corral.list();
    let ready: Vec<_> = plugins
        .iter()
        .filter(|p| p.state == PluginState::Ready)
        .collect();
    let waiting: Vec<_> = plugins
        .iter()
        .filter(|p| p.state == PluginState::Installed)
        .collect();
    assert_eq!((ready.len(), waiting.len()), (1, 1), "{plugins:?}");
    assert!(
        waiting[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("max_plugins"),
        "{plugins:?}"
    );
    let (running, other) = (ready[0].name.clone(), waiting[0].name.clone());
    ok(&corral.cli(&["stop", &running]));
    corral.wait_ready(&other);
}

#[test]
fn kill_sends_a_signal_and_the_policy_restarts() {
    let corral = Corral::builder().hello("hello").hello("neighbour").start();
    let first = corral.wait_ready("hello");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    let out = ok(&corral.cli(&["kill", "hello", "-s", "TERM"]));
    assert_eq!(
        out.trim(),
        format!("hello: sent TERM to worker {}", first.pid.unwrap())
    );
    let second = corral.wait_replaced("hello", first.pid);
    let exit = second.last_exit.unwrap();
    assert_eq!(exit.signal, Some(libc::SIGTERM), "{exit:?}");
    ok(&corral.cli(&["stop", "hello"]));
    let error = refused(&corral.cli(&["kill", "hello"]));
    assert!(
        error.contains("has no worker to signal (it is stopped)"),
        "{error}"
    );
    let bad = corral.cli(&["kill", "hello", "-s", "NOPE"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    neighbour.finish();
}

#[test]
fn events_tell_what_happened_and_can_be_followed() {
    let corral = Corral::builder().hello("hello").hello("other").start();
    let first = corral.wait_ready("hello");
    corral.wait_ready("other");
    corral_tests::send_signal(first.pid.unwrap(), libc::SIGKILL);
    corral.wait_replaced("hello", first.pid);
    ok(&corral.cli(&["stop", "hello"]));

    let json = ok(&corral.cli(&["events", "--json", "--plugin", "hello"]));
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let said: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect();
    let position = |needle: &str| {
        said.iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no event with {needle:?} in {said:#?}"))
    };
    let ready = position("state starting -> ready");
    let killed = position(&format!(
        "exit worker {} killed by signal 9",
        first.pid.unwrap()
    ));
    let stop = position("admin corral stop hello");
    let stopped = position("state stopping -> stopped");
    assert!(
        ready < killed && killed < stop && stop < stopped,
        "{said:#?}"
    );
    assert!(events.iter().all(|e| e["plugin"] == "hello"), "{said:#?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Followed: a new event shows up on the running `corral events -f`.
    let mut follower = std::process::Command::new(corral_tests::corral_bin())
        .args(["events", "-f", "--plugin", "other", "--socket"])
        .arg(&corral.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    // Should the event never come, end the follower rather than hang.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard = {
        let (done, pid) = (done.clone(), follower.id());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if start.elapsed() > corral_tests::WAIT {
                    corral_tests::send_signal(pid, libc::SIGKILL);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    ok(&corral.cli(&["restart", "other"]));
    let found = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains("admin  corral restart other"));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    guard.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(found.is_some_and(|line| line.contains("  other  gen 1  ")));
}

#[test]
fn ps_shows_each_workers_memory_and_cpu() {
    let corral = Corral::builder()
        .hello("idle")
        .native_with("busy", "hostile", "[limits]\nmemory_mb = 128\n")
        .start();
    corral.wait_ready("idle");
    corral.wait_ready("busy");
    // A background thread that spins; the call itself returns at once.
    let reply = corral.client().call("busy", "spin-thread", b"").unwrap();
    assert_eq!(reply, b"spinning in the background");
    corral.wait_until("the busy worker's CPU use shows", || {
        corral
            .plugin("busy")
            .cpu_percent
            .is_some_and(|cpu| cpu >= 20)
    });
    corral.wait_until("the idle worker's CPU use shows", || {
        corral.plugin("idle").cpu_percent.is_some()
    });
    let idle = corral.plugin("idle");
    assert!(idle.cpu_percent.unwrap() < 20, "{idle:?}");
    let busy = corral.plugin("busy");
    let rss = busy.rss_bytes.unwrap();
    assert!((256 * 1024..128 * 1024 * 1024).contains(&rss), "{busy:?}");
    assert_eq!(busy.memory_limit_bytes, Some(128 * 1024 * 1024));
    let table = ok(&corral.cli(&["ps"]));
    let row = table.lines().find(|line| line.starts_with("busy")).unwrap();
    assert!(row.contains("M/128M"), "{table}");
}

/// `Seccomp:` and `NoNewPrivs:` of a live process, from `/proc`.
fn confinement(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
            .unwrap_or_default()
    };
    (field("Seccomp:"), field("NoNewPrivs:"))
}

fn spare_of(corral: &Corral, name: &str, not: Option<u32>) -> u32 {
    let mut spare = None;
    corral.wait_until(&format!("{name} has a spare"), || {
        spare = corral
            .plugin(name)
            .spare_pid
            .filter(|&pid| Some(pid) != not);
        spare.is_some()
    });
    spare.expect("checked")
}

#[test]
fn a_spare_worker_stands_by_sandboxed_and_takes_over_a_crash() {
    let corral = Corral::builder()
        .native_with("hello", "hello", "[restart]\nspare = true\n")
        .hello("plain")
        .start();
    let serving = corral.wait_ready("hello").pid.unwrap();
    let spare = spare_of(&corral, "hello", None);
    assert_ne!(spare, serving);
    assert!(is_worker(spare), "the spare is a worker process");
    // Confined before any plugin code could run in it.
    assert_eq!(confinement(spare), ("2".to_owned(), "1".to_owned()));
    assert_eq!(corral.plugin("plain").spare_pid, None, "spares are opt-in");

    send_signal(serving, libc::SIGKILL);
    let after = corral.wait_replaced("hello", Some(serving));
    assert_eq!(after.pid, Some(spare), "the spare took over");
    assert_eq!(
        corral.client().call("hello", "echo", b"again").unwrap(),
        b"again"
    );
    let next = spare_of(&corral, "hello", Some(spare));
    assert!(is_worker(next));

    // A reload makes a spare of the new files; a stop ends it.
    let manifest = corral.dir().join("plugins/hello/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("1.0.0", "1.0.1")).unwrap();
    corral.wait_until("generation 2 serves", || {
        corral.plugin("hello").generation == 2
    });
    let reloaded = spare_of(&corral, "hello", Some(next));
    corral.wait_until("the old spare is gone", || !is_alive(next));
    assert!(corral.cli(&["stop", "hello"]).status.success());
    corral.wait_until("the spare is gone after a stop", || !is_alive(reloaded));
    assert_eq!(corral.plugin("hello").spare_pid, None);
}

#[test]
fn a_spare_killed_while_waiting_is_reaped_and_replaced() {
    let corral = Corral::builder()
        .native_with("hello", "hello", "[restart]\nspare = true\n")
        .start();
    let serving = corral.wait_ready("hello").pid.unwrap();
    let spare = spare_of(&corral, "hello", None);
    send_signal(spare, libc::SIGKILL);
    // Reaped, not left a zombie, and another one made.
    corral.wait_until("the killed spare is reaped", || {
        !std::path::Path::new(&format!("/proc/{spare}")).exists()
    });
    let next = spare_of(&corral, "hello", Some(spare));
    assert!(is_worker(next));
    assert_eq!(
        corral.plugin("hello").pid,
        Some(serving),
        "the serving worker is untouched"
    );
    assert_eq!(corral.plugin("hello").restarts, 0);
    send_signal(serving, libc::SIGKILL);
    let after = corral.wait_replaced("hello", Some(serving));
    assert_eq!(after.pid, Some(next));
    assert_eq!(after.restarts, 1);
    assert_eq!(corral.client().call("hello", "echo", b"up").unwrap(), b"up");
}

#[test]
fn workers_are_named_for_ps_top_and_pgrep() {
    let corral = Corral::builder().hello("hello").start();
    let pid = corral.wait_ready("hello").pid.expect("a worker");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim_end(), "corral-worker");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.starts_with("corral-worker: hello@"), "{cmdline}");
}
