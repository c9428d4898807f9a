//! Plugin storage on SQLite: acknowledged writes survive workers and the
//! supervisor killed with SIGKILL in a loop, batches are whole or absent,
//! paged lists and batches work for native and wasm plugins, an admin
//! reads and repairs a running plugin's storage with `corral kv`, and the
//! per-key files of earlier versions are migrated once, with an event.

use corral::blocking::Client;
use corral_tests::{Corral, Workspace, send_signal};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const KV: &str = "[permissions]\nhost = [\"kv\"]\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Restarted at once however often it is killed.
const QUICK_RESTARTS: &str = "[restart]\nbackoff_ms = 5\nbackoff_max_ms = 10\n";

fn counter(state: &Path) -> Corral {
    let corral = Corral::builder()
        .native_with("counter", "counter", &format!("{KV}{QUICK_RESTARTS}"))
        .state_dir(state)
        .start();
    corral.wait_ready("counter");
    corral
}

fn value(client: &mut Client, name: &str) -> i64 {
    let reply = client.call("counter", "get", name.as_bytes()).unwrap();
    text(&reply)
        .parse()
        .unwrap_or_else(|_| panic!("{name} holds {reply:?}"))
}

/// What a writer saw: the last value acknowledged, and the calls that
/// failed after it (each may or may not have been written).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    acked: i64,
    unsure: i64,
    moves: u64,
}

/// Counts up `count` and moves 1 between `a` and `b` (one batch) until
/// `stop`, through crashes, on its own connection.
fn writer(
    socket: std::path::PathBuf,
    start: i64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen {
            acked: start,
            ..Seen::default()
        };
        let mut client = None;
        while !stop.load(Ordering::Relaxed) {
            let Some(connected) = client.as_mut() else {
                client = Client::connect(&socket).ok();
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            match connected.call("counter", "incr", b"") {
                Ok(reply) => {
                    seen.acked = text(&reply).parse().expect("a count");
                    seen.unsure = 0;
                }
                Err(error) => {
                    seen.unsure += 1;
                    if matches!(
                        error,
                        corral::ClientError::Disconnected | corral::ClientError::Wire(_)
                    ) {
                        client = None;
                    }
                    continue;
                }
            }
            let (from, to) = if seen.moves.is_multiple_of(2) {
                ("a", "b")
            } else {
                ("b", "a")
            };
            if connected
                .call("counter", "move", format!("{from}:{to}:7").as_bytes())
                .is_ok()
            {
                seen.moves += 1;
            }
        }
        seen
    })
}

