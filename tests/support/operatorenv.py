"""The operator against a real kube-apiserver, its member pods run as local processes.

:class:`OperatorEnv` is what the envtest scenarios of the operator share: the CRD applied,
a namespace, a :class:`~tests.support.podrunner.PodRunner` (member pods as raftkv
processes on loopback addresses from ``host_template``) and the ``raftkv-operator``
console script as a :class:`~tests.support.proc.Proc`, plus kubectl shortcuts.

Invariants:
- :meth:`OperatorEnv.stop` stops the operator and every member process by pid; it is
  safe to call twice and after a failed start (the fixture calls it in ``finally``);
- the operator can be stopped and started again (:meth:`stop_operator`,
  :meth:`start_operator`) while the members keep running, as in an operator upgrade;
- nothing here sleeps: waits are :func:`~tests.support.proc.wait_until` polls.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from raftkv.client.tls import TLSConfig
from tests.support.k8s import ControlPlane
from tests.support.podrunner import PodRunner
from tests.support.proc import Proc, free_port

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / "raftclusters.raftkv.dev.yaml"
OPERATOR = Path(sys.executable).parent / "raftkv-operator"


class OperatorEnv:
    def __init__(self, k8s: ControlPlane, workdir: Path, namespace: str,
                 host_template: str) -> None:
        self.k8s, self.workdir, self.ns = k8s, workdir, namespace
        self.host_template = host_template
        self.runner = PodRunner(k8s.kubeconfig, namespace, workdir, host_template)
        self.tmpdir = workdir / "operator-tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.operator = Proc("raftkv-operator", [
            str(OPERATOR), "--namespace", namespace, "--standalone",
            "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        ], workdir / "operator.log", env={
            "KUBECONFIG": str(k8s.kubeconfig), "RAFTKV_OPERATOR_INTERVAL": "1",
            "RAFTKV_MEMBER_HOST_TEMPLATE": host_template,
            # its temporary files (the client's TLS keys) stay in the test's own directory
            "TMPDIR": str(self.tmpdir)})

    # --- lifecycle ------------------------------------------------------------------------

    def apply_crd(self, text: str | None = None) -> None:
        """The CRD (``text``: another version of it), applied and Established."""
        if text is None:
            self.kubectl("apply", "-f", str(CRD), ns=None)
        else:
            self.kubectl("apply", "-f", "-", input=text, ns=None)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/raftclusters.raftkv.dev", ns=None)

    def start(self) -> OperatorEnv:
        self.apply_crd()
        self.kubectl("create", "namespace", self.ns, ns=None, check=False)
        self.runner.start()
        self.operator.start()
        return self

    def stop_operator(self) -> None:
        self.operator.stop()

    def start_operator(self) -> None:
        self.operator.start()

    def stop(self) -> None:
        self.operator.stop()
        self.runner.stop()

    # --- kubectl -------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                ns: str | None = "") -> Any:
        """kubectl in the namespace (``ns=None``: cluster-wide); with ``check`` a failure
        raises with kubectl's own message."""
        where = ["-n", self.ns if ns == "" else ns] if ns is not None else []
        r = self.k8s.kubectl(*where, *args, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get("raftcluster", name).get("status") or {})

    def condition(self, name: str, ctype: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or []
                     if c["type"] == ctype), {})

    def healthy(self, name: str, replicas: int) -> dict[str, Any] | None:
        """The status once Running with ``replicas`` healthy voters."""
        st = self.status(name)
        ms = st.get("members") or []
        ok = st.get("phase") == "Running" and len(ms) == replicas and all(
            m["healthy"] and not m["learner"] for m in ms)
        return st if ok else None

    def pod_argv(self, pod: str) -> list[str]:
        c = self.get("pod", pod)["spec"]["containers"][0]
        return [*(c.get("command") or []), *(c.get("args") or [])]

    # --- members -------------------------------------------------------------------------

    def url(self, ordinal: int, scheme: str = "https") -> str:
        return f"{scheme}://{self.host_template.format(ordinal=ordinal)}:2379"

    def client_tls(self, cluster: str) -> TLSConfig:
        """The operator's client Secret of ``cluster`` (CN root), written to files."""
        data = self.get("secret", f"{cluster}-client-tls")["data"]
        d = self.workdir / f"client-{cluster}"
        d.mkdir(exist_ok=True)
        for key in ("ca.crt", "tls.crt", "tls.key"):
            (d / key).write_bytes(base64.b64decode(data[key]))
        return TLSConfig(cacert=d / "ca.crt", cert=d / "tls.crt", key=d / "tls.key")

    def logs(self) -> str:
        return f"--- operator ---\n{self.operator.log_tail(80)}\n{self.runner.logs()}"
