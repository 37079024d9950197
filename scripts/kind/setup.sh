#!/usr/bin/env bash
# The one entry point of the kind setup (`make kind`): build everything the kind e2e tests
# need, in order, each step idempotent and cached, each printing its time.
#
#   setup.sh           build what is missing (cold: ~30 min on 2 cores; warm: seconds)
#   setup.sh --check   exit 0 only when everything is built; build nothing, start nothing
#
# Steps: host packages (apt) -> Go/C builds (etcd 3.6.16, kube binaries, kind, crictl,
# CoreDNS, local-path-provisioner, pause, helm) -> dockerd in netns $KIND_NETNS -> Debian
# rootfs -> kind base image -> component images -> node image -> raftkv images.
# Invariants: a dockerd this script starts, it stops (by pid, on exit, also on failure);
# the image stages take the session lock, so they never run under a test session's
# cluster, and a dockerd left running by someone else is used and left running.
source "$(dirname "$0")/lib.sh"
HELM_VERSION="${RAFTKV_HELM_VERSION:-v3.22.0}"

check() {
    local f missing=0
    for f in "$ETCD_BIN/.complete" "$K8S_BIN/.complete" "$K8S_NODE_BIN/.complete" \
             "$KIND_BIN/kind" "${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/helm/$HELM_VERSION/bin/helm" \
             "$KIND_CACHE/built.stamp"; do
        [[ -e $f ]] || { echo "missing: $f" >&2; missing=1; }
    done
    command -v dockerd >/dev/null || { echo "missing: dockerd (docker.io)" >&2; missing=1; }
    return "$missing"
}

if [[ ${1:-} == --check ]]; then check; exit; fi

t_all=$(date +%s)
bash "$KIND_SCRIPTS/host-packages.sh"
# Go builds: one at a time (2 cores), each locked and cached by its own script
stage build-etcd nice -n 10 bash "$REPO/scripts/build-etcd.sh"
stage build-k8s nice -n 10 bash "$REPO/scripts/build-k8s.sh"
stage build-k8s-node nice -n 10 bash "$REPO/scripts/build-k8s-node.sh"
stage build-helm nice -n 10 bash "$REPO/scripts/build-helm.sh"
bash "$KIND_SCRIPTS/build-tools.sh"

# the test fixture holds this lock while its cluster (and dockerd) is up
lock session
started_dockerd=0
if ! docker_up; then
    bash "$KIND_SCRIPTS/dockerd.sh" start >/dev/null
    started_dockerd=1
fi
trap '((started_dockerd)) && bash "$KIND_SCRIPTS/dockerd.sh" stop' EXIT
rm -f "$KIND_CACHE/built.stamp"
bash "$KIND_SCRIPTS/rootfs.sh"
bash "$KIND_SCRIPTS/base-image.sh"
bash "$KIND_SCRIPTS/images.sh"
bash "$KIND_SCRIPTS/node-image.sh"
bash "$KIND_SCRIPTS/raftkv-image.sh"
date -u +%FT%TZ >"$KIND_CACHE/built.stamp"
echo "stage setup (total): $(( $(date +%s) - t_all ))s" >&2
