#!/usr/bin/env bash
# The kind node image ($NODE_IMAGE): `kind build node-image --type file` from a
# kubernetes-server-linux-amd64.tar.gz laid out from our own builds, on $BASE_IMAGE.
# kind's build would `ctr content fetch` every image that is not inside the four
# control-plane tars, so pause, etcd, CoreDNS, kindnetd's placeholder and the storage images
# ride in kube-proxy.tar (rewritten by repo_first.py so kind sees all of them).
# Invariants: rebuilt only when the key (the component images' ids, the node binaries, the
# base image) changes; the key is stored as a label on an image derived from kind's output.
source "$(dirname "$0")/lib.sh"
EXTRA_IMAGES=("registry.k8s.io/kube-proxy:$K8S_VERSION" "$PAUSE_IMAGE" "$ETCD_IMAGE" "$ETCD_KIND_ALIAS"
              "$COREDNS_IMAGE" "$KINDNETD_IMAGE" "$LPP_IMAGE" "$LPP_HELPER_IMAGE")
CP_IMAGES=(kube-apiserver kube-controller-manager kube-scheduler)

build() {
    need_docker
    local ids=() i
    for i in "${EXTRA_IMAGES[@]}" "${CP_IMAGES[@]/#/registry.k8s.io/}" "$BASE_IMAGE"; do
        [[ $i == *:* ]] || i="$i:$K8S_VERSION"
        ids+=("$(docker image inspect -f '{{.Id}}' "$i")")
    done
    local key; key=$(input_key "$0" "$KIND_SCRIPTS/repo_first.py" "${ids[@]}" \
        "$K8S_NODE_BIN/kubeadm" "$K8S_NODE_BIN/kubelet" "$K8S_NODE_BIN/kubectl")
    image_current "$NODE_IMAGE" "$key" && return 0
    lock node-image
    T=$(mktemp -d "$KIND_CACHE/.node-tarball.XXXXXX")
    trap 'rm -rf "$T"' EXIT
    local S="$T/kubernetes/server/bin"
    mkdir -p "$S"
    echo "$K8S_VERSION" >"$T/kubernetes/version"
    cp "$K8S_NODE_BIN/kubeadm" "$K8S_NODE_BIN/kubelet" "$K8S_NODE_BIN/kubectl" "$S/"
    for i in "${CP_IMAGES[@]}"; do docker save "registry.k8s.io/$i:$K8S_VERSION" >"$S/$i.tar"; done
    docker save "${EXTRA_IMAGES[@]}" >"$T/multi.tar"
    python3 "$KIND_SCRIPTS/repo_first.py" "$T/multi.tar" "$S/kube-proxy.tar" >&2
    rm "$T/multi.tar"
    tar -C "$T" -c kubernetes | gzip -1 >"$T/kubernetes-server-linux-amd64.tar.gz"
    rm -rf "$T/kubernetes"
    kind build node-image --type file "$T/kubernetes-server-linux-amd64.tar.gz" \
        --base-image "$BASE_IMAGE" --image "$NODE_IMAGE.unlabelled" >&2
    printf 'FROM %s\nLABEL raftkv.key=%s\n' "$NODE_IMAGE.unlabelled" "$key" | docker build -q -t "$NODE_IMAGE" - >/dev/null
    docker rmi "$NODE_IMAGE.unlabelled" >/dev/null
}
stage node-image build
