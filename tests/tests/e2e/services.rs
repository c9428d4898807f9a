//! Host services (storage, the event bus, calls into a dependency) through
//! the example plugins, native and wasm, and what an admin sees of them:
//! log files, events, metrics.

use corral::ErrorKind;
use corral_tests::{Corral, Workspace, send_signal};
use std::fs;
use std::io::{Read, Write};
use std::time::Duration;

const KV: &str = "[permissions]\nhost = [\"kv\"]\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_kv_counter_survives_kill_9_and_a_supervisor_restart() {
    let state = tempfile::tempdir().unwrap();
    let corral = Corral::builder()
        .native_with("counter", "counter", KV)
        .state_dir(state.path())
        .start();
    corral.wait_ready("counter");
    let mut client = corral.client();
    for expected in ["1", "2", "3"] {
        assert_eq!(
            text(&client.call("counter", "incr", b"").unwrap()),
            expected
        );
    }
    assert_eq!(
        text(&client.call("counter", "incr", b"apples:5").unwrap()),
        "5"
    );
    // The value is in the plugin's database under the state folder.
    assert!(state.path().join("kv/counter.db").is_file());
    assert_eq!(corral.cli(&["kv", "counter", "get", "count"]).stdout, b"3");

    let pid = corral.plugin("counter").pid;
    send_signal(pid.expect("a worker"), libc::SIGKILL);
    let replaced = corral.wait_replaced("counter", pid).pid.unwrap();
    assert_eq!(text(&client.call("counter", "incr", b"").unwrap()), "4");
    // The new worker read the count in its `init`.
    let logs = text(&corral.cli(&["logs", "counter"]).stdout);
    assert!(
        logs.lines()
            .any(|line| line.contains(&format!(" pid={replaced} "))
                && line.ends_with("counter starts at 3")),
        "{logs}"
    );
    drop(client);
    drop(corral);

    // A new supervisor on the same state folder.
    let corral = Corral::builder()
        .native_with("counter", "counter", KV)
        .state_dir(state.path())
        .start();
    corral.wait_ready("counter");
    let mut client = corral.client();
    assert_eq!(text(&client.call("counter", "get", b"").unwrap()), "4");
    assert_eq!(
        text(&client.call("counter", "list", b"").unwrap()),
        "apples\ncount"
    );
    assert_eq!(
        text(&client.call("counter", "reset", b"apples").unwrap()),
        "deleted"
    );
    assert_eq!(
        text(&client.call("counter", "reset", b"apples").unwrap()),
        "absent"
    );
}

#[test]
fn wasm_and_native_plugins_get_the_same_storage_each_their_own() {
    let corral = Corral::builder()
        .native_with("native", "counter", KV)
        .wasm_with("wasm", "counter", KV)
        .start();
    corral.wait_ready("native");
    corral.wait_ready("wasm");
    let mut client = corral.client();
    for _ in 0..3 {
        client.call("wasm", "incr", b"").unwrap();
    }
    assert_eq!(text(&client.call("native", "get", b"").unwrap()), "0");
    assert_eq!(text(&client.call("wasm", "get", b"").unwrap()), "3");
    assert_eq!(text(&client.call("wasm", "incr", b"b:2").unwrap()), "2");
    assert_eq!(text(&client.call("wasm", "list", b"").unwrap()), "b\ncount");
    assert_eq!(text(&client.call("wasm", "list", b"c").unwrap()), "count");
    assert_eq!(
        text(&client.call("wasm", "reset", b"b").unwrap()),
        "deleted"
    );
    let error = client.call("wasm", "incr", b"bad\nkey:1").unwrap_err();
    assert!(
        error.to_string().contains("bad_request") && error.to_string().contains("control"),
        "{error}"
    );
}

#[test]
fn a_host_service_the_manifest_does_not_grant_is_refused_and_recorded() {
    let corral = Corral::builder()
        .native("counter", "counter")
        .native_with("ticker", "ticker", KV)
        .start();
    let pid = corral.wait_ready("counter").pid;
    corral.wait_ready("ticker");
    let mut client = corral.client();
    let error = client.call("counter", "incr", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("permission_denied")
            && message.contains("may not use host service `kv_get:count`")
            && message.contains("add \"kv\" to [permissions] host"),
        "{message}"
    );
    let error = client.call("ticker", "tick", b"x").unwrap_err();
    assert!(error.to_string().contains("add \"publish\""), "{error}");
    // The plugin keeps serving, in the same worker.
    assert_eq!(corral.plugin("counter").pid, pid);
    assert_eq!(
        client.call("counter", "nope", b"").unwrap_err().kind(),
        Some(ErrorKind::UnknownMethod)
    );

    let events = corral.cli(&["events", "--json", "--plugin", "counter"]);
    let events = text(&events.stdout);
    assert!(
        events
            .lines()
            .any(|line| line.contains("\"kind\":\"denied\"") && line.contains("kv_get:count")),
        "{events}"
    );
}

