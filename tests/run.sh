#!/usr/bin/env bash
# Runs corral's whole test suite from a fresh checkout: builds every binary
# and plugin the end-to-end tests start, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace
