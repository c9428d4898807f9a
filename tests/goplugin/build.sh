#!/bin/sh
# Builds target/goplugin/goplugin-echo, the go-plugin comparison row of
# tests/benches/call_latency.rs, offline: Go and go-plugin 1.0.1 with its
# dependencies come from Debian packages (sources under /usr/share/gocode),
# built in GOPATH mode, so no module proxy or other download is used.
# Installs the packages first when they are missing and this is root with
# apt-get. Exits non-zero, saying why, when it cannot build.
#
# Usage: tests/goplugin/build.sh [OUTPUT]; OUTPUT (default
# target/goplugin/goplugin-echo under the workspace root) is where the
# binary goes, relative to the caller's directory.
set -eu

out=${1:-}
case $out in
"" | /*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/../.."
root=$(pwd)
gocode=/usr/share/gocode
out=${out:-$root/target/goplugin/goplugin-echo}
# go-plugin 1.0.1 imports grpc even for net/rpc plugins, but Debian's
# package does not depend on it, hence golang-google-grpc-dev.
packages="golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev"

have_sources() {
    command -v go >/dev/null 2>&1 &&
        [ -d "$gocode/src/github.com/hashicorp/go-plugin" ] &&
        [ -d "$gocode/src/google.golang.org/grpc" ]
}

if ! have_sources; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "goplugin: installing $packages" >&2
        # shellcheck disable=SC2086 # one word per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null ||
            { echo "goplugin: apt-get install $packages failed" >&2; exit 1; }
    fi
    if ! have_sources; then
        echo "goplugin: cannot build: need go and go-plugin's sources in $gocode (Debian: $packages)" >&2
        exit 1
    fi
fi

mkdir -p "$(dirname "$out")" "$root/target/goplugin"
cd "$root/tests/goplugin"
# GOPATH mode over the Debian sources; GOPROXY=off makes sure
# nothing is ever fetched.
if ! env GO111MODULE=off GOPATH="$gocode" GOPROXY=off GOFLAGS= \
    GOCACHE="$root/target/goplugin/gocache" CGO_ENABLED=0 \
    go build -trimpath -o "$out" .; then
    echo "goplugin: go build failed" >&2
    exit 1
fi
echo "goplugin: built $out" >&2
