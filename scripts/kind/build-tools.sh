#!/usr/bin/env bash
# Build the Go and C tools of the kind setup from the Go module proxy (no registry):
# kind, crictl (for the node image), CoreDNS, local-path-provisioner (images), and pause
# (gcc -static of pause.c from the k8s.io/kubernetes module).
#
# Invariants: each tool lands in $KIND_CACHE/tools/<name>@<version>/ which is created by
# renaming a finished temp dir (so present == complete); a warm run only tests for those
# dirs; the kind binary is also linked into $KIND_CACHE/bin for the other scripts.
source "$(dirname "$0")/lib.sh"
TOOLS="$KIND_CACHE/tools"
mkdir -p "$TOOLS"

go_tool() {  # go_tool NAME VERSION PACKAGE@VERSION
    local name="$1" ver="$2" pkg="$3" dest="$TOOLS/$1@$2"
    [[ -x $dest/$name ]] && return 0
    lock "tool-$name"
    [[ -x $dest/$name ]] && return 0
    local tmp
    tmp=$(mktemp -d "$TOOLS/.build-$name.XXXXXX")
    say "go install $pkg"
    GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go install -trimpath -ldflags "-s -w" "$pkg"
    rm -rf "$dest"; mv "$tmp" "$dest"
}

pause_bin() {
    local dest="$TOOLS/pause@$PAUSE_VERSION" src
    [[ -x $dest/pause ]] && return 0
    src="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
    [[ -f $src ]] || GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@$K8S_VERSION"
    local tmp
    tmp=$(mktemp -d "$TOOLS/.build-pause.XXXXXX")
    gcc -Os -static -DVERSION="$PAUSE_VERSION" -o "$tmp/pause" "$src"
    strip "$tmp/pause"
    rm -rf "$dest"; mv "$tmp" "$dest"
}

stage tool-kind go_tool kind "$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION"
ln -sfn "$TOOLS/kind@$KIND_VERSION/kind" "$KIND_BIN/kind"
stage tool-crictl go_tool crictl "$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
stage tool-pause pause_bin
stage tool-coredns go_tool coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION"
stage tool-local-path-provisioner go_tool local-path-provisioner "$LPP_VERSION" \
    "github.com/rancher/local-path-provisioner@$LPP_VERSION"
