//! `corral-worker`: see the `corral-worker` crate.

fn main() -> std::process::ExitCode {
    corral_worker::main()
}
