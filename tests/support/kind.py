"""A real kind cluster for end-to-end tests, on a machine with no container registry.

:class:`KindCluster` starts the kind setup's private dockerd inside the network namespace
that ``scripts/kind/dockerd.sh`` creates, brings the raftkv images up to date with the
source (``scripts/kind/raftkv-image.sh``: only the project layer is rebuilt), creates a
fresh single-node cluster from the cached node image with
``scripts/kind/kind-config.test.yaml``, loads the raftkv images into the node and waits
until the node, CoreDNS and the local-path provisioner are ready. ``scripts/kind/setup.sh``
(``make kind``) builds everything beforehand; :func:`infra_missing` says what is absent.

Invariants:
- every client (kind, kubectl, helm, a host-run operator) runs inside the namespace
  (``ip netns exec``), which has no default route: test traffic never leaves it;
- one session at a time owns the cluster and dockerd: :meth:`KindCluster.start` takes an
  exclusive lock (``$KIND_CACHE/locks/session.lock``) and :meth:`KindCluster.stop`
  releases it; a cluster of the same name left by a killed session is deleted first;
- :meth:`KindCluster.stop` runs on every exit path (``start`` calls it when startup
  fails): it kills the processes :meth:`KindCluster.popen` started, by pid, deletes the
  cluster, stops dockerd by its pid and deletes the namespace;
- readiness is polled (``kind create --wait``, ``kubectl wait``/``rollout status``),
  never slept for; each startup stage's wall time is kept in ``timings``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "kind"
CHART = REPO / "charts" / "raftkv-operator"
TEST_CONFIG = SCRIPTS / "kind-config.test.yaml"
K8S_VERSION = os.environ.get("RAFTKV_K8S_VERSION", "v1.36.3")
HELM_VERSION = os.environ.get("RAFTKV_HELM_VERSION", "v3.22.0")
IMAGE_TAGS = ("0.1.0", "0.1.1")
CLUSTER_NAME = "raftkv-e2e"


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raftkv"


def kind_cache() -> Path:
    """Where scripts/kind/lib.sh keeps its builds (keep the two rules in step)."""
    env = os.environ.get("RAFTKV_KIND_CACHE")
    return Path(env) if env else _cache_root() / "kind"


def netns_name() -> str:
    return os.environ.get("RAFTKV_KIND_NETNS", "raftkv-kind")


def node_image() -> str:
    return f"raftkv.local/kind-node:{K8S_VERSION}"


def tool_path() -> str:
    """PATH for the clients: kind, the node's kubectl v1.36.3, helm, then the usual."""
    dirs = [
        kind_cache() / "bin",
        _cache_root() / "k8s" / K8S_VERSION / "node-bin",
        _cache_root() / "helm" / HELM_VERSION / "bin",
    ]
    return os.pathsep.join([*map(str, dirs), os.environ.get("PATH", "")])


