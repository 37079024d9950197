"""Smoke test of the kind setup: the raftkv image serves etcd clients inside Kubernetes.

A single-member raftkv runs from ``raftkv:0.1.0`` in a StatefulSet pod whose data directory
is a local-path PVC, behind a headless Service; a second pod (``raftkv:0.1.1``) runs the
image's etcdctl 3.6.16 against the member's DNS name, puts a key and reads it back. It also
checks what the upgrade tests rely on: the two tags report different distribution
versions, the member runs as uid 10001, and its data lives on the bound claim; and that
the cluster's own etcd is the 3.6.16 build.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.kind import KindCluster
from tests.support.proc import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.slow]

MEMBER = """
apiVersion: v1
kind: Service
metadata: {{name: raftkv-smoke}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{app: raftkv-smoke}}
  ports:
  - {{name: client, port: 2379}}
  - {{name: peer, port: 2380}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: raftkv-smoke}}
spec:
  serviceName: raftkv-smoke
  replicas: 1
  selector: {{matchLabels: {{app: raftkv-smoke}}}}
  template:
    metadata: {{labels: {{app: raftkv-smoke}}}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext: {{fsGroup: 10001}}
      containers:
      - name: raftkv
        image: {image}
        imagePullPolicy: Never
        command:
        - raftkv
        - --name=raftkv-smoke-0
        - --data-dir=/var/lib/raftkv/data/member
        - --listen-client-urls=http://0.0.0.0:2379
        - --advertise-client-urls=http://{fqdn}:2379
        - --listen-peer-urls=http://0.0.0.0:2380
        - --initial-advertise-peer-urls=http://{fqdn}:2380
        - --listen-metrics-urls=http://0.0.0.0:2381
        ports:
        - {{containerPort: 2379, name: client}}
        - {{containerPort: 2380, name: peer}}
        readinessProbe:   # a quorum read through the image's etcdctl: the member has a leader
          exec:
            command: [etcdctl, --endpoints=127.0.0.1:2379, endpoint, health]
          periodSeconds: 1
          timeoutSeconds: 5
        volumeMounts:
        - {{name: data, mountPath: /var/lib/raftkv/data}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: standard
      resources: {{requests: {{storage: 64Mi}}}}
"""

CLIENT = """
apiVersion: v1
kind: Pod
metadata: {{name: etcdctl-smoke}}
spec:
  restartPolicy: Never
  containers:
  - name: etcdctl
    image: {image}
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - >-
      etcdctl --endpoints=http://{fqdn}:2379 --command-timeout=10s put {key} {value} &&
      etcdctl --endpoints=http://{fqdn}:2379 --command-timeout=10s get {key} --print-value-only
"""


def test_raftkv_image_serves_etcdctl_over_service_dns(kind_cluster: KindCluster) -> None:
    k = kind_cluster
    ns = f"smoke-{secrets.token_hex(3)}"
    fqdn = f"raftkv-smoke-0.raftkv-smoke.{ns}.svc.cluster.local"
    key, value = "smoke-key", f"value-{secrets.token_hex(4)}"
    k.kubectl("create", "namespace", ns)
    try:
        k.kubectl("-n", ns, "apply", "-f", "-",
                  input=MEMBER.format(image=k.images["0.1.0"], fqdn=fqdn))
        k.kubectl("-n", ns, "rollout", "status", "sts/raftkv-smoke", "--timeout=180s",
                  timeout=200)
        pvc = json.loads(k.kubectl("-n", ns, "get", "pvc", "data-raftkv-smoke-0",
                                   "-o", "json").stdout)
        assert pvc["status"]["phase"] == "Bound", pvc["status"]
        assert pvc["spec"]["storageClassName"] == "standard"

        k.kubectl("-n", ns, "apply", "-f", "-",
                  input=CLIENT.format(image=k.images["0.1.1"], fqdn=fqdn, key=key,
                                      value=value))

        def finished() -> str | None:
            phase = k.kubectl("-n", ns, "get", "pod", "etcdctl-smoke",
                              "-o", "jsonpath={.status.phase}").stdout
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_until(finished, 120, "the etcdctl pod to finish", 0.5)
        logs = k.kubectl("-n", ns, "logs", "etcdctl-smoke").stdout
        assert phase == "Succeeded", f"etcdctl pod {phase}:\n{logs}"
        assert logs.split() == ["OK", value], logs

        def in_member(*argv: str) -> str:
            return k.kubectl("-n", ns, "exec", "raftkv-smoke-0", "--", *argv).stdout.strip()

        version = "import importlib.metadata as m; print(m.version('raftkv'))"
        assert in_member("python3", "-c", version) == "0.1.0"
        assert in_member("id", "-u") == "10001"
        assert in_member("etcdctl", "version").splitlines()[0] == "etcdctl version: 3.6.16"
        # the member's WAL is on the claim's volume
        assert in_member("ls", "/var/lib/raftkv/data/member"), "empty data dir"
        run_version = ["run", "--rm", "--entrypoint", "python3", k.images["0.1.1"], "-c",
                       version]
        assert k.run(["docker", *run_version]).stdout.strip() == "0.1.1"
    finally:
        k.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_control_plane_runs_the_etcd_3_6_16_build(kind_cluster: KindCluster) -> None:
    """kubeadm took the etcd image tag from scripts/kind/kind-config.test.yaml."""
    k = kind_cluster
    pod = f"etcd-{k.name}-control-plane"
    image = k.kubectl("-n", "kube-system", "get", "pod", pod,
                      "-o", "jsonpath={.spec.containers[0].image}").stdout
    assert image == "registry.k8s.io/etcd:3.6.16-0"
    out = k.kubectl("-n", "kube-system", "exec", pod, "--", "etcd", "--version").stdout
    assert out.splitlines()[0] == "etcd Version: 3.6.16", out
