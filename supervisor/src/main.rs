//! The `corral` command: `corral serve` runs the supervisor; the other
//! subcommands talk to a running one.
//!
//! Exit codes: 0 success; 1 "no" (a call failed, a plugin is not ready);
//! 2 error (bad usage, cannot connect, supervisor failed).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
