#!/usr/bin/env bash
# Checks that the whole workspace builds for aarch64 (syscall numbers and
# some syscalls differ there). rustup cannot download targets here, so
# this uses Debian's rustc-web with its std sources (-Z build-std) and
# Debian's aarch64 C cross compiler for the build scripts that compile C;
# it installs them when missing. Type-checks only: nothing is linked or
# run.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /usr/bin/rustc ] || ! [ -x /usr/bin/cargo ] || ! [ -d /usr/lib/rustlib/src/rust/library ] \
    || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "check-aarch64: installing rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu >/dev/null
fi
env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/aarch64 \
    /usr/bin/cargo check -Z build-std=std,panic_abort --target aarch64-unknown-linux-gnu \
    --workspace --all-targets --quiet
echo "check-aarch64: the workspace builds for aarch64-unknown-linux-gnu"