#[test]
fn storage_stops_at_the_quota_and_says_so() {
    let corral = Corral::builder()
        .native_with(
            "filler",
            "hostile",
            "[permissions]\nhost = [\"kv\"]\n\n[limits]\nstorage_mb = 1\n",
        )
        .start();
    corral.wait_ready("filler");
    let mut client = corral.client();
    let reply = text(&client.call("filler", "kv-fill", b"").unwrap());
    // 15 blocks of 64 KiB plus their keys fit in 1 MiB; the 16th does not.
    assert!(
        reply.starts_with("stored 15 blocks, then limit_exceeded: storage quota exceeded"),
        "{reply}"
    );
    assert!(reply.contains("raise [limits] storage_mb"), "{reply}");
    let events = text(&corral.cli(&["events", "--plugin", "filler"]).stdout);
    assert!(
        events.contains("  limit  storage quota exceeded"),
        "{events}"
    );
}

#[test]
fn a_publication_reaches_subscribed_plugins_and_host_apps() {
    let corral = Corral::builder()
        .native_with("ticker", "ticker", "[permissions]\nhost = [\"publish\"]\n")
        .native_with("tally", "tally", "[events]\nsubscribe = [\"ticks\"]\n")
        .native_with("other", "tally", "[events]\nsubscribe = [\"news.*\"]\n")
        .start();
    for plugin in ["ticker", "tally", "other"] {
        corral.wait_ready(plugin);
    }
    // A host app subscribed to everything, on a connection of its own.
    let (sender, received) = std::sync::mpsc::channel();
    let subscription = corral.client().subscribe(&["*"]).unwrap();
    std::thread::spawn(move || {
        for message in subscription {
            if sender.send(message.unwrap()).is_err() {
                return;
            }
        }
    });

    let mut client = corral.client();
    for n in 1..=3 {
        client
            .call("ticker", "tick", format!("{n}").as_bytes())
            .unwrap();
    }
    corral.wait_until("tally counted 3 ticks", || {
        client.call("tally", "count", b"").unwrap() == b"3"
    });
    assert_eq!(text(&client.call("tally", "last", b"").unwrap()), "ticks 3");
    for n in 1..=3 {
        let message = received.recv_timeout(corral_tests::WAIT).unwrap();
        assert_eq!(
            (
                message.topic.as_str(),
                message.from.as_str(),
                message.payload
            ),
            ("ticks", "ticker", format!("{n}").into_bytes())
        );
    }

    // A host app publishes too; patterns pick the subscribers.
    let out = corral.cli(&["publish", "news.sports", "goal", "--json"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "{\"delivered\":2}",
        "{}",
        text(&out.stderr)
    );
    corral.wait_until("other got the news", || {
        client.call("other", "last", b"").unwrap() == b"news.sports goal"
    });
    let message = received.recv_timeout(corral_tests::WAIT).unwrap();
    assert_eq!(
        (message.topic.as_str(), message.from.as_str()),
        ("news.sports", "")
    );
    assert_eq!(text(&client.call("tally", "count", b"").unwrap()), "3");
    let bad = corral.cli(&["publish", "bad topic"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("is not allowed in a topic"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn the_corral_subscribe_command_prints_publications() {
    let corral = Corral::builder().start();
    let mut subscriber = corral.follow(&["subscribe", "alerts", "--json"]);
    // Published until the subscription is in place.
    let mut client = corral.client();
    corral.wait_until("the subscriber is counted", || {
        client.publish("alerts", b"ping").unwrap() == 1
    });
    let line = subscriber.find("a message", |_| true);
    let message: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(message["topic"], "alerts");
    assert_eq!(message["payload"], "ping");
    assert_eq!(message["from"], "");
}

#[test]
fn a_plugin_calls_its_dependency_native_and_wasm() {
    let greeter = "[dependencies]\nhello = \"^1\"\n\n[permissions]\nhost = [\"call:hello\"]\n";
    let corral = Corral::builder()
        .hello("hello")
        .hello("bystander")
        .native_with("greeter", "greeter", greeter)
        .wasm_with("wasm-greeter", "greeter", greeter)
        .start();
    for plugin in ["greeter", "wasm-greeter"] {
        corral.wait_ready(plugin);
    }
    let mut client = corral.client();
    for plugin in ["greeter", "wasm-greeter"] {
        assert_eq!(
            text(&client.call(plugin, "greet", b"bob").unwrap()),
            "HELLO, BOB!"
        );
        let error = client
            .call(plugin, "relay", b"bystander echo x")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("may not use host service `call:bystander/echo`"),
            "{plugin}: {error}"
        );
        let error = client.call(plugin, "relay", b"hello nope").unwrap_err();
        assert!(
            error.to_string().contains("unknown_method"),
            "{plugin}: {error}"
        );
        let error = client.call(plugin, "relay", b"hello @event:x").unwrap_err();
        assert!(
            error.to_string().contains("is reserved"),
            "{plugin}: {error}"
        );
    }
    // A dependency that crashes mid-call fails the caller's host call, not
    // the caller.
    let greeter_pid = corral.plugin("greeter").pid;
    let error = client.call("greeter", "relay", b"hello crash").unwrap_err();
    assert!(error.to_string().contains("crashed"), "{error}");
    assert_eq!(corral.plugin("greeter").pid, greeter_pid);
    corral.wait_ready("hello");
    assert_eq!(
        text(&client.call("greeter", "greet", b"again").unwrap()),
        "HELLO, AGAIN!"
    );
    // What a plugin may ask for is in `corral inspect`.
    let inspect = text(&corral.cli(&["inspect", "greeter"]).stdout);
    assert!(
        inspect
            .lines()
            .any(|line| line.trim_start().starts_with("host") && line.ends_with("call:hello")),
        "{inspect}"
    );
    // Host apps cannot call the reserved methods either.
    let error = client.call("hello", "@event:ticks", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::BadRequest), "{error}");
}

#[test]
fn a_call_cycle_fails_at_once_instead_of_deadlocking() {
    let manifest = |dependency: &str| {
        format!(
            "[dependencies]\n{dependency} = \"^1\"\n\n[permissions]\nhost = [\"call:{dependency}\"]\n"
        )
    };
    let builder = Corral::builder()
        .hello("hello")
        .native_with("left", "greeter", &manifest("right"))
        .native_with("right", "greeter", &manifest("hello"));
    let right = builder.plugins_dir().join("right/plugin.toml");
    let corral = builder.start();
    corral.wait_ready("left");
    let old = corral.wait_ready("right").pid;
    // An admin edits `right` to call back into `left`: its dependencies are
    // checked at start only, so the running pair now forms a cycle.
    let edited = fs::read_to_string(&right)
        .unwrap()
        .replace("hello = \"^1\"", "left = \"^1\"")
        .replace("call:hello", "call:left");
    fs::write(&right, edited).unwrap();
    corral.wait_replaced("right", old);

    let mut client = corral.client();
    let started = std::time::Instant::now();
    let error = client
        .call_with_timeout(
            "left",
            "relay",
            b"right relay left echo x",
            Duration::from_secs(20),
        )
        .unwrap_err();
    assert!(
        error.to_string().contains("call cycle left → right → left"),
        "{error}"
    );
    // Refused at once: well before either plugin's deadline (30 s).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // Nobody was killed for it.
    let left = corral.plugin("left");
    assert_eq!(left.restarts, 0);
    assert_eq!(corral.plugin("right").restarts, 0);
}

#[test]
fn corral_logs_shows_a_plugins_output_with_since_json_and_follow() {
    let corral = Corral::builder()
        .hello("hello")
        .native_with("tally", "tally", "[events]\nsubscribe = [\"ticks\"]\n")
        .start();
    let pid = corral.wait_ready("hello").pid.unwrap();
    corral.wait_ready("tally");
    let logs = corral.cli(&["logs", "hello"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    let logs = text(&logs.stdout);
    let line = logs
        .lines()
        .find(|line| line.contains("hello ready"))
        .unwrap_or_else(|| panic!("no `hello ready` in\n{logs}"));
    assert!(line.contains(&format!(" pid={pid} ")), "{line}");
    let json = text(&corral.cli(&["logs", "hello", "--json"]).stdout);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["pid"], pid);
    let later = text(
        &corral
            .cli(&["logs", "hello", "--since", "2999-01-01T00:00:00.000Z"])
            .stdout,
    );
    assert_eq!(later, "");
    let recent = text(&corral.cli(&["logs", "hello", "--since", "1h"]).stdout);
    assert!(recent.contains("hello ready"), "{recent}");
    let unknown = corral.cli(&["logs", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no plugin named `nobody`"));

    // Following: lines written later arrive as they are written.
    let mut follower = corral.follow(&["logs", "-f", "tally"]);
    let mut client = corral.client();
    corral.wait_until("tally got an event", || {
        client.publish("ticks", b"beat").unwrap();
        client.call("tally", "count", b"").unwrap() != b"0"
    });
    follower.find("the event's log line", |line| {
        line.contains("on ticks: beat")
    });
}

#[test]
fn log_files_rotate_and_a_flood_stays_bounded() {
    let corral = Corral::builder()
        .native("flood", "hostile")
        .start_with_config(
            "plugins = [\"plugins\"]\nsocket = \"corral.sock\"\nlog_max_mb = 1\nlog_keep = 2\n",
        );
    corral.wait_ready("flood");
    let mut client = corral.client();
    assert_eq!(client.call("flood", "flood", b"5").unwrap(), b"flooded");
    let dir = corral.dir().join("state/logs");
    corral.wait_until("rotated files", || dir.join("flood.log.2").exists());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("flood"))
        .collect();
    names.sort();
    assert_eq!(names, ["flood.log", "flood.log.1", "flood.log.2"]);
    for name in names {
        let size = fs::metadata(dir.join(&name)).unwrap().len();
        assert!(size <= 1024 * 1024, "{name}: {size} bytes");
    }
    // The plugin and the supervisor carry on.
    assert_eq!(client.call("flood", "echo", b"still").unwrap(), b"still");
}

#[test]
fn call_metrics_in_ps_top_and_prometheus() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let corral = Corral::builder()
        .hello("hello")
        .arg("--metrics-addr")
        .arg(&addr)
        .start();
    corral.wait_ready("hello");
    let mut client = corral.client();
    for _ in 0..10 {
        client.call("hello", "echo", b"x").unwrap();
    }
    client.call("hello", "nope", b"").unwrap_err();
    let hello = corral.plugin("hello");
    assert_eq!(hello.calls, 11);
    assert_eq!(hello.errors, [("unknown_method".to_owned(), 1)]);
    assert_eq!(hello.in_flight, 0);
    let (p50, p99) = (hello.latency_p50_us.unwrap(), hello.latency_p99_us.unwrap());
    assert!(p50 > 0 && p50 <= p99, "{p50} {p99}");

    let top = corral.cli(&["top", "-n", "2", "--interval-ms", "10"]);
    assert!(top.status.success(), "{}", text(&top.stderr));
    let top = text(&top.stdout);
    assert_eq!(top.matches("CALLS").count(), 2, "{top}");
    let row = top.lines().find(|line| line.starts_with("hello ")).unwrap();
    assert!(row.contains(" 11 ") && row.contains(" 1 "), "{row}");

    // The endpoint keeps connections alive: ask it to close after this one.
    let mut scrape = std::net::TcpStream::connect(&addr).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    scrape.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.lines().any(|header| header
            .eq_ignore_ascii_case("content-type: text/plain; version=0.0.4; charset=utf-8")),
        "{head}"
    );
    assert!(
        body.starts_with("# HELP corral_plugin_up ") && body.ends_with('\n'),
        "{body}"
    );
    for line in [
        "corral_calls_total{plugin=\"hello\"} 11",
        "corral_call_errors_total{plugin=\"hello\",kind=\"unknown_method\"} 1",
        "corral_plugin_up{plugin=\"hello\"} 1",
        "corral_calls_in_flight{plugin=\"hello\"} 0",
    ] {
        assert!(
            response.lines().any(|l| l == line),
            "no {line} in\n{response}"
        );
    }
}

#[test]
fn events_follow_pushes_new_events() {
    let corral = Corral::builder().hello("hello").start();
    let pid = corral.wait_ready("hello").pid.unwrap();
    let mut follower = corral.follow(&["events", "-f", "--plugin", "hello"]);
    // The history first...
    let first = follower.find("the first event", |_| true);
    assert!(
        first.contains("hello  gen 0  state  installed -> starting"),
        "{first}"
    );
    // ...then what happens next.
    send_signal(pid, libc::SIGKILL);
    follower.find("the worker's exit", |line| {
        line.contains("  exit  ") && line.contains(&format!("worker {pid}"))
    });
}

#[test]
fn the_async_client_subscribes_follows_events_and_calls_on_one_connection() {
    let corral = Corral::builder()
        .native_with("ticker", "ticker", "[permissions]\nhost = [\"publish\"]\n")
        .start();
    let pid = corral.wait_ready("ticker").pid.unwrap();
    crate::calls::block_on(async {
        let client = corral::Client::connect(&corral.socket).await.unwrap();
        let mut ticks = client.subscribe(&["ticks"]).await.unwrap();
        let mut events = client.follow_events(0).await.unwrap();
        // Streams and plain calls share the connection.
        client
            .call("ticker", "tick", b"one".to_vec())
            .await
            .unwrap();
        assert_eq!(client.publish("ticks", b"two".to_vec()).await.unwrap(), 1);
        let first = tokio::time::timeout(corral_tests::WAIT, ticks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.from.as_str(), first.payload.as_slice()),
            ("ticker", &b"one"[..])
        );
        let second = tokio::time::timeout(corral_tests::WAIT, ticks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            (second.from.as_str(), second.payload.as_slice()),
            ("", &b"two"[..])
        );

        send_signal(pid, libc::SIGKILL);
        loop {
            let event = tokio::time::timeout(corral_tests::WAIT, events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if event.kind == corral::EventKind::Exit && event.detail.contains(&pid.to_string()) {
                break;
            }
        }
    });
}
