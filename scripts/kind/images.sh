#!/usr/bin/env bash
# The container images kubeadm v1.36.3 and kind v0.33.0 need, built from locally built
# static binaries (no registry), under exactly the names `kubeadm config images list` and
# kind's manifests use:
#   kube-apiserver, kube-controller-manager, kube-scheduler (scratch), kube-proxy (Debian +
#   iptables), pause (gcc -static), etcd 3.6.16 (scripts/build-etcd.sh), CoreDNS,
#   local-path-provisioner (+ a busybox-static helper), and a placeholder for kindnetd
#   (not buildable from a package registry; the cluster runs with disableDefaultCNI).
# Invariants: each image carries label raftkv.key = hash of its binary and this script and
# is rebuilt only when that changes; the build contexts are temp dirs removed on exit.
source "$(dirname "$0")/lib.sh"
TOOLS="$KIND_CACHE/tools"
CTX=$(mktemp -d "$KIND_CACHE/.imgctx.XXXXXX")
trap 'rm -rf "$CTX"' EXIT
IPT_ROOT="$KIND_CACHE/rootfs/iptables"

# mk TAG FROM ENTRYPOINT_JSON SRC:DEST...   (a scratch or Debian image holding the files)
mk() {
    local tag="$1" from="$2" ep="$3"; shift 3
    local key pair from_id=scratch
    [[ $from == scratch ]] || from_id=$(docker image inspect -f '{{.Id}}' "$from")
    key=$(input_key "$0" "$from_id" "$ep" "$@" "${@%%:*}")
    image_current "$tag" "$key" && return 0
    local c="$CTX/$(echo "$tag" | tr '/:' '__')"
    mkdir -p "$c/rootfs/tmp"; chmod 1777 "$c/rootfs/tmp"
    for pair in "$@"; do
        mkdir -p "$c/rootfs/$(dirname "${pair#*:}")"
        cp "${pair%%:*}" "$c/rootfs/${pair#*:}"
    done
    printf 'FROM %s\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nLABEL raftkv.key=%s\nENTRYPOINT %s\n' \
        "$from" "$key" "$ep" >"$c/Dockerfile"
    docker build -q -t "$tag" "$c" >/dev/null
    say "built $tag"
}

iptables_base() {
    local key; key=$(input_key "$0" iptables nftables conntrack)
    image_current "$IPTABLES_IMAGE" "$key" && return 0
    if [[ ! -f $IPT_ROOT/.done ]]; then
        derive_rootfs "$IPT_ROOT"
        chroot_apt "$IPT_ROOT" iptables nftables conntrack
        touch "$IPT_ROOT/.done"
    fi
    import_rootfs "$IPT_ROOT" "$IPTABLES_IMAGE" --change "LABEL raftkv.key=$key"
}

control_plane() {
    local b
    for b in kube-apiserver kube-controller-manager; do
        mk "registry.k8s.io/$b:$K8S_VERSION" scratch "[\"/usr/local/bin/$b\"]" "$K8S_BIN/$b:/usr/local/bin/$b"
    done
    mk "registry.k8s.io/kube-scheduler:$K8S_VERSION" scratch '["/usr/local/bin/kube-scheduler"]' \
        "$K8S_NODE_BIN/kube-scheduler:/usr/local/bin/kube-scheduler"
    mk "registry.k8s.io/kube-proxy:$K8S_VERSION" "$IPTABLES_IMAGE" '["/usr/local/bin/kube-proxy"]' \
        "$K8S_NODE_BIN/kube-proxy:/usr/local/bin/kube-proxy"
}

addons() {
    mk "$PAUSE_IMAGE" scratch '["/pause"]' "$TOOLS/pause@$PAUSE_VERSION/pause:/pause"
    mk "$ETCD_IMAGE" scratch '["/usr/local/bin/etcd"]' \
        "$ETCD_BIN/etcd:/usr/local/bin/etcd" "$ETCD_BIN/etcdctl:/usr/local/bin/etcdctl"
    docker tag "$ETCD_IMAGE" "$ETCD_KIND_ALIAS"
    mk "$COREDNS_IMAGE" scratch '["/coredns"]' "$TOOLS/coredns@$COREDNS_VERSION/coredns:/coredns"
    mk "$LPP_IMAGE" scratch '["/usr/local/bin/local-path-provisioner"]' \
        "$TOOLS/local-path-provisioner@$LPP_VERSION/local-path-provisioner:/usr/local/bin/local-path-provisioner"
    # the provisioner's helper pod runs `sh -c` scripts: busybox-static (Debian) on scratch
    local key; key=$(input_key "$0" /bin/busybox)
    if ! image_current "$LPP_HELPER_IMAGE" "$key"; then
        local c="$CTX/helper"; mkdir -p "$c/rootfs/bin" "$c/rootfs/tmp"; chmod 1777 "$c/rootfs/tmp"
        cp /bin/busybox "$c/rootfs/bin/busybox"
        printf 'FROM scratch\nCOPY rootfs/ /\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\nLABEL raftkv.key=%s\n' \
            "$key" >"$c/Dockerfile"
        docker build -q -t "$LPP_HELPER_IMAGE" "$c" >/dev/null
    fi
    # kindnetd: a named placeholder so kind's node-image build finds every image it expects;
    # never scheduled (disableDefaultCNI: true)
    docker tag "$PAUSE_IMAGE" "$KINDNETD_IMAGE"
}

need_docker
lock images
stage images-iptables-base iptables_base
for f in "$K8S_BIN/kube-apiserver" "$K8S_NODE_BIN/kube-proxy" "$ETCD_BIN/etcd" "$TOOLS/coredns@$COREDNS_VERSION/coredns" \
         "$TOOLS/local-path-provisioner@$LPP_VERSION/local-path-provisioner" "$TOOLS/pause@$PAUSE_VERSION/pause"; do
    [[ -x $f ]] || { say "missing $f (run scripts/kind/setup.sh, which builds it first)"; exit 1; }
done
stage images-control-plane control_plane
stage images-addons addons
