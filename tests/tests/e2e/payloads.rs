//! Large payloads: from 64 KiB on they travel in sealed memfds passed
//! beside the frames on both channels; the bytes arrive intact either way,
//! and a client that does not take memfds gets them inline.

use crate::protocol::{connection_error, until_closed};
use corral::Client;
use corral_plugin_api::ErrorKind;
use corral_plugin_api::wire::{
    self, ClientHello, PROTOCOL_VERSION, Reply, Request, RequestBody, Response, SharedBytes,
};
use corral_tests::{Corral, Workspace};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const MAX: u32 = wire::DEFAULT_MAX_FRAME;

/// Bytes that differ at every offset a page or a frame boundary could cut.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 7 + i / 4093).to_le_bytes()[0])
        .collect()
}

#[test]
fn large_payloads_round_trip_intact_native_and_wasm() {
    let corral = Corral::builder()
        .hello("native")
        .wasm_with("wasm", "hello", "")
        .start();
    corral.wait_ready("native");
    corral.wait_ready("wasm");
    let mut client = corral.client();
    for plugin in ["native", "wasm"] {
        for len in [64 * 1024 - 1, 64 * 1024, 1 << 20, 5 << 20] {
            let input = pattern(len);
            let reply = client.call(plugin, "echo", &input).unwrap();
            assert!(reply == input, "{plugin}: {len} bytes came back changed");
        }
        let upper = client.call(plugin, "upper", &vec![b'a'; 300_000]).unwrap();
        assert_eq!(upper, vec![b'A'; 300_000], "{plugin}");
    }
    crate::calls::block_on(async {
        let client = Client::connect(&corral.socket).await.unwrap();
        let calls = (0..8).map(|i| {
            let client = &client;
            async move {
                let input = pattern(200_000 + i * 4096);
                let reply = client.call("native", "echo", input.clone()).await.unwrap();
                (i, reply == input)
            }
        });
        let mut pending: Vec<_> = calls.map(Box::pin).collect();
        for (i, intact) in crate::calls::futures_join_all(&mut pending).await {
            assert!(intact, "concurrent call {i} came back changed");
        }
    });
    assert_eq!(corral.plugin("native").restarts, 0);
    assert_eq!(corral.plugin("wasm").restarts, 0);
}

fn greeted(corral: &Corral, shared_payloads: bool) -> UnixStream {
    let mut stream = UnixStream::connect(&corral.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION,
        client: "test".into(),
        shared_payloads,
    };
    wire::write_frame(&mut stream, &hello, &mut Vec::new(), MAX).unwrap();
    let mut buf = Vec::new();
    assert!(wire::read_frame(&mut stream, &mut buf, MAX).unwrap());
    stream
}

fn call(input: Vec<u8>) -> Request {
    Request {
        id: 1,
        body: RequestBody::Call {
            plugin: "hello".into(),
            method: "echo".into(),
            input,
            timeout_ms: 0,
        },
    }
}

#[test]
fn a_client_that_takes_no_memfds_gets_large_replies_inline() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut stream = greeted(&corral, false);
    let input = pattern(300_000);
    // Sent inline (a plain write carries no fd); the worker still gets it
    // in a memfd and answers in one.
    wire::write_frame(&mut stream, &call(input.clone()), &mut Vec::new(), MAX).unwrap();
    let mut buf = Vec::new();
    assert!(wire::read_frame(&mut stream, &mut buf, MAX).unwrap());
    let response: Response = wire::decode_body(&buf).unwrap();
    match response.reply {
        Reply::Called(bytes) => assert!(bytes == input, "the reply came back changed"),
        other => panic!("expected the echo, got {other:?}"),
    }
}

/// Sends `request` flagged as carrying a shared payload, with `fd`.
fn send_shared(stream: &UnixStream, request: &Request, fd: Option<std::os::fd::BorrowedFd<'_>>) {
    let mut frame = Vec::new();
    wire::encode_frame(request, &mut frame, MAX).unwrap();
    wire::mark_shared(&mut frame);
    wire::send_frame(stream.as_fd(), &frame, fd).unwrap();
}

#[test]
fn a_client_sending_a_bad_shared_payload_is_disconnected() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");

    // Flagged, but no fd came with it.
    let mut stream = greeted(&corral, true);
    send_shared(&stream, &call(Vec::new()), None);
    let error = connection_error(&until_closed(&mut stream));
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(
        error.message.contains("without its fd"),
        "{}",
        error.message
    );

    // An fd that is not a sealed memfd: a plain file anyone could truncate.
    let mut stream = greeted(&corral, true);
    let file = tempfile::tempfile().unwrap();
    send_shared(&stream, &call(Vec::new()), Some(file.as_fd()));
    let error = connection_error(&until_closed(&mut stream));
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(
        error.message.contains("not a memfd sealed"),
        "{}",
        error.message
    );

    // A sealed payload with bytes inline as well.
    let mut stream = greeted(&corral, true);
    let shared = SharedBytes::copy_from(b"payload").unwrap();
    send_shared(&stream, &call(b"inline too".to_vec()), Some(shared.as_fd()));
    let mut buf = Vec::new();
    assert!(wire::read_frame(&mut stream, &mut buf, MAX).unwrap());
    let response: Response = wire::decode_body(&buf).unwrap();
    match response.reply {
        Reply::Error(error) => assert_eq!(error.kind, ErrorKind::BadRequest, "{error}"),
        other => panic!("expected an error, got {other:?}"),
    }

    // A shared payload on a request that has none.
    let list = Request {
        id: 2,
        body: RequestBody::List,
    };
    send_shared(&stream, &list, Some(shared.as_fd()));
    assert!(wire::read_frame(&mut stream, &mut buf, MAX).unwrap());
    let response: Response = wire::decode_body(&buf).unwrap();
    assert!(
        matches!(&response.reply, Reply::Error(error) if error.kind == ErrorKind::BadRequest),
        "{response:?}"
    );

    assert_eq!(
        corral.client().call("hello", "echo", b"fine").unwrap(),
        b"fine"
    );
    assert_eq!(corral.plugin("hello").restarts, 0);
}
