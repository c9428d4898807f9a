//! Shared-memory arenas on direct channels: a large input is written in
//! place in the host app's arena, a large reply read in place in the
//! worker's; both are mapped once and reused, a slot lent is never reused
//! before it is given back, and a worker naming memory outside its arena
//! is killed.

use corral::Client;
use corral_plugin_api::ErrorKind;
use corral_plugin_api::wire::{ExitCause, MAX_SEGMENTS};
use corral_tests::{Corral, Workspace};

/// Bytes that differ at every offset a page boundary could cut, per `seed`.
fn pattern(len: usize, seed: u8) -> impl Fn(usize) -> u8 {
    move |i| (i * 7 + i / 4093 + len).to_le_bytes()[0] ^ seed
}

fn fill(len: usize, seed: u8) -> impl FnOnce(&mut [u8]) + Send {
    move |buf| {
        let byte = pattern(len, seed);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = byte(i);
        }
    }
}

fn intact(reply: &[u8], len: usize, seed: u8) -> bool {
    let byte = pattern(len, seed);
    reply.len() == len && reply.iter().enumerate().all(|(i, &b)| b == byte(i))
}

/// Arena segments (ours and the host app's) mapped in process `pid`.
fn arena_mappings(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter(|line| line.contains("memfd:corral-arena"))
        .count()
}

#[test]
fn large_calls_are_written_and_read_in_place_and_the_memory_is_reused() {
    let corral = Corral::builder()
        .hello("native")
        .wasm_with("wasm", "hello", "")
        .start();
    let mut client = corral.client();
    for plugin in ["native", "wasm"] {
        let pid = corral.wait_ready(plugin).pid.expect("a serving worker");
        for round in 0..40u8 {
            let len = (1 << 20) + usize::from(round) * 4099;
            let reply = client
                .call_with(plugin, "echo", len, fill(len, round))
                .unwrap();
            assert!(reply.is_in_place(), "{plugin}: the reply was copied");
            assert!(
                intact(&reply, len, round),
                "{plugin}: round {round} changed"
            );
        }
        let mapped = arena_mappings(pid);
        assert!(
            (2..=2 * MAX_SEGMENTS).contains(&mapped),
            "{plugin}: {mapped} arena mappings in the worker after 40 calls"
        );
        // A plain call uses the arena under the hood and copies once.
        let input: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        assert!(
            client.call(plugin, "echo", &input).unwrap() == input,
            "{plugin}"
        );
        // Small calls stay in the frame.
        let small = client.call_view(plugin, "echo", b"tiny").unwrap();
        assert!(!small.is_in_place());
        assert_eq!(&*small, b"tiny");
    }
}

#[test]
fn a_reply_held_by_the_host_app_is_never_overwritten() {
    let corral = Corral::builder().hello("hello").start();
    let mut client = corral.client();
    let len = 3 << 20;
    let first = client
        .call_with("hello", "echo", len, fill(len, 1))
        .unwrap();
    assert!(first.is_in_place());
    // While `first` is held, other replies go elsewhere in the arena.
    for seed in 2..12 {
        let other = client
            .call_with("hello", "echo", len, fill(len, seed))
            .unwrap();
        assert!(intact(&other, len, seed));
        assert!(intact(&first, len, 1), "held reply changed by call {seed}");
    }
    let second = client.call_view("hello", "echo", &vec![9; len]).unwrap();
    assert!(intact(&first, len, 1));
    assert!(second.iter().all(|&b| b == 9));
    drop((first, second));
    // Released: the next calls reuse the memory and still answer.
    for seed in 20..30 {
        let reply = client
            .call_with("hello", "echo", len, fill(len, seed))
            .unwrap();
        assert!(intact(&reply, len, seed));
    }
}

#[test]
fn the_async_client_writes_in_place_and_pipelines_large_calls() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    crate::calls::block_on(async {
        let client = Client::connect(&corral.socket).await.unwrap();
        let calls = (0..16u8).map(|seed| {
            let client = &client;
            async move {
                let len = (1 << 20) + usize::from(seed) * 4096;
                let reply = client
                    .call_with("hello", "echo", len, fill(len, seed))
                    .await
                    .unwrap();
                (seed, reply.is_in_place(), intact(&reply, len, seed))
            }
        });
        let mut pending: Vec<_> = calls.map(Box::pin).collect();
        let mut in_place = 0;
        for (seed, placed, intact) in crate::calls::futures_join_all(&mut pending).await {
            assert!(intact, "call {seed} came back changed");
            in_place += usize::from(placed);
        }
        // 16 MiB in flight fits the arenas (4 frames of 16 MiB each).
        assert_eq!(in_place, 16, "replies read in place");
    });
}

#[test]
fn a_worker_that_names_memory_outside_its_arena_is_killed_and_the_call_fails() {
    let corral = Corral::builder()
        .native_with("hostile", "hostile", "")
        .start();
    let first = corral.wait_ready("hostile").pid.expect("a serving worker");
    let mut client = corral.client();
    client.call("hostile", "echo", b"warm").unwrap();
    let error = client
        .call("hostile", "bad_slot", b"")
        .expect_err("a slot outside the arena");
    assert_eq!(error.kind(), Some(ErrorKind::Protocol), "{error}");
    assert!(error.to_string().contains("a slot in segment 0"), "{error}");
    corral.wait_last_exit("hostile", "killed for the bad slot", |exit| {
        exit.cause == ExitCause::ProtocolViolation
    });
    corral.wait_replaced("hostile", Some(first));
    assert_eq!(client.call("hostile", "echo", b"ok").unwrap(), b"ok");
}

#[test]
fn in_place_calls_keep_the_clients_deadline() {
    let corral = Corral::builder().hello("hello").start();
    corral.wait_ready("hello");
    let mut client = corral.client();
    client.set_call_timeout(std::time::Duration::from_millis(200));
    let error = client
        .call_with("hello", "sleep", 4, |input| input.copy_from_slice(b"1000"))
        .expect_err("past the deadline");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    let error = client.call_view("hello", "sleep", b"1000").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    client.set_call_timeout(std::time::Duration::from_secs(5));
    let slept = client
        .call_with("hello", "sleep", 2, |input| input.copy_from_slice(b"10"))
        .unwrap();
    assert_eq!(&*slept, b"slept 10 ms");
}
