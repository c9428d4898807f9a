#!/usr/bin/env bash
# Builds @CRATE@.wasm (wasm32-unknown-unknown) next to plugin.toml: with
# rustup's wasm target when it is installed (`rustup target add
# wasm32-unknown-unknown`), else with Debian's toolchain
# (`apt-get install rustc-web cargo-web rust-web-src lld`), which builds
# std from source.
set -euo pipefail
cd "$(dirname "$0")"
target=wasm32-unknown-unknown
# Small modules compile and load faster.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    out=${CARGO_TARGET_DIR:-target}
    cargo build --release --target "$target"
elif [ -x /usr/bin/rustc ] && command -v wasm-ld >/dev/null && [ -d /usr/lib/rustlib/src/rust/library ]; then
    # Its own target folder: std for wasm32 is built from source there.
    out=${CARGO_TARGET_DIR:-target/wasm}
    env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$out" \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
        /usr/bin/cargo build --release --target "$target" -Z build-std=std,panic_abort
else
    echo "build.sh: no wasm toolchain: rustup target add $target, or (Debian)" \
        "apt-get install rustc-web cargo-web rust-web-src lld" >&2
    exit 1
fi
cp "$out/$target/release/@CRATE@.wasm" .
echo "built @CRATE@.wasm"
