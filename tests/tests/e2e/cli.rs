//! What an admin sees: `corral ps`, `corral call`, process titles, the
//! socket file.

use corral_tests::{Corral, Workspace, cmdline, corral_bin};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn ps_shows_a_table_and_json_with_the_documented_fields() {
    let corral = Corral::builder().hello("hello").start();
    let info = corral.wait_ready("hello");
    let table = corral.cli(&["ps"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let mut lines = text.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "CPU%",
            "RSS/LIMIT",
            "GEN",
            "LAST-EXIT"
        ]
    );
    let row: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["hello", "ready", &info.pid.unwrap().to_string()]);
    assert_eq!(row[4], "0");
    assert_eq!(row[7..], ["1", "-"]);

    let json = corral.cli(&["ps", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let hello = &value.as_array().unwrap()[0];
    for field in [
        "name",
        "version",
        "dir",
        "state",
        "pid",
        "uptime_ms",
        "start_us",
        "restarts",
        "generation",
        "rss_bytes",
        "cpu_percent",
        "memory_limit_bytes",
        "last_exit",
        "error",
    ] {
        assert!(
            hello.get(field).is_some(),
            "ps --json lacks {field}: {hello}"
        );
    }
    assert_eq!(hello["state"], "ready");
    assert_eq!(hello["version"], "1.0.0");
}

#[test]
fn call_writes_the_raw_reply_and_reads_stdin() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let out = corral.cli(&["call", "hello", "upper", "hi there"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "HI THERE")
    );

    let binary: Vec<u8> = (0..=255).collect();
    let out = corral.cli_with_stdin(&["call", "hello", "echo", "-"], &binary);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, binary);

    let out = corral.cli(&["call", "--json", "hello", "sum", "2 3"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value, serde_json::json!({"ok": true, "reply": "5"}));
}

#[test]
fn call_errors_go_to_stderr_with_exit_code_1() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let out = corral.cli(&["call", "hello", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out).trim(),
        "corral: unknown method `nope` (unknown_method)"
    );

    let out = corral.cli(&["call", "--json", "hello", "nope"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["ok"], false);
    assert_eq!(value["error"]["kind"], "unknown_method");
}

#[test]
fn commands_without_a_supervisor_exit_2_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    for args in [&["ps"][..], &["call", "hello", "echo"]] {
        let out = Command::new(corral_bin())
            .args(args)
            .env("CORRAL_SOCKET", &socket)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(&format!("no corral is serving on {}", socket.display())),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn workers_are_titled_with_name_and_version_and_lead_their_own_group() {
    let corral = Corral::builder().hello("hello").start();
    let pid = corral.wait_ready("hello").pid.unwrap();
    assert_eq!(cmdline(pid), "corral-worker: hello@1.0.0");
    // Fields 4, 5, 6: parent, process group, session.
    let field = |n| corral_tests::stat_field(pid, n);
    assert_eq!(
        field(4),
        Some(corral.pid().to_string()),
        "parent is the supervisor"
    );
    assert_eq!(field(5), Some(pid.to_string()), "own process group");
    assert_eq!(field(6), Some(pid.to_string()), "own session");
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut fds: Vec<u32> = fds
        .iter()
        .map(|f| f.to_string_lossy().parse().unwrap())
        .collect();
    fds.sort_unstable();
    assert_eq!(fds[..4], [0, 1, 2, 3], "stdio and the channel");
}

#[test]
fn socket_is_private_and_a_second_supervisor_is_refused() {
    let corral = Corral::builder().hello("hello").start();
    let mode = std::fs::metadata(&corral.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let out = Command::new(corral_bin())
        .args(["serve", "--plugins"])
        .arg(corral.dir().join("plugins"))
        .arg("--socket")
        .arg(&corral.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another corral is already serving on"),
        "{}",
        stderr(&out)
    );
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(corral_bin()).arg("--help").output().unwrap();
    let help = stdout(&out);
    for command in [
        "serve",
        "check",
        "call",
        "inspect",
        "ps",
        "top",
        "logs",
        "events",
        "publish",
        "subscribe",
        "kill",
        "reload",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(&format!("{command} "))),
            "{command} is not in\n{help}"
        );
    }
    // Every command takes --json.
    for command in [
        "check",
        "call",
        "inspect",
        "ps",
        "top",
        "logs",
        "events",
        "publish",
        "subscribe",
        "kill",
        "stop",
    ] {
        let out = Command::new(corral_bin())
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains("--json"),
            "{command}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn serves_as_an_ordinary_user() {
    let Some(nobody) = corral_tests::nobody_or_skip("serves_as_an_ordinary_user") else {
        return;
    };
    let corral = Corral::builder()
        .hello("hello")
        .native_with("counter", "counter", "[permissions]\nhost = [\"kv\"]\n")
        .as_user(nobody)
        .start();
    let info = corral.wait_ready("hello");
    // Forked from a zygote of the same user, which lowers nothing.
    assert_eq!(info.spawn_mode, Some(corral::SpawnMode::Zygote));
    let pid = info.pid.unwrap();
    assert_eq!(
        corral
            .client()
            .call("hello", "upper", b"unprivileged")
            .unwrap(),
        b"UNPRIVILEGED"
    );
    // Host services and log files work without root too.
    corral.wait_ready("counter");
    let mut client = corral.client();
    client.call("counter", "incr", b"").unwrap();
    assert_eq!(client.call("counter", "get", b"").unwrap(), b"1");
    let logs = corral.cli(&["logs", "counter"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("counter starts at 0"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|uid| uid == nobody.to_string()),
        "{uid_line}"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&corral.socket).unwrap());
    assert_eq!(owner, nobody);
}

#[test]
fn inspect_tells_what_confines_a_worker_and_why_it_died() {
    let corral = Corral::builder()
        .native_with(
            "hostile",
            "hostile",
            "[limits]\nmemory_mb = 48\ncall_timeout_ms = 400\n",
        )
        .start();
    let before = corral.wait_ready("hostile");
    assert!(corral.client().call("hostile", "exec", b"").is_err());
    corral.wait_replaced("hostile", before.pid);

    let out = corral.cli(&["inspect", "--json", "hostile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let details: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(details["limits"]["memory_bytes"], 48 * 1024 * 1024);
    assert_eq!(details["limits"]["call_timeout_ms"], 400);
    let layers = details["layers"].as_array().unwrap();
    let mut expected = vec![
        "session",
        "rlimits",
        "no_new_privs",
        "pdeathsig",
        "watchdog",
        "namespaces",
        "landlock",
        "seccomp",
    ];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        expected.push("uid"); // only root can give workers their own uid
    }
    for name in expected {
        let layer = layers
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no {name} layer: {details}"));
        assert_eq!(layer["active"], true, "{layer}");
    }
    let exits = details["exits"].as_array().unwrap();
    assert_eq!(exits.len(), 1, "{details}");
    assert_eq!(exits[0]["cause"], "seccomp");
    assert!(exits[0]["description"].as_str().unwrap().contains("execve"));

    let text = stdout(&corral.cli(&["inspect", "hostile"]));
    for needle in [
        "sandbox\n",
        "on  seccomp",
        "recent exits",
        "forbidden syscall execve",
        "48 MiB",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    let ps = stdout(&corral.cli(&["ps"]));
    assert!(ps.contains("seccomp"), "LAST-EXIT shows the cause:\n{ps}");

    let out = corral.cli(&["inspect", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no plugin named `nobody`"),
        "{}",
        stderr(&out)
    );
}
