#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager from the Go module k8s.io/kubernetes
# into a cache outside the repo, once per machine. The tests find them there
# (tests/support/k8s.py reads the same path).
#
# Invariants:
# - the cache is ${RAFTKV_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/k8s/$VERSION};
#   $CACHE/bin holds only complete builds: binaries are built into a temp dir beside it and
#   renamed into place, so an interrupted run leaves no half-built bin/ behind;
# - a warm cache (bin/.complete present and the binaries answer --version) returns at once;
# - concurrent runs serialise on a lock file and re-check the cache after taking it;
# - the wrapper module's staging replace list is generated from the tag's go.mod by
#   scripts/k8s_wrapper.py, never hard-coded;
# - static binaries (CGO_ENABLED=0) with version ldflags, so /version reports the tag;
# - cold build time and peak RSS of each step are recorded in $CACHE/build-stats.txt
#   (GNU time -v when installed, otherwise wall time only);
# - RAFTKV_K8S_SET=node builds the kind node's binaries (kubelet kubeadm kubectl
#   kube-scheduler kube-proxy) into $CACHE/node-bin instead, with the same module, flags,
#   lock and Go caches (scripts/build-k8s-node.sh); the default set and path are unchanged.
set -euo pipefail

VERSION="${RAFTKV_K8S_VERSION:-v1.36.3}"
CACHE="${RAFTKV_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/k8s/$VERSION}"
JOBS="${RAFTKV_K8S_JOBS:-2}"
PYTHON="${PYTHON:-python3}"
case "${RAFTKV_K8S_SET:-control-plane}" in
    control-plane) BIN="$CACHE/bin"; STATS_NAME=build-stats.txt
                   BINARIES=(kube-apiserver kube-controller-manager) ;;
    node) BIN="$CACHE/node-bin"; STATS_NAME=build-stats-node.txt
          BINARIES=(kubelet kubeadm kubectl kube-scheduler kube-proxy) ;;
    *) echo "build-k8s: RAFTKV_K8S_SET must be control-plane or node" >&2; exit 2 ;;
esac
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { echo "build-k8s: $*" >&2; }

# Does binary $1 (path) report $VERSION? kubectl and kubeadm have no --version flag.
# grep reads all the output (no -q): under pipefail, grep -q exiting at its first match
# made kubectl, writing its second line, die of SIGPIPE now and then (2 of 30 runs), so a
# warm cache read as cold and was rebuilt.
reports_version() {
    case "$(basename "$1")" in
        kubectl) "$1" version --client 2>/dev/null | grep -x "Client Version: $VERSION" >/dev/null ;;
        kubeadm) "$1" version -o short 2>/dev/null | grep -x "$VERSION" >/dev/null ;;
        *) "$1" --version 2>/dev/null | grep -x "Kubernetes $VERSION" >/dev/null ;;
    esac
}

cached() {
    [[ -f "$BIN/.complete" ]] || return 1
    local b
    for b in "${BINARIES[@]}"; do
        reports_version "$BIN/$b" || return 1
    done
}

if cached; then
    say "cached: $BIN ($VERSION)"
    exit 0
fi

if ! command -v go >/dev/null; then
    say "the Go toolchain is not on PATH; install Go >= 1.26 to build kube-apiserver $VERSION"
    exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if cached; then  # another run finished the build while we waited for the lock
    say "cached: $BIN ($VERSION)"
    exit 0
fi

# A build killed with SIGKILL leaves its temp dir behind; we hold the lock, so none is live.
rm -rf "$CACHE"/build.*
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STATS="$WORK/build-stats.txt"
mkdir -p "$WORK/mod" "$WORK/bin"

# Run a step and record its wall time and peak RSS.
measure() {
    local label="$1"; shift
    local start end
    start=$(date +%s)
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -v -o "$WORK/time.txt" "$@"
        {
            echo "== $label"
            grep -E 'Elapsed \(wall clock\)|Maximum resident set size|User time|System time' \
                "$WORK/time.txt"
        } >>"$STATS"
    else
        "$@"
        echo "== $label (GNU time not installed: wall time only)" >>"$STATS"
    fi
    end=$(date +%s)
    echo "   wall seconds: $((end - start))" >>"$STATS"
}

MAJOR_MINOR="${VERSION#v}"
MAJOR="${MAJOR_MINOR%%.*}"
MINOR="${MAJOR_MINOR#*.}"; MINOR="${MINOR%%.*}"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
    LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

{
    echo "kube binaries $VERSION built $BUILD_DATE on $(nproc) cores, go -p $JOBS"
    go version
} >"$STATS"
total_start=$(date +%s)

say "generating the wrapper module for k8s.io/kubernetes $VERSION"
"$PYTHON" "$HERE/k8s_wrapper.py" --version "$VERSION" --dir "$WORK/mod"

cd "$WORK/mod"
say "resolving and downloading modules"
PKGS=()
for b in "${BINARIES[@]}"; do PKGS+=("k8s.io/kubernetes/cmd/$b@$VERSION"); done
measure "go get (module download)" go get "${PKGS[@]}"

export CGO_ENABLED=0
for b in "${BINARIES[@]}"; do
    say "building $b (this takes a while on a cold cache)"
    measure "go build $b" go build -p "$JOBS" -trimpath -ldflags "$LDFLAGS" \
        -o "$WORK/bin/$b" "k8s.io/kubernetes/cmd/$b"
    reports_version "$WORK/bin/$b" || {
        say "$b does not report $VERSION:"; "$WORK/bin/$b" version 2>&1 | head -5 >&2; exit 1; }
done
echo "== total wall seconds: $(( $(date +%s) - total_start ))" >>"$STATS"
touch "$WORK/bin/.complete"

# Swap the finished build into place; a reader sees either no bin/ or a complete one.
if [[ -e "$BIN" ]]; then mv "$BIN" "$WORK/old-bin"; fi
mv "$WORK/bin" "$BIN"
cp "$STATS" "$CACHE/$STATS_NAME"
say "built into $BIN; stats in $CACHE/$STATS_NAME"
cat "$CACHE/$STATS_NAME" >&2
