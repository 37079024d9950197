#!/usr/bin/env bash
# Build etcd's own load generator, `benchmark` (package tools/benchmark of the Go module
# go.etcd.io/etcd/v3), for bench/compare.py. Not part of `make test`: benchmarks never run
# there. The tool's version need not match the server's (it speaks the v3 gRPC API).
#
# Invariants:
# - the binary is ${RAFTKV_BENCHMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/etcd-benchmark/$VERSION}/benchmark,
#   renamed into place only when complete; a present binary returns at once;
# - concurrent runs serialise on a lock file and re-check after taking it;
# - the root module's own replace directives apply only inside etcd's repository, so a
#   wrapper module requiring go.etcd.io/etcd/v3 at $VERSION gives the build list.
set -euo pipefail

VERSION="${RAFTKV_BENCHMARK_VERSION:-v3.6.8}"
CACHE="${RAFTKV_BENCHMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/etcd-benchmark/$VERSION}"
say() { echo "build-etcd-benchmark: $*" >&2; }

if [[ -x "$CACHE/benchmark" ]]; then say "cached: $CACHE/benchmark"; exit 0; fi
command -v go >/dev/null || { say "the Go toolchain is not on PATH"; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [[ -x "$CACHE/benchmark" ]]; then say "cached: $CACHE/benchmark"; exit 0; fi

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
printf 'module raftkv.local/etcdbenchmark\n\ngo 1.24\n' >go.mod
start=$(date +%s)
say "downloading go.etcd.io/etcd/v3@$VERSION"
GOFLAGS=-mod=mod go get "go.etcd.io/etcd/v3@$VERSION"
say "building tools/benchmark"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -p "${RAFTKV_ETCD_JOBS:-2}" -trimpath -ldflags "-s -w" \
    -o "$WORK/benchmark" go.etcd.io/etcd/v3/tools/benchmark
mv "$WORK/benchmark" "$CACHE/benchmark"
say "built $CACHE/benchmark in $(( $(date +%s) - start ))s"
