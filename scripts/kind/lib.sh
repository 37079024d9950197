# shellcheck shell=bash
# Shared settings and helpers for scripts/kind/*.sh (sourced, never run).
#
# Invariants:
# - everything built lives under $KIND_CACHE (${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/kind);
#   each stage writes its output atomically (temp name, then rename or a .done stamp last),
#   so an interrupted stage is redone, never half-used;
# - stages that write to the same place serialise on a flock under $KIND_CACHE/locks;
# - the container daemon runs only inside the network namespace $KIND_NETNS, which has no
#   default route: cluster traffic never leaves it; host-side fetches (apt, Go proxy, PyPI)
#   happen before, in the normal namespace, and only at build time;
# - every stage prints its wall time (stage NAME: Ns) and appends it to $KIND_CACHE/timings.txt.
set -euo pipefail

KIND_CACHE="${RAFTKV_KIND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/kind}"
KIND_NETNS="${RAFTKV_KIND_NETNS:-raftkv-kind}"
KIND_DOCKER_SOCK="/run/$KIND_NETNS-docker.sock"
KIND_DOCKER_PID="/run/$KIND_NETNS-docker.pid"
KIND_DOCKER_ROOT="${RAFTKV_KIND_DOCKER_ROOT:-/var/lib/$KIND_NETNS-docker}"
KIND_DOCKER_EXEC="/run/$KIND_NETNS-docker-exec"
K8S_VERSION="${RAFTKV_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${RAFTKV_ETCD_VERSION:-v3.6.16}"
KIND_VERSION=v0.33.0
CRICTL_VERSION=v1.37.0
COREDNS_VERSION=v1.14.2
LPP_VERSION=v0.0.30
PAUSE_VERSION=3.10.2
# image names kind v0.33.0 and kubeadm v1.36.3 look for (kubeadm config images list)
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
PAUSE_IMAGE=registry.k8s.io/pause:$PAUSE_VERSION
ETCD_IMAGE=registry.k8s.io/etcd:${ETCD_VERSION#v}-0   # kind-config.yaml sets this tag for kubeadm
# kubeadm v1.36.3's default etcd tag: kind's node-image build insists on finding it (else it
# tries a registry); it is an alias of $ETCD_IMAGE, never run (kubeadm is told imageTag).
ETCD_KIND_ALIAS=registry.k8s.io/etcd:3.6.8-0
LPP_IMAGE=docker.io/kindest/local-path-provisioner:v20260820-69b56db7
LPP_HELPER_IMAGE=docker.io/kindest/local-path-helper:v20260131-7181c60a
KINDNETD_IMAGE=docker.io/kindest/kindnetd:v20260820-69b56db7
NODE_IMAGE=raftkv.local/kind-node:$K8S_VERSION
BASE_IMAGE=raftkv.local/kind-base:bookworm
DEBIAN_IMAGE=raftkv.local/debian:bookworm
IPTABLES_IMAGE=raftkv.local/debian-iptables:bookworm

KIND_BIN="$KIND_CACHE/bin"
K8S_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/k8s/$K8S_VERSION/bin"
K8S_NODE_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/k8s/$K8S_VERSION/node-bin"
ETCD_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/etcd/$ETCD_VERSION/bin"
KIND_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$KIND_SCRIPTS/../.." && pwd)"

export DOCKER_HOST="unix://$KIND_DOCKER_SOCK" DOCKER_BUILDKIT=0
export PATH="$KIND_BIN:$PATH"
mkdir -p "$KIND_CACHE/locks" "$KIND_BIN"

say() { echo "kind/$(basename "$0" .sh): $*" >&2; }

# Run a stage and print/record its wall time.
stage() {
    local name="$1"; shift
    local t0 rc=0
    t0=$(date +%s.%N)
    "$@" || rc=$?
    local dt
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    echo "stage $name: ${dt}s$( ((rc)) && echo " (FAILED rc=$rc)")" >&2
    echo "$(date -u +%FT%TZ) $name ${dt}s rc=$rc" >>"$KIND_CACHE/timings.txt"
    return "$rc"
}

# Take an exclusive lock for the rest of this script; the fd is kept in LOCK_FDS so a
# long-lived child (dockerd) can be started without inheriting it.
LOCK_FDS=()
lock() {
    local fd
    exec {fd}>"$KIND_CACHE/locks/$1.lock"
    flock "$fd"
    LOCK_FDS+=("$fd")
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker_up() { [[ -S $KIND_DOCKER_SOCK ]] && docker version >/dev/null 2>&1; }

need_docker() {
    docker_up || { say "dockerd is not running in netns $KIND_NETNS: run scripts/kind/dockerd.sh start"; exit 1; }
}

# The Debian mirror this machine's apt uses for bookworm (debootstrap must use the same one).
debian_mirror() {
    local m
    m=$(grep -rhoE '^URIs: *\S+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | head -1 || true)
    [[ -n $m ]] || m=$(grep -hoE '^deb +\S+/debian/? +bookworm ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
    echo "${m:-http://deb.debian.org/debian}"
}

# Export a chroot directory as a docker image (idempotent on the tag).
import_rootfs() {  # import_rootfs DIR TAG [docker import --change ...]
    local dir="$1" tag="$2"; shift 2
    tar -C "$dir" --exclude=./.done -c . | docker import "$@" - "$tag" >/dev/null
}

# Install Debian packages into chroot DIR (in the host's network namespace, build time only).
chroot_apt() {  # chroot_apt DIR PKG...
    local dir="$1"; shift
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    local rc=0
    { chroot "$dir" apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -q --no-install-recommends "$@" &&
      chroot "$dir" apt-get clean; } || rc=$?
    umount "$dir/proc" || true
    rm -rf "$dir"/var/lib/apt/lists/* "$dir/usr/sbin/policy-rc.d"
    : >"$dir/etc/resolv.conf"
    return "$rc"
}

# Copy the minbase rootfs to a fresh work dir for a derived rootfs.
derive_rootfs() {  # derive_rootfs DEST
    rm -rf "$1" "$1.tmp"
    cp -a "$KIND_CACHE/rootfs/debian" "$1.tmp"
    rm -f "$1.tmp/.done"
    mv "$1.tmp" "$1"
}

# A key for an image: hash of the given files and strings (scripts, versions, binaries' ids).
input_key() {  # input_key FILE|STRING...
    local a
    for a in "$@"; do
        if [[ -f $a ]]; then sha256sum "$a" | cut -c1-64; else echo "$a"; fi
    done | sha256sum | cut -c1-16
}

image_key() { docker image inspect -f '{{index .Config.Labels "raftkv.key"}}' "$1" 2>/dev/null || true; }

# Is image $1 present and built from inputs with key $2?
image_current() { [[ "$(image_key "$1")" == "$2" ]]; }
