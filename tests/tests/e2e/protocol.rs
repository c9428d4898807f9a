//! Host clients that break the protocol get an error or are disconnected;
//! the supervisor and every plugin carry on.

use corral_plugin_api::ErrorKind;
use corral_plugin_api::wire::{
    self, ClientHello, PROTOCOL_VERSION, Reply, Request, RequestBody, Response, ServerHello,
};
use corral_tests::{Corral, Workspace};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const MAX: u32 = wire::DEFAULT_MAX_FRAME;

fn connect(corral: &Corral) -> UnixStream {
    let stream = UnixStream::connect(&corral.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, message: &T) {
    let mut buf = Vec::new();
    wire::write_frame(stream, message, &mut buf, MAX).unwrap();
}

fn recv<T: serde::de::DeserializeOwned>(stream: &mut UnixStream) -> Option<T> {
    let mut buf = Vec::new();
    match wire::read_frame(stream, &mut buf, MAX) {
        Ok(true) => Some(wire::decode_body(&buf).unwrap()),
        _ => None,
    }
}

fn greeted(corral: &Corral) -> UnixStream {
    let mut stream = connect(corral);
    send(
        &mut stream,
        &ClientHello {
            protocol: PROTOCOL_VERSION,
            client: "test".into(),
            shared_payloads: false,
        },
    );
    let hello: ServerHello = recv(&mut stream).expect("server hello");
    assert_eq!(hello.protocol, PROTOCOL_VERSION);
    stream
}

/// Reads until the server closes the connection, returning what it sent.
pub(crate) fn until_closed(stream: &mut UnixStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("server closes the connection");
    rest
}

pub(crate) fn connection_error(bytes: &[u8]) -> corral_plugin_api::RemoteError {
    let (response, _) = wire::decode_frame::<Response>(bytes, MAX)
        .unwrap()
        .expect("an error frame");
    assert_eq!(response.id, 0);
    match response.reply {
        Reply::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn still_serves(corral: &Corral) {
    assert_eq!(
        corral.client().call("hello", "echo", b"fine").unwrap(),
        b"fine"
    );
    assert_eq!(corral.plugin("hello").restarts, 0);
}

#[test]
fn garbage_request_gets_an_error_and_a_disconnect() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = greeted(&corral);
    stream
        .write_all(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let error = connection_error(&until_closed(&mut stream));
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(
        error.message.starts_with("bad request: undecodable frame"),
        "{}",
        error.message
    );
    still_serves(&corral);
}

#[test]
fn oversized_frame_is_refused_without_reading_it() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = greeted(&corral);
    stream.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let error = connection_error(&until_closed(&mut stream));
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(
        error
            .message
            .contains("exceeds the limit of 16777216 bytes"),
        "{}",
        error.message
    );
    still_serves(&corral);
}

#[test]
fn truncated_frame_and_vanished_client_lose_nothing() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    {
        let mut stream = greeted(&corral);
        stream.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
    } // closed mid-frame
    {
        // A client that leaves with a call in flight.
        let mut stream = greeted(&corral);
        let call = RequestBody::Call {
            plugin: "hello".into(),
            method: "sleep".into(),
            input: b"200".to_vec(),
            timeout_ms: 0,
        };
        send(&mut stream, &Request { id: 1, body: call });
    }
    std::thread::sleep(Duration::from_millis(300));
    still_serves(&corral);
}

#[test]
fn garbage_instead_of_hello_is_refused() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = connect(&corral);
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let rest = until_closed(&mut stream);
    assert!(!rest.is_empty(), "no error sent");
    still_serves(&corral);
}

#[test]
fn protocol_version_mismatch_names_both_versions() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = connect(&corral);
    send(
        &mut stream,
        &ClientHello {
            protocol: 99,
            client: "from the future".into(),
            shared_payloads: false,
        },
    );
    let hello: ServerHello = recv(&mut stream).expect("server hello");
    assert_eq!(hello.protocol, PROTOCOL_VERSION);
    let error = connection_error(&until_closed(&mut stream));
    assert!(
        error.message.contains("client speaks protocol 99"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains(&format!("speaks {PROTOCOL_VERSION}")),
        "{}",
        error.message
    );
}

#[test]
fn oversized_reply_is_an_error_not_a_crash() {
    let corral = Corral::builder()
        .native("hostile", "hostile")
        .hello("hello")
        .start();
    let before = corral.wait_ready("hostile");
    let error = corral
        .client()
        .call("hostile", "big", b"20000000")
        .unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(
        error.to_string().contains("exceeds the frame limit"),
        "{error}"
    );
    assert_eq!(corral.plugin("hostile").pid, before.pid);
    still_serves(&corral);
}
