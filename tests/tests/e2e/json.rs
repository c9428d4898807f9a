//! The host protocol in JSON: raw frames written by hand against the real
//! supervisor (hello, calls, errors, a bad frame, another protocol
//! version), and the shipped Python client and its example run end to end.

use corral_plugin_api::wire::PROTOCOL_VERSION;
use corral_tests::{Corral, Workspace};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn send(stream: &mut UnixStream, message: &Value) {
    send_raw(stream, &serde_json::to_vec(message).unwrap());
}

fn send_raw(stream: &mut UnixStream, body: &[u8]) {
    let len = u32::try_from(body.len()).unwrap().to_le_bytes();
    stream.write_all(&len).unwrap();
    stream.write_all(body).unwrap();
}

fn receive(stream: &mut UnixStream) -> Option<Value> {
    let mut header = [0; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0; u32::from_le_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(serde_json::from_slice(&body).expect("the supervisor answers in JSON"))
}

fn connect(corral: &Corral) -> UnixStream {
    let stream = UnixStream::connect(&corral.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn json_frames_call_plugins_and_get_json_back() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = connect(&corral);
    send(
        &mut stream,
        &json!({"protocol": PROTOCOL_VERSION, "client": "raw json"}),
    );
    let hello = receive(&mut stream).expect("a hello");
    assert_eq!(hello["protocol"], PROTOCOL_VERSION, "{hello}");
    assert!(hello["server"].is_string(), "{hello}");

    // Input as a string (its UTF-8 bytes) or as numbers; replies are numbers.
    send(
        &mut stream,
        &json!({"id": 1, "body": {"Call": {"plugin": "hello", "method": "upper", "input": "json", "timeout_ms": 0}}}),
    );
    assert_eq!(
        receive(&mut stream).unwrap(),
        json!({"id": 1, "reply": {"Called": b"JSON".to_vec()}})
    );
    send(
        &mut stream,
        &json!({"id": 2, "body": {"Call": {"plugin": "hello", "method": "echo", "input": [0, 255, 7], "timeout_ms": 0}}}),
    );
    assert_eq!(
        receive(&mut stream).unwrap()["reply"]["Called"],
        json!([0, 255, 7])
    );
    send(
        &mut stream,
        &json!({"id": 3, "body": {"Call": {"plugin": "hello", "method": "nope", "input": "", "timeout_ms": 0}}}),
    );
    let error = receive(&mut stream).unwrap();
    assert_eq!(error["id"], 3);
    assert_eq!(error["reply"]["Error"]["kind"], "unknown_method", "{error}");
    send(&mut stream, &json!({"id": 4, "body": "List"}));
    let list = receive(&mut stream).unwrap();
    assert_eq!(list["reply"]["Plugins"][0]["name"], "hello", "{list}");
    assert_eq!(list["reply"]["Plugins"][0]["state"], "ready", "{list}");

    // A request that is not one: an error with id 0, then the end.
    send(&mut stream, &json!({"id": 5, "body": {"Fly": {}}}));
    let refused = receive(&mut stream).unwrap();
    assert_eq!(refused["id"], 0);
    assert_eq!(refused["reply"]["Error"]["kind"], "protocol", "{refused}");
    assert!(receive(&mut stream).is_none(), "disconnected");

    // Broken JSON, and another protocol version, are refused the same way.
    let mut broken = connect(&corral);
    send(&mut broken, &json!({"protocol": PROTOCOL_VERSION}));
    receive(&mut broken).expect("a hello");
    send_raw(&mut broken, b"{\"id\": 1, \"body\"");
    let refused = receive(&mut broken).unwrap();
    assert_eq!(refused["reply"]["Error"]["kind"], "protocol", "{refused}");
    let mut old = connect(&corral);
    send(&mut old, &json!({"protocol": 1, "client": "old"}));
    assert_eq!(receive(&mut old).unwrap()["protocol"], PROTOCOL_VERSION);
    let refused = receive(&mut old).unwrap();
    let message = refused["reply"]["Error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("client speaks protocol 1"), "{refused}");

    // Nothing of that touched the plugin.
    assert_eq!(corral.client().call("hello", "echo", b"ok").unwrap(), b"ok");
}

#[test]
fn a_json_reply_over_the_frame_limit_is_an_error_not_silence() {
    let corral = Corral::builder()
        .hello("hello")
        .arg("--max-frame-mb")
        .arg("1")
        .start();
    corral.wait_ready("hello");
    let mut stream = connect(&corral);
    send(&mut stream, &json!({"protocol": PROTOCOL_VERSION}));
    receive(&mut stream).expect("a hello");
    // 600 KiB in as a string; out as numbers, "97," each: 1.8 MB of JSON.
    let input = "a".repeat(600 << 10);
    send(
        &mut stream,
        &json!({"id": 7, "body": {"Call": {"plugin": "hello", "method": "echo", "input": input, "timeout_ms": 0}}}),
    );
    let refused = receive(&mut stream).expect("an answer");
    assert_eq!(refused["id"], 7, "{refused}");
    assert_eq!(
        refused["reply"]["Error"]["kind"], "bad_request",
        "{refused}"
    );
    let message = refused["reply"]["Error"]["message"].as_str().unwrap();
    assert!(
        message.contains("over the frame limit of 1048576 bytes: in JSON"),
        "{message}"
    );
    // The connection serves on.
    send(
        &mut stream,
        &json!({"id": 8, "body": {"Call": {"plugin": "hello", "method": "upper", "input": "ok", "timeout_ms": 0}}}),
    );
    assert_eq!(
        receive(&mut stream).unwrap()["reply"]["Called"],
        json!(b"OK")
    );
}

#[test]
fn the_python_client_example_runs_against_the_real_supervisor() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed (apt-get install python3)");
        return;
    }
    let corral = Corral::builder()
        .hello("hello")
        .native_with("pdf", "hello", "provides = [\"exporter\"]\n")
        .start();
    corral.wait_ready("hello");
    corral.wait_ready("pdf");
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("../supervisor/clients/python");
    let output = Command::new("python3")
        .arg("example.py")
        .current_dir(&clients)
        .env("CORRAL_SOCKET", &corral.socket)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 example.py");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "plugin hello ready",
        "plugin pdf ready exporter",
        "upper: HELLO FROM PYTHON",
        "sum: 42",
        "echo bytes: True",
        "exporter pdf",
        "error kind: unknown_method",
        "error kind: unknown_plugin",
    ] {
        assert!(printed.contains(line), "no {line:?} in:\n{printed}");
    }

    // The script form: one call, the reply on stdout, errors exit 1.
    let call = |args: &[&str]| {
        Command::new("python3")
            .arg("corral_client.py")
            .args(args)
            .current_dir(&clients)
            .env("CORRAL_SOCKET", &corral.socket)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 corral_client.py")
    };
    let upper = call(&["hello", "upper", "abc"]);
    assert_eq!(upper.stdout, b"ABC", "{upper:?}");
    let missing = call(&["hello", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unknown_method"));
}

#[test]
fn json_clients_get_no_direct_channel_and_cannot_report_a_worker() {
    let corral = Corral::builder().hello("hello").start();
    let pid = corral.wait_ready("hello").pid;
    let mut stream = connect(&corral);
    send(&mut stream, &json!({"protocol": PROTOCOL_VERSION}));
    receive(&mut stream).expect("a hello");
    send(
        &mut stream,
        &json!({"id": 1, "body": {"Direct": {"plugin": "hello"}}}),
    );
    let refused = receive(&mut stream).unwrap();
    assert_eq!(
        refused["reply"]["Error"]["kind"], "bad_request",
        "{refused}"
    );
    send(
        &mut stream,
        &json!({"id": 2, "body": {"DirectReport": {"plugin": "hello", "report": "Overdue"}}}),
    );
    let refused = receive(&mut stream).unwrap();
    assert_eq!(
        refused["reply"]["Error"]["kind"], "bad_request",
        "{refused}"
    );
    assert!(
        refused["reply"]["Error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("holds no direct channel")),
        "{refused}"
    );
    assert_eq!(corral.plugin("hello").pid, pid, "the worker lives");
}
