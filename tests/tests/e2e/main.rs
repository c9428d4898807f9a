//! End-to-end tests: the real `corral` binary, real workers, real plugins
//! and real sockets, one temporary folder per test (see the harness in
//! `tests/src/lib.rs`).

mod access;
mod arena;
mod calls;
mod check;
mod cli;
mod config;
mod crash;
mod crash_reports;
mod debug;
mod direct;
mod extensions;
mod help;
mod install;
mod journal;
mod journey;
mod json;
mod lifecycle;
mod limits;
mod load;
mod manifest;
mod packaging;
mod payloads;
mod protocol;
mod reload;
mod sandbox;
mod scaffold;
mod seccomp;
mod services;
mod testkit;
mod typescript;
mod wasi;
mod wasm;
mod worker;
mod zygote;
