#!/usr/bin/env bash
# Builds the example plugins that have a wasm build (the same Rust source as
# their native build) into target/wasm-plugins/:
#   - for wasm32-unknown-unknown: hello, counter, greeter, ticker;
#   - for wasm32-wasip1 (WASI preview 1): notes.
#
# Uses rustup's wasm targets when they are installed; otherwise Debian's
# toolchain (rustc-web, with -Z build-std, and wasi-libc), installing it
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

plain=(hello counter greeter ticker)
wasi=(notes)
out=target/wasm-plugins
mkdir -p "$out"

# Small modules compile and load faster: no debug info in them.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true

installed() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }

# build TARGET CRATE...: leaves the modules in $target_dir/TARGET/release.
build() {
    local target=$1; shift
    local packages=("${@/#/-p}")
    if installed "$target"; then
        target_dir=target
        cargo build --release --target "$target" "${packages[@]}"
        return
    fi
    if ! [ -x /usr/bin/rustc ] || ! [ -x /usr/bin/cargo ] || ! command -v wasm-ld >/dev/null \
        || ! [ -d /usr/lib/rustlib/src/rust/library ] || ! [ -d /usr/lib/wasm32-wasi ]; then
        echo "build-wasm: installing Debian's wasm toolchain (rustc-web cargo-web rust-web-src lld wasi-libc)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld wasi-libc >/dev/null
    fi
    # Debian's rustc builds std for wasm32 from source; its own target dir
    # keeps these artifacts apart from the host toolchain's.
    target_dir=target/wasm
    local linker_var
    linker_var="CARGO_TARGET_$(echo "${target//-/_}" | tr '[:lower:]' '[:upper:]')_LINKER"
    local rustflags=""
    if [ "$target" = wasm32-wasip1 ]; then
        # Debian's wasi-libc, not a self-contained one rustc-web lacks.
        rustflags="-L /usr/lib/wasm32-wasi -C link-self-contained=no"
    fi
    env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$target_dir" \
        "$linker_var=wasm-ld" RUSTFLAGS="$rustflags" \
        /usr/bin/cargo build --release --target "$target" \
        -Z build-std=std,panic_abort "${packages[@]}"
}

build wasm32-unknown-unknown "${plain[@]}"
for crate in "${plain[@]}"; do
    cp "$target_dir/wasm32-unknown-unknown/release/${crate//-/_}.wasm" "$out/"
done
build wasm32-wasip1 "${wasi[@]}"
for crate in "${wasi[@]}"; do
    cp "$target_dir/wasm32-wasip1/release/${crate//-/_}.wasm" "$out/"
done
echo "build-wasm: wrote ${plain[*]/%/.wasm} ${wasi[*]/%/.wasm} to $out/"
