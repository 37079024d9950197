"""Run the member pods of a namespace as local raftkv processes: a kubelet stand-in for envtest.

The control plane of ``tests.support.k8s`` has no kubelet, so pods stay Pending and no
member ever answers. :class:`PodRunner` watches the namespace's member pods (polling the
API) and runs each one's own command line as a local process, as a kubelet would run the
container:
- the operator was started with ``RAFTKV_MEMBER_HOST_TEMPLATE`` (e.g. ``127.77.{ordinal}.1``),
  so every member has its own loopback address, and only the listen flags' ``0.0.0.0``
  is replaced by that address (everything else, --initial-cluster included, is the
  operator's);
- the pod's volume claim is a directory named by the claim's UID: deleting the claim
  loses the data, a new claim of the same name starts empty;
- a pod runs only while its claim exists; a process that exits is restarted (the pod's
  restartPolicy is Always); a pod deleted (or replaced by a new UID) has its process
  stopped by pid, and :meth:`stop` stops them all;
- a pod's Secret volumes are written to a directory of its own (files 0600) when its
  process starts, and the container's mount paths in its flags point there; a pod whose
  Secret does not exist yet does not start (as the kubelet keeps it ContainerCreating).

Invariant: every process is a :class:`~tests.support.proc.Proc`, stopped by pid.
"""

from __future__ import annotations

import base64
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.support.proc import Proc

RAFTKV = Path(sys.executable).parent / "raftkv"


@dataclass
class _Running:
    uid: str
    proc: Proc
    restarts: int = 0


class PodRunner:
    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path,
                 host_template: str) -> None:
        self.namespace = namespace
        self.workdir = workdir
        self.host_template = host_template
        self.api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        self.running: dict[str, _Running] = {}  # pod name -> process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)
        self.errors: list[str] = []
        self.held: set[str] = set()  # pods whose process is kept down

    def start(self) -> PodRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for r in list(self.running.values()):
            r.proc.stop(grace=5)
        self.running.clear()

    def logs(self, lines: int = 15) -> str:
        return "\n".join(f"--- {n} ---\n{r.proc.log_tail(lines)}"
                         for n, r in sorted(self.running.items()))

    def kill(self, pod: str) -> None:
        """The process of ``pod`` dies (it is restarted, as a container would be)."""
        r = self.running.get(pod)
        if r is not None:
            r.proc.kill()

    def hold(self, pod: str) -> None:
        """Stop ``pod``'s process and keep it down (a container that cannot start)."""
        self.held.add(pod)
        r = self.running.get(pod)
        if r is not None:
            r.proc.kill()

    def release(self, pod: str) -> None:
        self.held.discard(pod)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._sync()
            except Exception as exc:  # the API may be briefly unavailable; try again
                self.errors.append(repr(exc))

    def _sync(self) -> None:
        pods = self.api.list_namespaced_pod(self.namespace,
                                            label_selector="raftkv.dev/ordinal").items
        claims = {c.metadata.name: c for c in
                  self.api.list_namespaced_persistent_volume_claim(self.namespace).items}
        want: dict[str, Any] = {}
        for p in pods:
            if p.metadata.deletion_timestamp is not None:
                continue
            claim = p.spec.volumes[0].persistent_volume_claim.claim_name
            c = claims.get(claim)
            if c is None or c.metadata.deletion_timestamp is not None:
                continue
            want[p.metadata.name] = (p, c)
        for name, r in list(self.running.items()):
            if name not in want or want[name][0].metadata.uid != r.uid:
                r.proc.stop(grace=5)
                del self.running[name]
        for name, (p, c) in want.items():
            r = self.running.get(name)
            if r is None and name in self.held:
                continue
            if r is None:
                proc = self._spawn(p, c)
                if proc is not None:
                    self.running[name] = _Running(p.metadata.uid, proc.start())
            elif not r.proc.alive() and r.restarts < 50 and name not in self.held:
                proc = self._spawn(p, c)
                if proc is not None:
                    r.restarts += 1
                    r.proc = proc.start()

    def _secret_mounts(self, pod: Any) -> dict[str, Path] | None:
        """The pod's Secret volumes written out: mount path -> local directory; None when
        a Secret does not exist (yet)."""
        secrets = {v.name: v.secret.secret_name for v in pod.spec.volumes if v.secret}
        out: dict[str, Path] = {}
        for m in pod.spec.containers[0].volume_mounts or []:
            if m.name not in secrets:
                continue
            try:
                sec = self.api.read_namespaced_secret(secrets[m.name], self.namespace)
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            d = self.workdir / f"{pod.metadata.name}-{pod.metadata.uid[:8]}-{m.name}"
            d.mkdir(mode=0o700, exist_ok=True)
            for key, value in (sec.data or {}).items():
                f = d / key
                f.write_bytes(base64.b64decode(value))
                f.chmod(0o600)
            out[m.mount_path] = d
        return out

    def _spawn(self, pod: Any, claim: Any) -> Proc | None:
        ordinal = int(pod.metadata.labels["raftkv.dev/ordinal"])
        host = self.host_template.format(ordinal=ordinal)
        data = self.workdir / f"claim-{claim.metadata.name}-{claim.metadata.uid}"
        mounts = self._secret_mounts(pod)
        if mounts is None:
            return None
        argv = [str(RAFTKV)]
        for arg in pod.spec.containers[0].command[1:]:
            arg = re.sub(r"^(--listen-[a-z]+-urls=https?://)0\.0\.0\.0", rf"\g<1>{host}", arg)
            if arg.startswith("--data-dir="):
                arg = f"--data-dir={data}"
            for mount, local in mounts.items():
                arg = arg.replace(f"={mount}/", f"={local}/")
            argv.append(arg)
        log = self.workdir / f"{pod.metadata.name}-{pod.metadata.uid[:8]}.log"
        return Proc(pod.metadata.name, argv, log)
