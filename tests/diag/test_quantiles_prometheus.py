"""diag's quantiles equal a real Prometheus' histogram_quantile within 1e-9.

Crafted histograms (P99 inside the 16-32 ms bucket, P99 in +Inf, an empty histogram, a
counter reset between diag's two scrapes, non-monotonic buckets) are served by fixture
exporters, scraped by Debian's Prometheus 2.42 every second, and read three ways:
diag from /metrics (lifetime and over a window), Prometheus directly, and diag through
``--prometheus``.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.diag.conftest import DIAG, run_diag
from tests.diag.exporter import ALL_CASES, EMPTY, HISTS, P99_16_32MS, P99_INF, RESET, Exporter
from tests.diag.prometheus import PrometheusServer
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real etcd / Prometheus processes

JOB = "etcd-fixture"
SEL = f'job="{JOB}"'
QS = (0.5, 0.9, 0.99)
KEYS = {HISTS[0]: "wal_fsync", HISTS[1]: "backend_commit"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Exporter],
                                                                      PrometheusServer]]:
    exporters = [Exporter(c).start() for c in ALL_CASES]
    prom = PrometheusServer(tmp_path_factory.mktemp("prom"), JOB,
                            [e.instance for e in exporters])
    try:
        prom.start()
        yield exporters, prom
    finally:
        prom.stop()
        for e in exporters:
            e.stop()


def prom_quantiles(prom: PrometheusServer, rate: bool) -> dict[tuple[str, str, float], float]:
    out = {}
    for hist, key in KEYS.items():
        for q in QS:
            inner = f"rate({hist}_bucket{{{SEL}}}[5m])" if rate else f"{hist}_bucket{{{SEL}}}"
            expr = f"histogram_quantile({q}, sum by (instance, le) ({inner}))"
            for row in prom.query(expr):
                out[(row["metric"]["instance"], key, q)] = float(row["value"][1])
    return out


def diag_quantiles(rows: list[dict[str, Any]], label: str) -> dict[tuple[str, str, float],
                                                                   float]:
    out = {}
    for row in rows:
        for key in KEYS.values():
            for q in QS:
                v = row[key][f"p{int(q * 100)}"]
                out[(row[label], key, q)] = math.nan if v is None else v
    return out


def assert_same(diag: dict[Any, float], prom: dict[Any, float]) -> None:
    assert set(diag) == set(prom), (sorted(diag), sorted(prom))
    for k in prom:
        a, b = diag[k], prom[k]
        if math.isnan(b):
            assert math.isnan(a), (k, a, b)
        else:
            assert abs(a - b) <= 1e-9, (k, a, b)


def wait_phase(prom: PrometheusServer, phase: int, n: int) -> None:
    def seen() -> bool:
        rows = prom.query(f"fixture_phase{{{SEL}}} == {phase}")
        return len(rows) == n

    wait_until(seen, 30, f"prometheus to scrape phase {phase} from all {n} targets",
               interval=0.2)


def metrics_args(exporters: list[Exporter], path: str) -> list[str]:
    urls = ",".join(e.url(path) for e in exporters)
    eps = ",".join(e.instance for e in exporters)
    return ["--endpoints", eps, "--metrics-urls", urls, "-w", "json"]


def test_quantiles_equal_prometheus(setup: tuple[list[Exporter], PrometheusServer]) -> None:
    exporters, prom = setup
    wait_phase(prom, 0, len(exporters))

    # 1. Lifetime figures from /metrics == histogram_quantile over the raw buckets.
    life = run_diag(*metrics_args(exporters, "/diag/metrics"), "fsync", "--lifetime")
    assert life.code == 0, life.err
    assert_same(diag_quantiles(life.json(), "endpoint"), prom_quantiles(prom, rate=False))

    # 2. A window: diag scrapes, the exporters step to phase 1 (one of them resets), diag
    #    scrapes again; its figures must equal Prometheus' over rate().
    proc = subprocess.Popen(
        [str(DIAG), *metrics_args(exporters, "/diag/metrics"), "fsync", "--window", "2s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: all(e.hits["/diag/metrics"] >= 2 for e in exporters), 10,
                   "diag's first scrape of every exporter")
        for e in exporters:
            e.phase = 1
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    rows = json.loads(out)
    resets = {r["endpoint"]: r["counter_reset"] for r in rows}
    assert resets[by_inst_case(exporters, RESET.name)] is True
    assert resets == {e.instance: e.case.reset for e in exporters}
    wait_phase(prom, 1, len(exporters))
    windowed = diag_quantiles(rows, "endpoint")
    from_prom = prom_quantiles(prom, rate=True)
    assert_same(windowed, from_prom)

    # The crafted cases land where they claim.
    p16 = by_inst_case(exporters, P99_16_32MS.name)
    pinf = by_inst_case(exporters, P99_INF.name)
    empty = by_inst_case(exporters, EMPTY.name)
    assert 0.016 < windowed[(p16, "wal_fsync", 0.99)] < 0.032
    assert windowed[(pinf, "wal_fsync", 0.99)] == 8.192
    assert all(math.isnan(windowed[(empty, k, q)]) for k in KEYS.values() for q in QS)
    # The window is not the lifetime: the 16-32 ms case's baseline has its P99 lower.
    assert diag_quantiles(life.json(), "endpoint")[(p16, "wal_fsync", 0.99)] < 0.016

    # 3. Through --prometheus: the query, answered per instance.
    via = run_diag("-w", "json", "fsync", "--prometheus", prom.url, "--selector", SEL)
    assert via.code == 0, via.err
    assert_same(diag_quantiles(via.json(), "instance"), from_prom)
    assert all(r["has_leader"] == 1 for r in via.json())


def by_inst_case(exporters: list[Exporter], name: str) -> str:
    return next(e.instance for e in exporters if e.case.name == name)


def test_prometheus_errors(tmp_path: Path,
                           setup: tuple[list[Exporter], PrometheusServer]) -> None:
    _, prom = setup
    none = run_diag("fsync", "--prometheus", prom.url, "--selector", 'job="no-such-job"')
    assert none.code == 11 and "no etcd series" in none.err
    down = run_diag("fsync", "--prometheus", "http://127.0.0.1:1")
    assert down.code == 11 and "unreachable" in down.err and "Traceback" not in down.err
    bad = run_diag("fsync", "--prometheus", prom.url, "--range", "5 minutes")
    assert bad.code == 64
