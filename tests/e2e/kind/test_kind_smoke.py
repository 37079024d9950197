"""Smoke test of the kind setup: the raftkv image serves etcd clients inside Kubernetes.

A single-member raftkv runs from ``raftkv:0.1.0`` in a StatefulSet pod whose data directory
is a local-path PVC, behind a headless Service; a second pod (``raftkv:0.1.1``) runs the
image's etcdctl 3.6.16 against the member's DNS name, puts a key and reads it back. It also
checks what the upgrade tests rely on: the two tags report different distribution
versions, the member runs as uid 10001, and its data lives on the bound claim.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.kind import KindCluster

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
        readinessProbe:
          tcpSocket: {{port: 2379}}
          periodSeconds: 1
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
      etcdctl --endpoints=http://{fqdn}:2379 --dial-timeout=5s put {key} {value} &&
      etcdctl --endpoints=http://{fqdn}:2379 get {key} --print-value-only
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
        k.kubectl("-n", ns, "wait", "pod/etcdctl-smoke",
                  "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s", timeout=140)
        logs = k.kubectl("-n", ns, "logs", "etcdctl-smoke").stdout.split()
        assert logs == ["OK", value], logs

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
