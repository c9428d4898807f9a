#!/usr/bin/env bash
# Makes sure Node (18 or newer) and npm are installed, from Debian when
# they are missing (run as root, or install `nodejs npm` first); then, for
# each npm package folder given, installs its packages as its lock file
# pins them (`npm ci`, from the npm registry) unless they are installed
# already and the lock file has not changed since.
set -euo pipefail
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node.sh: installing Node and npm from Debian (nodejs npm)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "node.sh: Node $(node --version) is too old: corral's TypeScript tools need Node 18 or newer" >&2
    exit 1
fi
for package in "$@"; do
    # npm ci wipes node_modules: only when the lock file is newer than the
    # install it made.
    if ! [ "$package/node_modules/.package-lock.json" -nt "$package/package-lock.json" ]; then
        (cd "$package" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
