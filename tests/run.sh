#!/usr/bin/env bash
# Runs corral's whole test suite from a fresh checkout: builds the wasm
# example plugins (installing Debian's wasm toolchain when missing) and
# the TypeScript ones (installing Node and npm from Debian when missing;
# npm packages pinned by lock files), installs Debian's CPython headers
# when missing (the C plugin that embeds CPython), builds every binary and
# plugin the end-to-end tests start, runs all tests (cargo's, then the npm
# packages' own: the Node client against a real supervisor, the
# AssemblyScript library, the TypeScript examples), and ends with one
# summary line ("tests: N passed, N failed").
set -euo pipefail
cd "$(dirname "$0")/.."
example-plugins/build-wasm.sh
example-plugins/build-js.sh
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
# The npm packages' own tests (node's test runner): the Node client starts
# target/debug/corral itself.
packages=(supervisor/clients/node plugin-api/assemblyscript example-plugins/hello-ts example-plugins/as-hello)
tests/node.sh "${packages[@]}"
for package in "${packages[@]}"; do
    echo "== npm test in $package"
    (cd "$package" && npm test) 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
set -e
# cargo: "test result: ok. N passed; N failed"; node: "# pass N" (TAP) or
# "ℹ pass N" (spec).
awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) passed += $(i - 1)
            if ($i ~ /^failed;?$/) failed += $(i - 1)
        }
     }
     /^(#|ℹ) pass [0-9]+$/ { passed += $3 }
     /^(#|ℹ) (fail|cancelled) [0-9]+$/ { failed += $3 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
