#!/usr/bin/env bash
# The kind *base* image ($BASE_IMAGE), built without a registry: the Debian minbase rootfs
# plus systemd, Debian's containerd 1.6/runc/CNI plugins, kind v0.33.0's base files (from its
# Go module), crictl, and this machine's workarounds:
#   - containerd `restrict_oom_score_adj = true` (no CAP_SYS_RESOURCE: a negative
#     oom_score_adj for pod sandboxes fails in runc);
#   - files/ctr-compat as /usr/local/bin/ctr (kind calls containerd 2.x's ctr);
#   - a bridge CNI conflist (kindnetd is not buildable from a package registry; the
#     cluster config sets disableDefaultCNI) - single node only;
#   - no fuse-overlayfs proxy plugin in containerd's config.
# Invariants: the apt layer is cached ($KIND_CACHE/rootfs/kindbase/.done); the image carries
# label raftkv.key = hash of this script, lib.sh, the files and versions, and is rebuilt
# only when that changes.
source "$(dirname "$0")/lib.sh"
ROOT="$KIND_CACHE/rootfs/kindbase"
KIND_SRC="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base"
CRICTL="$KIND_CACHE/tools/crictl@$CRICTL_VERSION/crictl"
APT_PKGS=(systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2
          pigz bash ca-certificates jq procps containerd runc containernetworking-plugins)
KEY=$(input_key "$0" "$KIND_SCRIPTS/lib.sh" "$KIND_SCRIPTS/files/ctr-compat" "$CRICTL" \
      "$KIND_VERSION" "${APT_PKGS[*]}")

apt_layer() {
    [[ -f $ROOT/.done ]] && return 0
    derive_rootfs "$ROOT"
    chroot_apt "$ROOT" "${APT_PKGS[@]}"
    touch "$ROOT/.done"
}

kind_files() {  # kind's images/base/Dockerfile, for Debian's containerd paths
    local R="$ROOT" KD="$KIND_SRC"
    [[ -d $KD ]] || GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kind@$KIND_VERSION"
    mkdir -p "$R/kind/bin" "$R/etc/systemd/system/kubelet.service.d" "$R/etc/containerd" \
        "$R/etc/kubernetes/manifests" "$R/opt/cni" "$R/etc/cni/net.d"
    install -m 0755 "$KD"/files/usr/local/bin/* "$R/usr/local/bin/"
    cp -r "$KD/files/kind/." "$R/kind/"; chmod -R u+w,a+rX "$R/kind"; chmod 0755 "$R"/kind/bin/*
    install -m 0644 "$KD/files/etc/crictl.yaml" "$R/etc/"
    install -m 0644 "$KD/files/etc/default/kubelet" "$R/etc/default/"
    install -m 0644 "$KD"/files/etc/sysctl.d/* "$R/etc/sysctl.d/"
    install -m 0644 "$KD"/files/etc/systemd/system/*.service "$KD"/files/etc/systemd/system/*.slice \
        "$R/etc/systemd/system/"
    install -m 0644 "$KD"/files/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
    rm -f "$R/etc/systemd/system/containerd-fuse-overlayfs.service"
    sed -e '/^\[proxy_plugins\]/,/^  address/d' \
        -e "s#registry.k8s.io/pause:[0-9.]*\"#$PAUSE_IMAGE\"#" \
        -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
        "$KD/files/etc/containerd/config.toml" >"$R/etc/containerd/config.toml"
    grep -q 'restrict_oom_score_adj = true' "$R/etc/containerd/config.toml" || {
        say "kind's containerd config changed: restrict_oom_score_adj not set"; return 1; }
    ln -sf /usr/bin/containerd "$R/usr/local/bin/containerd"
    ln -sfn /usr/lib/cni "$R/opt/cni/bin"
    install -m 0755 "$CRICTL" "$R/usr/local/bin/crictl"
    install -m 0755 "$KIND_SCRIPTS/files/ctr-compat" "$R/usr/local/bin/ctr"
    cat >"$R/etc/cni/net.d/10-bridge.conflist" <<'CNI'
{"cniVersion": "0.4.0", "name": "raftkv-kind-bridge", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CNI
    chroot "$R" ctr oci spec |
        jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}] | del(.process.rlimits)' \
        >"$R/etc/containerd/cri-base.json"
    # systemd as in kind's Dockerfile
    find "$R/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/etc/systemd/system/*.wants/* \
        "$R"/lib/systemd/system/local-fs.target.wants/* "$R"/lib/systemd/system/sockets.target.wants/*udev* \
        "$R"/lib/systemd/system/sockets.target.wants/*initctl* "$R"/lib/systemd/system/basic.target.wants/*
    grep -q '^ReadKMsg=no' "$R/etc/systemd/journald.conf" || echo "ReadKMsg=no" >>"$R/etc/systemd/journald.conf"
    ln -sf /usr/lib/systemd/systemd "$R/sbin/init"
    chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
    chroot "$R" systemctl mask systemd-binfmt.service
}

image() {
    need_docker
    if image_current "$BASE_IMAGE" "$KEY"; then return 0; fi
    lock base-image
    kind_files
    import_rootfs "$ROOT" "$BASE_IMAGE.rootfs"
    # docker import cannot set STOPSIGNAL: a one-line build on top does
    printf '%s\n' "FROM $BASE_IMAGE.rootfs" "ENV container=docker" "STOPSIGNAL SIGRTMIN+3" \
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "LABEL raftkv.key=$KEY" |
        docker build -q -t "$BASE_IMAGE" - >/dev/null
}

[[ -f $KIND_CACHE/rootfs/debian/.done ]] || { say "run scripts/kind/rootfs.sh first"; exit 1; }
[[ -x $CRICTL ]] || { say "run scripts/kind/build-tools.sh first (crictl)"; exit 1; }
lock base-rootfs
stage base-apt apt_layer
stage base-image image