def infra_missing() -> list[str]:
    """What the cluster needs and is not built (empty when ``make kind`` has run)."""
    if os.geteuid() != 0:
        return ["root (network namespaces, dockerd)"]
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if shutil.which(tool) is None:
            return [f"{tool} on PATH (scripts/kind/host-packages.sh)"]
    out = subprocess.run(["bash", str(SCRIPTS / "setup.sh"), "--check"],
                         capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return []
    return [line.removeprefix("missing: ") for line in out.stderr.splitlines() if line.strip()]


class KindError(RuntimeError):
    """A command against the cluster failed; the message holds its output."""


def _describe(argv: Sequence[str], out: subprocess.CompletedProcess[str]) -> str:
    return (f"`{' '.join(argv)}` exited {out.returncode}\n"
            f"--- stdout ---\n{out.stdout[-4000:]}\n--- stderr ---\n{out.stderr[-4000:]}")


class KindCluster:
    """One kind cluster inside a private network namespace (see the module docstring)."""

    def __init__(self, workdir: Path, name: str = CLUSTER_NAME) -> None:
        self.workdir = workdir
        self.name = name
        self.netns = netns_name()
        self.kubeconfig = workdir / "kubeconfig"
        self.images: dict[str, str] = {tag: f"raftkv:{tag}" for tag in IMAGE_TAGS}
        self.chart = CHART
        self.timings: dict[str, float] = {}
        self._lock: IO[str] | None = None
        self._dockerd_pid: int | None = None
        self._popens: list[subprocess.Popen[Any]] = []
        self.env = dict(os.environ)
        self.env.update({
            "PATH": tool_path(),
            "KUBECONFIG": str(self.kubeconfig),
            "DOCKER_HOST": f"unix:///run/{self.netns}-docker.sock",
            "DOCKER_BUILDKIT": "0",
            "PYTHON": sys.executable,  # builds the raftkv wheel (scripts/kind/raftkv-image.sh)
            "HELM_CACHE_HOME": str(workdir / "helm-cache"),
            "HELM_CONFIG_HOME": str(workdir / "helm-config"),
            "HELM_DATA_HOME": str(workdir / "helm-data"),
        })

    # --- commands -----------------------------------------------------------------

    def _ns(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *map(str, argv)]

    def _host(self, argv: Sequence[str], *, timeout: float = 600,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        """A setup script on the host side (it enters the namespace itself where needed)."""
        out = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                             timeout=timeout, check=False)
        if check and out.returncode != 0:
            raise KindError(_describe(argv, out))
        return out

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace with KUBECONFIG set; output captured."""
        full = self._ns(argv)
        out = subprocess.run(full, input=input, capture_output=True, text=True,
                             env=self.env, timeout=timeout, check=False)
        if check and out.returncode != 0:
            raise KindError(_describe(full, out))
        return out

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", *args], input=input, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run(["helm", *args], check=check, timeout=timeout)

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[str]:
        """A long-running process inside the namespace; killed by pid at :meth:`stop`."""
        kw.setdefault("env", self.env)
        kw.setdefault("text", True)
        kw.setdefault("start_new_session", True)
        proc: subprocess.Popen[str] = subprocess.Popen(self._ns(argv), **kw)
        self._popens.append(proc)
        return proc

    # --- lifecycle ----------------------------------------------------------------

    def _stage(self, name: str, argv: Sequence[str], *, inside: bool,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        out = self.run(argv, timeout=timeout) if inside else self._host(argv, timeout=timeout)
        self.timings[name] = round(time.monotonic() - t0, 1)
        return out

    def _take_lock(self) -> None:
        path = kind_cache() / "locks" / "session.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(path, "w")  # noqa: SIM115 - held for the session
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"kind: waiting for another session's cluster ({path})", file=sys.stderr)
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def start(self) -> KindCluster:
        """Bring the cluster up (see the module docstring); on failure undo and raise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        t_all = time.monotonic()
        try:
            self._take_lock()
            out = self._stage("dockerd", ["bash", SCRIPTS / "dockerd.sh", "start"],
                              inside=False, timeout=120)
            self._dockerd_pid = int(out.stdout.split()[-1])
            probe = self.run(["docker", "image", "inspect", "-f", "{{.Id}}", node_image()],
                             check=False, timeout=30)
            if probe.returncode != 0:
                raise KindError(f"node image {node_image()} is not in the kind setup's "
                                "docker (was its data root removed?); run `make kind`")
            self._stage("raftkv images", ["bash", SCRIPTS / "raftkv-image.sh"], inside=False)
            self.run(["kind", "delete", "cluster", "--name", self.name], timeout=180)
            self._stage("kind create cluster", [
                "kind", "create", "cluster", "--name", self.name, "--image", node_image(),
                "--config", TEST_CONFIG, "--kubeconfig", self.kubeconfig, "--wait", "4m",
            ], inside=True, timeout=420)
            self._stage("kind load images", [
                "kind", "load", "docker-image", "--name", self.name, *self.images.values(),
            ], inside=True, timeout=300)
            self._stage("node ready", ["kubectl", "wait", "--for=condition=Ready", "node",
                                       "--all", "--timeout=180s"], inside=True, timeout=200)
            self._stage("coredns ready", ["kubectl", "-n", "kube-system", "rollout", "status",
                                          "deploy/coredns", "--timeout=180s"],
                        inside=True, timeout=200)
            self._stage("local-path ready", [
                "kubectl", "-n", "local-path-storage", "rollout", "status",
                "deploy/local-path-provisioner", "--timeout=180s",
            ], inside=True, timeout=200)
        except BaseException as exc:
            detail = self.diagnostics() if self._dockerd_pid else ""
            self.stop()
            raise KindError(f"kind cluster failed to start: {exc}\n{detail}") from exc
        self.timings["total"] = round(time.monotonic() - t_all, 1)
        with open(kind_cache() / "timings.txt", "a") as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            f.write(f"{stamp} fixture {self.timings}\n")
        return self

    def stop(self) -> None:
        """Undo :meth:`start` by pid; safe after a failed start and when called twice."""
        for proc in self._popens:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._popens.clear()
        try:
            if self._dockerd_pid is not None:
                self.run(["kind", "delete", "cluster", "--name", self.name],
                         check=False, timeout=180)
        finally:
            if self._dockerd_pid is not None:
                self._host(["bash", SCRIPTS / "dockerd.sh", "stop"], check=False, timeout=120)
                self._dockerd_pid = None
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def diagnostics(self) -> str:
        """State worth seeing when something failed: pods, events, the node's kubelet log."""
        parts = [f"(cluster {self.name}, kubeconfig {self.kubeconfig}, timings {self.timings})"]
        if self.kubeconfig.exists():
            for args in (("get", "nodes,pods,pvc", "-A", "-o", "wide"),
                         ("get", "events", "-A", "--sort-by=.lastTimestamp")):
                out = self.kubectl(*args, check=False, timeout=30)
                parts.append(f"--- kubectl {' '.join(args)} ---\n{out.stdout[-3000:]}"
                             f"{out.stderr[-1000:]}")
        out = self.run(["docker", "exec", f"{self.name}-control-plane", "journalctl",
                        "-u", "kubelet", "-n", "30", "--no-pager"], check=False, timeout=30)
        parts.append(f"--- kubelet ---\n{out.stdout[-3000:]}{out.stderr[-500:]}")
        return "\n".join(parts)

    def __enter__(self) -> KindCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
