"""A fixture exporter: an HTTP server in the test process serving crafted etcd histograms.

Each :class:`Case` holds per-bucket (non-cumulative) counts for etcd's buckets
(1 ms .. 8.192 s, then +Inf): a baseline ``base`` and an increase ``delta``. Phase 0
serves the baseline; phase 1 serves baseline + delta, or, for a reset case, delta alone
(the process "restarted" and its counters began again from zero).

Paths: ``/metrics`` (what Prometheus scrapes) and ``/diag/metrics`` (what diag is pointed
at; counted separately so a test knows diag's first scrape happened) serve the phase;
``/advance/metrics`` serves baseline + k * delta on its k-th request, so any two
consecutive scrapes differ by exactly delta. ``/not-metrics`` serves HTML.

Invariant: cumulative baseline counts are positive wherever the delta's are, and at least
twice them, so Prometheus' rate() extrapolates every bucket series by the same factor (its
zero-point clamp never triggers) and its histogram_quantile sees the delta's shape exactly.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.proc import free_port

BOUNDS = [0.001 * 2**i for i in range(14)] + [float("inf")]
HISTS = ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds")


def spread(counts: dict[float, float]) -> list[float]:
    """Non-cumulative counts by upper bound -> a full list over BOUNDS."""
    for b in counts:
        assert b in BOUNDS, b
    return [float(counts.get(b, 0.0)) for b in BOUNDS]


def cumulative(counts: list[float]) -> list[float]:
    out, run = [], 0.0
    for c in counts:
        run += c
        out.append(run)
    return out


FAST = {0.001: 1000.0}
FAST_DELTA = {0.001: 50.0, 0.002: 50.0}


@dataclass
class Case:
    name: str
    wal_base: dict[float, float]
    wal_delta: dict[float, float]
    commit_base: dict[float, float] = field(default_factory=lambda: dict(FAST))
    commit_delta: dict[float, float] = field(default_factory=lambda: dict(FAST_DELTA))
    reset: bool = False
    cumulative_override: dict[str, list[float]] | None = None  # raw (non-monotonic) buckets

    def buckets(self, hist: str, k: float, reset: bool) -> list[float]:
        if self.cumulative_override and hist in self.cumulative_override:
            base_c = self.cumulative_override[hist]
            delta_c = self.cumulative_override[hist + ":delta"]
        else:
            wal = hist.startswith("etcd_disk_wal")
            base_c = cumulative(spread(self.wal_base if wal else self.commit_base))
            delta_c = cumulative(spread(self.wal_delta if wal else self.commit_delta))
        if reset:
            return [k * d for d in delta_c]
        return [b + k * d for b, d in zip(base_c, delta_c, strict=True)]


class Exporter:
    """One case served on its own loopback port (one Prometheus ``instance``)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.port = free_port()
        self.phase = 0
        self.advance_count = 0
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.leader_changes = 1.0
        self.leader_changes_step = 0.0  # added on each /advance/metrics request
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, ctype = exporter.render(self.path)
                data = body.encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/metrics") -> str:
        return f"http://{self.instance}{path}"

    def start(self) -> Exporter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def render(self, path: str) -> tuple[str, str]:
        with self.lock:
            self.hits[path] += 1
            if path == "/not-metrics":
                return "<html><body>not metrics</body></html>\n", "text/html"
            if path == "/advance/metrics":
                self.advance_count += 1
                self.leader_changes += self.leader_changes_step
                k, reset = float(self.advance_count), False
            elif path in ("/metrics", "/diag/metrics"):
                k = 1.0 if self.phase == 1 else 0.0
                reset = self.case.reset and self.phase == 1
            else:
                return "", "text/plain"
            lines = []
            for hist in HISTS:
                cum = self.case.buckets(hist, k, reset)
                lines.append(f"# TYPE {hist} histogram")
                for bound, c in zip(BOUNDS, cum, strict=True):
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'{hist}_bucket{{le="{le}"}} {c!r}')
                lines.append(f"{hist}_sum {cum[-1] * 0.004!r}")
                lines.append(f"{hist}_count {cum[-1]!r}")
            lines += [
                "# TYPE etcd_server_has_leader gauge", "etcd_server_has_leader 1",
                "# TYPE etcd_server_leader_changes_seen_total counter",
                f"etcd_server_leader_changes_seen_total {self.leader_changes!r}",
                "# TYPE etcd_server_quota_backend_bytes gauge",
                "etcd_server_quota_backend_bytes 2147483648",
                "# TYPE etcd_mvcc_db_total_size_in_bytes gauge",
                "etcd_mvcc_db_total_size_in_bytes 20480",
                "# TYPE fixture_phase gauge", f"fixture_phase {self.phase}",
            ]
            return "\n".join(lines) + "\n", "text/plain; version=0.0.4"


# The crafted cases (non-cumulative counts per bucket upper bound).
P99_16_32MS = Case(
    "p99-16-32ms",
    wal_base={0.001: 5000, 0.002: 200, 0.004: 1000, 0.008: 600, 0.016: 170, 0.032: 26,
              0.064: 4},
    wal_delta={0.002: 100, 0.004: 500, 0.008: 300, 0.016: 85, 0.032: 13, 0.064: 2},
    commit_delta={0.008: 60, 0.016: 30, 0.032: 10},
)
P99_INF = Case(
    "p99-inf",
    wal_base={0.001: 10000, float("inf"): 50},
    wal_delta={0.002: 900, 0.004: 80, float("inf"): 20},
)
EMPTY = Case("empty", wal_base={}, wal_delta={}, commit_base={}, commit_delta={})
RESET = Case(
    "reset",
    wal_base={0.001: 100, 0.004: 3000, 0.008: 3000, 0.016: 10, float("inf"): 5},
    wal_delta={0.001: 10, 0.002: 20, 0.004: 30, 0.008: 30, 0.016: 5, 0.032: 3, 0.064: 2},
    reset=True,
)
_NM_BASE = [10.0, 50.0, 40.0, 100.0] + [100.0] * 11
_NM_DELTA = [5.0, 20.0, 15.0, 40.0] + [40.0] * 11
NON_MONOTONIC = Case(
    "non-monotonic", wal_base={}, wal_delta={},
    cumulative_override={HISTS[0]: _NM_BASE, HISTS[0] + ":delta": _NM_DELTA},
)
FAST_CASE = Case("fast", wal_base=dict(FAST), wal_delta={0.001: 80, 0.002: 20})



def random_cases(seed: int, n: int) -> list[Case]:
    """Seeded random histograms (sparse, with empty buckets) that keep the invariant above:
    baseline = 2 x delta + extra, bucket by bucket."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        def counts(hi: int) -> dict[float, float]:
            return {b: float(rng.choice([0, 0, rng.randint(1, hi)])) for b in BOUNDS}

        wal_d, commit_d = counts(60), counts(60)
        wal_b = {b: 2 * wal_d[b] + rng.randint(0, 30) for b in BOUNDS}
        commit_b = {b: 2 * commit_d[b] + rng.randint(0, 30) for b in BOUNDS}
        out.append(Case(f"random-{seed}-{i}", wal_b, wal_d, commit_b, commit_d,
                        reset=rng.random() < 0.3))
    return out


ALL_CASES = [P99_16_32MS, P99_INF, EMPTY, RESET, NON_MONOTONIC, *random_cases(1, 4)]
