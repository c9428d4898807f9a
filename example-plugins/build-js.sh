#!/usr/bin/env bash
# Builds the example plugins written in TypeScript:
#   - hello-ts (plain TypeScript on corral's JavaScript engine):
#     example-plugins/hello-ts/dist/plugin.js, bundled by esbuild;
#   - as-hello (AssemblyScript, a wasm module):
#     example-plugins/as-hello/build/as-hello.wasm.
# Installs Node and npm from Debian when missing (run as root, or install
# `nodejs npm` first); the packages come from the npm registry, pinned by
# each folder's package-lock.json. `npm ci` runs again only when a lock
# file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=(example-plugins/hello-ts example-plugins/as-hello)

tests/node.sh "${examples[@]}"
for example in "${examples[@]}"; do
    (cd "$example" && npm run --silent build)
done
