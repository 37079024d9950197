"""``diag check`` exits like a Nagios plugin on a real etcd cluster.

Latency rules: the real 3-member etcd 3.5.1 answers status while its metrics URLs point
at fixture exporters whose every scrape adds a crafted histogram increase, so diag's
window sees exactly that increase. Quorum rules: a real cluster loses two of three
members (SIGKILL) and check must say CRITICAL "no leader".
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator

import pytest

from tests.diag.conftest import eps, run_diag
from tests.diag.exporter import FAST_CASE, P99_16_32MS, P99_INF, Case, Exporter
from tests.support.etcd import Cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real etcd / Prometheus processes


class Exporters:
    """One fixture exporter per member, all serving the same case."""

    def __init__(self, case: Case, n: int = 3) -> None:
        self.all = [Exporter(case).start() for _ in range(n)]

    def urls(self, path: str = "/advance/metrics") -> list[str]:
        return [e.url(path) for e in self.all]

    def set_leader_changes_step(self, step: float) -> None:
        for e in self.all:
            e.leader_changes_step = step

    def stop(self) -> None:
        for e in self.all:
            e.stop()


@pytest.fixture
def exporter(request: pytest.FixtureRequest) -> Iterator[Exporters]:
    e = Exporters(request.param)
    yield e
    e.stop()


def check_with(cluster: Cluster, e: Exporters, *extra: str) -> tuple[int, str, str]:
    urls = ",".join(e.urls())
    r = run_diag("--endpoints", eps(cluster), "--metrics-urls", urls, "check",
                 "--window", "500ms", *extra)
    return r.code, r.out, r.err


@pytest.mark.parametrize(
    ("exporter", "code", "rule"),
    [(FAST_CASE, 0, "ETCD OK"), (P99_16_32MS, 1, "wal-fsync-p99"),
     (P99_INF, 2, "wal-fsync-p99")],
    indirect=["exporter"],
    ids=["below", "over-warning", "over-critical"],
)
def test_check_fsync_thresholds(etcd35: Cluster, exporter: Exporters, code: int,
                                rule: str) -> None:
    got, out, err = check_with(etcd35, exporter)
    assert got == code, (out, err)
    assert rule in out
    first = out.splitlines()[0]
    assert first.startswith(("ETCD OK", "ETCD WARNING", "ETCD CRITICAL"))
    if code == 1:
        assert "WARNING wal-fsync-p99" in out and "> warning 10ms" in out
    if code == 2:
        assert "CRITICAL wal-fsync-p99" in out and "8.192s > critical 1s" in out
        assert first.endswith("wal_fsync_p99=8.192000s;0.01;1;0 backend_commit_p99=0.001980s;"
                              "0.025;;0 leader_changes=0;3;;0"), first
    assert " | members_answered=3;;1:;0;3" in first


def test_check_thresholds_are_options(etcd35: Cluster) -> None:
    e = Exporters(P99_16_32MS)
    try:
        # P99 is about 22 ms: raising the warning level quiets the fsync rule.
        code, out, _ = check_with(etcd35, e, "--fsync-warn", "50ms", "--commit-warn", "1s")
        assert code == 0, out
        code, out, _ = check_with(etcd35, e, "--fsync-crit", "20ms")
        assert code == 2 and "CRITICAL wal-fsync-p99" in out
    finally:
        e.stop()


def test_check_leader_changes(etcd35: Cluster) -> None:
    e = Exporters(FAST_CASE)
    try:
        code, out, _ = check_with(etcd35, e, "--max-leader-changes", "0")
        assert code == 0, out  # the counter did not move in the window
        e.set_leader_changes_step(5.0)  # five elections between two scrapes
        code, out, _ = check_with(etcd35, e)
        assert code == 1 and "WARNING leader-changes: 5 leader changes" in out, out
        code, out, _ = check_with(etcd35, e, "--max-leader-changes", "5")
        assert code == 0, out
    finally:
        e.stop()


def test_check_json_and_unknown(etcd35: Cluster) -> None:
    r = run_diag("--endpoints", "127.0.0.1:1,127.0.0.1:2", "check", "--lifetime")
    assert r.code == 3 and r.out.startswith("ETCD UNKNOWN"), r.out
    e = Exporters(FAST_CASE)
    try:
        urls = ",".join(e.urls())
        r = run_diag("--endpoints", eps(etcd35), "--metrics-urls", urls, "-w", "json",
                     "check", "--window", "200ms")
        assert r.code == 0 and r.json()["status"] == "OK", r.out
    finally:
        e.stop()


def test_check_bad_metrics_url_warns(etcd35: Cluster) -> None:
    e = Exporters(FAST_CASE)
    try:
        urls = [*e.urls()[:2], e.all[2].url("/not-metrics")]
        r = run_diag("--endpoints", eps(etcd35), "--metrics-urls", ",".join(urls), "check",
                     "--window", "200ms")
        assert r.code == 1 and "WARNING metrics" in r.out and "Prometheus text" in r.out
    finally:
        e.stop()


def test_check_no_leader_when_majority_stopped(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    # Latency rules are muted: a fresh etcd's lifetime fsync figures depend on this disk.
    mute = ("--fsync-warn", "1h", "--fsync-crit", "2h", "--commit-warn", "1h")
    r = run_diag("--endpoints", eps(c), "check", "--lifetime", *mute)
    assert r.code == 0, r.out + r.err
    survivor, *gone = c.members
    for m in gone:
        c.kill(m)

    def leaderless() -> bool:
        try:
            return not survivor.health()
        except urllib.error.HTTPError as exc:  # etcd answers 503 without a leader
            return exc.code == 503

    wait_until(leaderless, 30, "the survivor to lose its leader")
    r = run_diag("--endpoints", eps(c), "check", "--lifetime", *mute)
    assert r.code == 2, r.out + r.err
    assert r.out.startswith("ETCD CRITICAL - no-leader: no leader"), r.out
    assert "CRITICAL quorum: quorum lost as seen from here: 1 of 3" in r.out
    assert r.out.count("CRITICAL member-unreachable") == 2
    # health agrees with etcdctl: the survivor answers but cannot serve a linearizable read.
    h = run_diag("--endpoints", survivor.client_url, "--command-timeout", "1s", "health")
    assert h.code == 9 and "is unhealthy" in h.err and "false" in h.out, h.out + h.err
    ctl = c.etcdctl("endpoint", "health", "--command-timeout=1s",
                    endpoints=[survivor.client_url], check=False)
    assert ctl.returncode != 0 and "unhealthy" in ctl.stdout + ctl.stderr
