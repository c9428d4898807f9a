#!/usr/bin/env bash
# Builds the example plugins that have a wasm build (the same Rust source as
# their native build) for wasm32-unknown-unknown, into target/wasm-plugins/.
#
# Uses a rustup wasm32 target when one is installed; otherwise Debian's
# toolchain (rustc-web, with -Z build-std), installing it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(hello)
out=target/wasm-plugins
mkdir -p "$out"

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    target_dir=target
    cargo build --release --target wasm32-unknown-unknown "${crates[@]/#/-p}"
else
    if ! [ -x /usr/bin/rustc ] || ! [ -x /usr/bin/cargo ] || ! command -v wasm-ld >/dev/null \
        || ! [ -d /usr/lib/rustlib/src/rust/library ]; then
        echo "build-wasm: installing Debian's wasm toolchain (rustc-web cargo-web rust-web-src lld)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld wasi-libc >/dev/null
    fi
    # Debian's rustc builds std for wasm32 from source; its own target dir
    # keeps these artifacts apart from the host toolchain's.
    target_dir=target/wasm
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$target_dir" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
        /usr/bin/cargo build --release --target wasm32-unknown-unknown \
        -Z build-std=std,panic_abort "${crates[@]/#/-p}"
fi

for crate in "${crates[@]}"; do
    cp "$target_dir/wasm32-unknown-unknown/release/${crate//-/_}.wasm" "$out/"
done
echo "build-wasm: wrote ${crates[*]/%/.wasm} to $out/"
