//! WebAssembly plugins: the same source as native, run by wasmtime in a
//! sandboxed worker, indistinguishable to host apps.

use corral::{ClientError, PluginState};
use corral_tests::Corral;

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
