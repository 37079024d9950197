#!/usr/bin/env bash
# Install the host's Debian packages the kind setup needs: docker.io (dockerd 20.10),
# containerd, runc, the CNI plugins, debootstrap, jq (the runc wrapper edits OCI specs).
# Idempotent: a no-op (no apt call) when every package is installed.
source "$(dirname "$0")/lib.sh"
PKGS=(docker.io containerd runc containernetworking-plugins debootstrap iptables iproute2 jq
      util-linux gcc libc6-dev busybox-static)
install_pkgs() {
    local missing=() p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then say "all host packages present"; return 0; fi
    lock apt
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d: the packages must not start the host's own docker/containerd services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
stage host-packages install_pkgs
