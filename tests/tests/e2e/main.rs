//! End-to-end tests: the real `corral` binary, real workers, real plugins
//! and real sockets, one temporary folder per test (see the harness in
//! `tests/src/lib.rs`).

mod calls;
mod cli;
mod crash;
mod limits;
mod manifest;
mod protocol;
mod sandbox;
mod wasi;
mod wasm;
mod worker;
