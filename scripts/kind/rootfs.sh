#!/usr/bin/env bash
# The Debian bookworm minbase rootfs every image here starts from (debootstrap from the
# mirror this machine's apt uses), and its docker image $DEBIAN_IMAGE.
# Invariants: $KIND_CACHE/rootfs/debian/.done marks a complete debootstrap (it runs in a
# temp dir renamed into place); the image is imported only when missing.
source "$(dirname "$0")/lib.sh"
ROOT="$KIND_CACHE/rootfs/debian"

bootstrap() {
    [[ -f $ROOT/.done ]] && return 0
    lock rootfs
    [[ -f $ROOT/.done ]] && return 0
    mkdir -p "$KIND_CACHE/rootfs"
    rm -rf "$ROOT.tmp"
    local mirror; mirror=$(debian_mirror)
    say "debootstrap --variant=minbase bookworm from $mirror"
    nice -n 10 debootstrap --variant=minbase bookworm "$ROOT.tmp" "$mirror" >"$KIND_CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$KIND_CACHE/debootstrap.log" >&2; return 1; }
    rm -rf "$ROOT.tmp"/var/cache/apt/archives/*.deb
    touch "$ROOT.tmp/.done"
    rm -rf "$ROOT"; mv "$ROOT.tmp" "$ROOT"
}

image() {
    need_docker
    have_image "$DEBIAN_IMAGE" && return 0
    import_rootfs "$ROOT" "$DEBIAN_IMAGE"
}

stage rootfs-debootstrap bootstrap
stage rootfs-image image