#[test]
fn acknowledged_writes_survive_kill_9_of_workers_and_the_supervisor_in_a_loop() {
    let state = tempfile::tempdir().unwrap();
    let mut acked = 0;
    let mut moves = 0;
    for round in 0..3 {
        let mut corral = counter(state.path());
        let mut client = corral.client();
        let count = value(&mut client, "count");
        assert!(
            count >= acked,
            "round {round}: count {count} < acknowledged {acked}"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let writing = writer(corral.socket.clone(), count, stop.clone());
        // Workers killed mid-write, five times.
        for kill in 0..5 {
            std::thread::sleep(Duration::from_millis(15 + 10 * kill));
            let pid = corral.plugin("counter").pid;
            send_signal(pid.expect("a worker"), libc::SIGKILL);
            corral.wait_replaced("counter", pid);
        }
        std::thread::sleep(Duration::from_millis(30));
        // Then the supervisor, mid-write: its workers die with it.
        corral.signal(libc::SIGKILL);
        corral.wait_exit();
        stop.store(true, Ordering::Relaxed);
        let seen = writing.join().unwrap();
        assert!(
            seen.acked > count,
            "round {round}: nothing was written: {seen:?}"
        );
        drop(corral);

        let corral = counter(state.path());
        let mut client = corral.client();
        let count = value(&mut client, "count");
        // Every acknowledged increment is there; of the calls that failed
        // after it, some may have been written before their worker died.
        assert!(
            (seen.acked..=seen.acked + seen.unsure).contains(&count),
            "round {round}: count {count} after {seen:?}"
        );
        // A move is one batch: never one half of it.
        let (a, b) = (value(&mut client, "a"), value(&mut client, "b"));
        assert_eq!(a + b, 0, "round {round}: a = {a}, b = {b}");
        acked = seen.acked;
        moves += seen.moves;
    }
    assert!(moves > 0, "no move went through");
}

#[test]
fn native_and_wasm_plugins_page_through_keys_and_write_in_batches() {
    let corral = Corral::builder()
        .native_with("native", "counter", KV)
        .wasm_with("wasm", "counter", KV)
        .start();
    for plugin in ["native", "wasm"] {
        let pid = corral.wait_ready(plugin).pid;
        let mut client = corral.client();
        let mut call = |method: &str, input: &str| {
            client
                .call(plugin, method, input.as_bytes())
                .map(|reply| text(&reply))
                .map_err(|error| error.to_string())
        };
        for name in ["u/1", "u/2", "u/3", "u/4", "u/5", "v"] {
            call("incr", &format!("{name}:1")).unwrap();
        }
        assert_eq!(call("page", "u/||2").unwrap(), "u/1\nu/2\nnext: u/3");
        assert_eq!(call("page", "u/|u/3|2").unwrap(), "u/3\nu/4\nnext: u/5");
        assert_eq!(call("page", "u/|u/5|2").unwrap(), "u/5");
        assert_eq!(call("page", "||100").unwrap().lines().count(), 6);
        let zero = call("page", "u/||0").unwrap_err();
        assert!(
            zero.contains("bad_request") && zero.contains("at least one key"),
            "{zero}"
        );

        assert_eq!(call("move", "u/1:u/2:5").unwrap(), "u/1=-4 u/2=6");
        // A bad key fails the whole batch: u/1 keeps its value.
        let bad = call("move", "u/1:bad\tkey:1").unwrap_err();
        assert!(
            bad.contains("bad_request") && bad.contains("control characters"),
            "{bad}"
        );
        assert_eq!(call("get", "u/1").unwrap(), "-4");
        assert_eq!(call("list", "bad").unwrap(), "");
        assert_eq!(corral.plugin(plugin).pid, pid, "{plugin} kept its worker");
    }
}

#[test]
fn an_admin_reads_and_repairs_a_running_plugins_storage() {
    let state = tempfile::tempdir().unwrap();
    let corral = counter(state.path());
    let mut client = corral.client();
    for input in ["", "", "apples:5", "pears:1"] {
        client.call("counter", "incr", input.as_bytes()).unwrap();
    }
    let kv = |args: &[&str]| {
        let mut command = vec!["kv", "counter"];
        command.extend(args);
        corral.cli(&command)
    };
    let ok = |args: &[&str]| {
        let out = kv(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        text(&out.stdout)
    };
    assert_eq!(ok(&["list"]), "apples\ncount\npears\n");
    assert_eq!(ok(&["list", "p"]), "pears\n");
    assert_eq!(ok(&["get", "count"]), "2");
    let page: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--limit", "2", "--json"])).unwrap();
    assert_eq!(
        page,
        serde_json::json!({ "keys": ["apples", "count"], "next": "pears" })
    );
    let more = kv(&["list", "--limit", "2"]);
    assert!(
        text(&more.stderr).contains("more keys from \"pears\" on"),
        "{more:?}"
    );
    assert_eq!(
        ok(&["get", "apples", "--json"]),
        "{\"key\":\"apples\",\"value\":\"5\"}\n"
    );

    // Repairs reach the running plugin at once.
    assert_eq!(ok(&["put", "count", "100"]), "");
    assert_eq!(text(&client.call("counter", "incr", b"").unwrap()), "101");
    let out = corral.cli_with_stdin(&["kv", "counter", "put", "pears", "-"], b"7");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&client.call("counter", "get", b"pears").unwrap()), "7");
    assert_eq!(
        ok(&["delete", "apples", "--json"]),
        "{\"deleted\":true,\"key\":\"apples\"}\n"
    );
    assert_eq!(
        text(&client.call("counter", "reset", b"apples").unwrap()),
        "absent"
    );

    let missing = kv(&["get", "apples"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(
        text(&missing.stderr).contains("no key \"apples\""),
        "{missing:?}"
    );
    let bad = kv(&["put", "a\nb", "x"]);
    assert!(text(&bad.stderr).contains("control characters"), "{bad:?}");
    let unknown = corral.cli(&["kv", "nobody", "list"]);
    assert!(!unknown.status.success(), "{unknown:?}");
    assert!(text(&unknown.stderr).contains("nobody"), "{unknown:?}");

    let events = text(&corral.cli(&["events", "--plugin", "counter"]).stdout);
    assert!(
        events.contains("storage: \"count\" put by an admin (3 bytes)")
            && events.contains("storage: \"apples\" deleted by an admin"),
        "{events}"
    );
    // The plugin's database, one file, under the state folder.
    assert!(state.path().join("kv/counter.db").is_file());
}

#[test]
fn per_key_files_of_earlier_versions_are_migrated_once_with_an_event() {
    let state = tempfile::tempdir().unwrap();
    let old = state.path().join("kv/counter");
    fs::create_dir_all(&old).unwrap();
    for (file, value) in [
        ("count", "41"),
        ("apples", "5"),
        ("a%20b", "3"),
        (".tmp-count", "99"),
    ] {
        fs::write(old.join(file), value).unwrap();
    }
    let corral = counter(state.path());
    let mut client = corral.client();
    assert_eq!(text(&client.call("counter", "incr", b"").unwrap()), "42");
    assert_eq!(
        text(&client.call("counter", "list", b"").unwrap()),
        "a b\napples\ncount"
    );
    assert!(!old.exists(), "the old files are gone");
    let migrated = |corral: &Corral| {
        text(&corral.cli(&["events", "--plugin", "counter"]).stdout)
            .lines()
            .filter(|line| {
                line.contains("storage migrated: 3 keys (18 bytes) from the per-key files")
            })
            .count()
    };
    assert_eq!(migrated(&corral), 1);
    drop(client);
    drop(corral);

    // Once: a new supervisor finds nothing to move, and the event stays.
    let corral = counter(state.path());
    assert_eq!(value(&mut corral.client(), "count"), 42);
    assert_eq!(migrated(&corral), 1);
}

#[test]
fn the_number_of_keys_has_a_quota_too() {
    let corral = Corral::builder()
        .native_with(
            "counter",
            "counter",
            &format!("{KV}\n[limits]\nstorage_keys = 2\n"),
        )
        .start();
    let pid = corral.wait_ready("counter").pid;
    let mut client = corral.client();
    client.call("counter", "incr", b"a:1").unwrap();
    client.call("counter", "incr", b"b:1").unwrap();
    client.call("counter", "incr", b"b:1").unwrap();
    let error = client
        .call("counter", "incr", b"c:1")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("limit_exceeded")
            && error.contains("2 of 2 keys stored")
            && error.contains("raise [limits] storage_keys"),
        "{error}"
    );
    // Freeing a key makes room; the worker never stopped.
    client.call("counter", "reset", b"a").unwrap();
    client.call("counter", "incr", b"c:1").unwrap();
    assert_eq!(corral.plugin("counter").pid, pid);
    let events = text(&corral.cli(&["events", "--plugin", "counter"]).stdout);
    assert!(
        events.contains("  limit  storage quota exceeded: 2 of 2 keys"),
        "{events}"
    );
}
