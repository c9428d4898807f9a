//! `corral-worker-native`: the worker for native plugins only, without the
//! wasm runtime (see the `corral-worker` crate).

fn main() -> std::process::ExitCode {
    corral_worker::main_native()
}
