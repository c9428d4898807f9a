#!/usr/bin/env bash
# Runs corral's whole test suite from a fresh checkout: builds the wasm
# example plugins (installing Debian's wasm toolchain when missing),
# installs Debian's CPython headers when missing (the C plugin that embeds
# CPython), builds every binary and plugin the end-to-end tests start,
# runs all tests, and ends with one summary line ("tests: N passed, N
# failed").
set -euo pipefail
cd "$(dirname "$0")/.."
example-plugins/build-wasm.sh
if ! [ -x /usr/bin/python3-config ] || ! compgen -G "/usr/include/python3*/Python.h" >/dev/null; then
    echo "run.sh: installing Debian's CPython headers (python3-dev libpython3-dev)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dev libpython3-dev >/dev/null
fi
cargo build --workspace --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) passed += $(i - 1)
            if ($i ~ /^failed;?$/) failed += $(i - 1)
        }
     }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
