#!/usr/bin/env bash
# Build the kind node's Kubernetes binaries (kubelet, kubeadm, kubectl, kube-scheduler,
# kube-proxy) v1.36.3 into ${XDG_CACHE_HOME:-$HOME/.cache}/raftkv/k8s/<version>/node-bin.
# Same wrapper module, ldflags, lock and Go caches as scripts/build-k8s.sh (which does the
# work); atomic, locked and a fast warm check for the same reasons.
exec env RAFTKV_K8S_SET=node bash "$(dirname "$0")/build-k8s.sh" "$@"
