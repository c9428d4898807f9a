//! WebAssembly plugins: the same source as native, run by wasmtime in a
//! sandboxed worker, indistinguishable to host apps.

use corral::{ClientError, PluginState};
use corral_tests::{Corral, Workspace};

/// What a call returned, comparable across runtimes.
fn outcome(
    result: Result<Vec<u8>, ClientError>,
) -> Result<Vec<u8>, (Option<corral::ErrorKind>, String)> {
    result.map_err(|error| (error.kind(), error.to_string()))
}

#[test]
fn wasm_hello_answers_exactly_like_native_hello() {
    let corral = Corral::builder()
        .hello("native")
        .wasm_with("wasm", "hello", "")
        .start();
    corral.wait_ready("native");
    let wasm = corral.wait_ready("wasm");
    assert_eq!(wasm.state, PluginState::Ready);
    let binary: Vec<u8> = (0..=255).collect();
    let calls: [(&str, &[u8]); 7] = [
        ("echo", b"hello"),
        ("echo", &binary),
        ("echo", b""),
        ("upper", "grüße, corral".as_bytes()),
        ("sum", b"1 2 3 -4"),
        ("sum", b"1 x"),
        ("nope", b""),
    ];
    let mut client = corral.client();
    for (method, input) in calls {
        let native = outcome(client.call("native", method, input));
        let wasm = outcome(client.call("wasm", method, input));
        assert_eq!(native, wasm, "{method}");
    }
    assert_eq!(corral.plugin("wasm").restarts, 0);
}

#[test]
fn a_plugin_written_in_wat_serves_like_any_other() {
    let wat = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-plugins/wat-echo/echo.wat"
    ))
    .unwrap();
    let manifest = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-plugins/wat-echo/plugin.toml"
    ))
    .unwrap();
    let corral = Corral::builder()
        .folder(
            "wat-echo",
            &[("plugin.toml", &manifest), ("echo.wat", &wat)],
        )
        .start();
    corral.wait_ready("wat-echo");
    let mut client = corral.client();
    assert_eq!(
        client
            .call("wat-echo", "echo", b"language-neutral")
            .unwrap(),
        b"language-neutral"
    );
    let error = client.call("wat-echo", "nope", b"").unwrap_err();
    assert_eq!(
        error.kind(),
        Some(corral::ErrorKind::UnknownMethod),
        "{error}"
    );
    assert!(
        corral.log().contains("wat-echo ready"),
        "the guest's log() reaches the supervisor"
    );
}

/// A guest in WAT that behaves on an empty input and runs `misbehave` on
/// any other: the same worker must answer the empty call after each fault.
fn hostile_wat(imports: &str, misbehave: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "corral_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $len)) (i32.const 60000))
      (then (global.set $heap (i32.const 1024))))
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $ptr))
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) (i32.const 0))
  (func (export "health") (result i32) (i32.const 0))
  (func (export "shutdown"))
  (func $recurse (param i32) (result i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
  (func (export "call") (param $m i32) (param $ml i32) (param $i i32) (param $il i32) (param $out i32) (result i32)
    (local $n i32)
    (if (i32.eqz (local.get $il))
      (then
        (i32.store (local.get $out) (i32.const 0))
        (i32.store offset=4 (local.get $out) (i32.const 0))
        (return (i32.const 0))))
    {misbehave})
)"#
    )
}

fn wasm_hostile(wat: &str, extra: &str) -> Corral {
    let manifest = format!(
        "[plugin]\nname = \"bad\"\nversion = \"1.0.0\"\nkind = \"wasm\"\nentry = \"bad.wat\"\napi = 1\n\n{extra}"
    );
    Corral::builder()
        .folder(
            "bad",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("bad.wat", wat.as_bytes()),
            ],
        )
        .hello("neighbour")
        .start()
}

