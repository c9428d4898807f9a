#!/usr/bin/env bash
# corral demo: build, serve the example plugins, call them, kill a worker
# and watch the supervisor fail the call in flight and restart it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cargo build --release --workspace
# The TypeScript examples and the Node client, when Node and npm are here
# (example-plugins/build-js.sh installs them from Debian otherwise).
node=
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    example-plugins/build-js.sh
    tests/node.sh supervisor/clients/node
    node=yes
fi
corral=target/release/corral
dir=$(mktemp -d)
chmod 755 "$dir"   # the workers' own uids reach their cache under it
export CORRAL_SOCKET="$dir/corral.sock"
supervisor=
cleanup() {
    [ -n "$supervisor" ] && kill "$supervisor" 2>/dev/null && wait "$supervisor" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

step "corral serve --plugins example-plugins --socket $CORRAL_SOCKET --state-dir $dir/state &"
"$corral" serve --plugins example-plugins --state-dir "$dir/state" 2>"$dir/corral.log" &
supervisor=$!
for _ in $(seq 100); do [ -S "$CORRAL_SOCKET" ] && break; sleep 0.05; done
until "$corral" ps >/dev/null 2>&1; do sleep 0.05; done

step "corral ps"
"$corral" ps

step "corral inspect hello    # what confines the worker"
"$corral" inspect hello

step "corral call hello upper 'hello, corral'"
"$corral" call hello upper 'hello, corral'; echo

step "corral call hello sum '1 2 3 36'"
"$corral" call hello sum '1 2 3 36'; echo

step "corral call wat-echo echo 'from a plugin written in WebAssembly text'"
"$corral" call wat-echo echo 'from a plugin written in WebAssembly text'; echo

if [ -n "$node" ]; then
    step "corral call hello-ts upper 'from typescript'    # plain TypeScript, on the embedded JavaScript engine"
    "$corral" call hello-ts upper 'from typescript'; echo
    step "corral call as-hello sum '20 22'    # AssemblyScript, compiled to wasm"
    "$corral" call as-hello sum '20 22'; echo
    step "node supervisor/clients/node/examples/call.mjs hello upper 'from node'    # a Node host app (@corral/client)"
    node supervisor/clients/node/examples/call.mjs hello upper 'from node'; echo
fi

step "corral call hello nope    # unknown method: a clear error, exit code 1"
"$corral" call hello nope || echo "(exit code $?)"

if command -v python3 >/dev/null; then
    step "python3 supervisor/clients/python/corral_client.py hello upper 'from python'    # the JSON host protocol"
    PYTHONDONTWRITEBYTECODE=1 python3 supervisor/clients/python/corral_client.py hello upper 'from python'; echo
fi

step "corral call counter incr; corral call counter incr    # host storage: survives restarts"
"$corral" call counter incr; echo
"$corral" call counter incr; echo

step "corral call greeter greet corral    # a plugin calling its dependency (hello) through the host"
"$corral" call greeter greet corral; echo

step "corral call ticker tick 1; corral call tally count    # publish/subscribe"
"$corral" call ticker tick 1 >/dev/null
"$corral" call ticker tick 2 >/dev/null
sleep 0.1
"$corral" call tally count; echo

step "corral logs tally    # every plugin's output, in rotated files under the state folder"
"$corral" logs tally

pid=$("$corral" inspect hello --json | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1)
step "ps -o pid,args -p $pid    # workers are ordinary processes"
ps -o pid,args -p "$pid"

step "corral call hello sleep 5000 &   then   kill -9 $pid"
"$corral" call hello sleep 5000 || echo "(the call in flight failed at once, exit code $?)" &
caller=$!
sleep 0.3
kill -9 "$pid"
wait "$caller" || true

sleep 0.2
step "corral ps    # a new worker, restarts=1, LAST-EXIT says how the old one died"
"$corral" ps

step "corral call hello echo 'still serving'"
"$corral" call hello echo 'still serving'; echo

step "corral call hello crash    # the plugin aborts its own process"
"$corral" call hello crash || echo "(exit code $?)"
sleep 1.2
"$corral" ps

step "corral profile example-plugins/hello --call upper hi    # which syscalls beyond the seccomp baseline does it need?"
"$corral" profile example-plugins/hello --call upper hi

step "corral top -n 1    # ps with calls, errors and latency"
"$corral" top -n 1

step "corral events --plugin hello    # what happened, and why"
"$corral" events --plugin hello

step "kill -TERM <supervisor>    # stops every worker, removes the socket"
kill -TERM "$supervisor"
wait "$supervisor" || true
supervisor=
echo "supervisor log:"
sed 's/^/  /' "$dir/corral.log"
