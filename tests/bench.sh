#!/usr/bin/env bash
# Runs every corral benchmark in turn, each pinned to CPU 0 with its floor
# measured in the same run: builds the wasm examples and the release
# binaries first. Each bench prints its table and writes
# target/bench/NAME.json. Pass bench names to run only those
# (call_latency start_latency throughput crash_latency syscalls scale storage).
set -euo pipefail
cd "$(dirname "$0")/.."
benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
    benches=(call_latency start_latency throughput crash_latency syscalls scale storage)
fi
example-plugins/build-wasm.sh
example-plugins/build-js.sh
cargo build --release --workspace
for bench in "${benches[@]}"; do
    echo
    cargo bench -q -p corral-tests --bench "$bench"
done