#[test]
fn wasm_faults_are_errors_and_the_worker_keeps_serving() {
    let cases: [(&str, &str, &str, corral::ErrorKind, &str); 5] = [
        (
            "infinite loop",
            "(loop $l (br $l)) (i32.const 0)",
            "[limits]\ncall_timeout_ms = 3000\n",
            corral::ErrorKind::Timeout,
            "ran past its deadline",
        ),
        (
            "unreachable",
            "unreachable",
            "",
            corral::ErrorKind::Plugin,
            "wasm trap",
        ),
        (
            "fuel",
            "(loop $l (br $l)) (i32.const 0)",
            "[limits]\nwasm_fuel = 100000\ncall_timeout_ms = 20000\n",
            corral::ErrorKind::Plugin,
            "ran out of fuel (100000 units)",
        ),
        (
            "stack overflow",
            "(drop (call $recurse (i32.const 0))) (i32.const 0)",
            "",
            corral::ErrorKind::Plugin,
            "call stack exhausted",
        ),
        (
            "reply outside memory",
            "(i32.store (local.get $out) (i32.const 0)) (i32.store offset=4 (local.get $out) (i32.const 0x7fffffff)) (i32.const 0)",
            "",
            corral::ErrorKind::Plugin,
            "outside the module's memory",
        ),
    ];
    std::thread::scope(|scope| {
        for (what, misbehave, extra, kind, needle) in cases {
            scope.spawn(move || {
                let started = std::time::Instant::now();
                let corral = wasm_hostile(&hostile_wat("", misbehave), extra);
                let before = corral.wait_ready("bad");
                corral.wait_ready("neighbour");
                let neighbour = corral.keep_calling("neighbour");
                let mut client = corral.client();
                for _ in 0..2 {
                    let error = client.call("bad", "go", b"x").unwrap_err();
                    assert_eq!(
                        error.kind(),
                        Some(kind),
                        "{what}: {error} after {:?}",
                        started.elapsed()
                    );
                    assert!(error.to_string().contains(needle), "{what}: {error}");
                    assert_eq!(
                        client.call("bad", "go", b"").unwrap(),
                        b"",
                        "{what}: serves after the fault"
                    );
                }
                let after = corral.plugin("bad");
                assert_eq!(
                    (after.pid, after.restarts),
                    (before.pid, 0),
                    "{what}: the worker survived"
                );
                neighbour.finish();
            });
        }
    });
}

#[test]
fn wasm_memory_growth_stops_at_the_limit() {
    // Grows one page at a time until refused; replies with the page count.
    let grow = r#"
    (block $done
      (loop $l
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    (i32.store (i32.const 512) (local.get $n))
    (i32.store (local.get $out) (i32.const 512))
    (i32.store offset=4 (local.get $out) (i32.const 4))
    (i32.const 0)"#;
    let corral = wasm_hostile(&hostile_wat("", grow), "[limits]\nmemory_mb = 16\n");
    let before = corral.wait_ready("bad");
    let reply = corral.client().call("bad", "grow", b"x").unwrap();
    let grown = u32::from_le_bytes(reply.try_into().unwrap());
    // 16 MiB = 256 pages of 64 KiB, one of which the module started with.
    assert_eq!(grown, 255, "grew {grown} pages under a 16 MiB limit");
    assert_eq!(corral.plugin("bad").pid, before.pid);
}

#[test]
fn wasm_module_importing_an_unknown_host_function_is_refused() {
    let wat = hostile_wat(
        r#"(import "corral" "kv_get" (func $kv_get (param i32 i32) (result i32)))"#,
        "(drop (call $kv_get (i32.const 0) (i32.const 0))) (i32.const 0)",
    );
    let corral = wasm_hostile(&wat, "");
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_last_exit("bad", "the refusal is recorded", |exit| {
        exit.description.contains("kv_get")
    });
    let bad = corral.plugin("bad");
    assert_ne!(bad.state, PluginState::Ready);
    assert_eq!(bad.last_exit.unwrap().code, Some(3));
    neighbour.finish();
}

#[test]
fn compiled_modules_are_cached_for_the_next_start() {
    let corral = Corral::builder().wasm_with("wasm", "hello", "").start();
    let first = corral.wait_ready("wasm");
    assert!(
        corral.log().contains("compiled module in"),
        "{}",
        corral.log()
    );
    corral_tests::send_signal(first.pid.unwrap(), libc::SIGKILL);
    let second = corral.wait_replaced("wasm", first.pid);
    assert_eq!(second.restarts, 1);
    assert!(
        corral.log().contains("compiled module from the cache in"),
        "{}",
        corral.log()
    );
    assert_eq!(
        corral.client().call("wasm", "upper", b"cached").unwrap(),
        b"CACHED"
    );
    let cache = corral.dir().join("state/wasm-cache/wasm");
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".cwasm"), "{files:?}");
}
