"""A real Prometheus (Debian's 2.42) started by a test on loopback, stopped by pid.

Invariant: :meth:`PrometheusServer.start` returns only once ``/-/ready`` answers 200;
queries go through the HTTP API directly (the tests' independent reading, not diag's).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.proc import Proc, free_port, wait_until


def prometheus_bin() -> str:
    path = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(path).exists():
        raise FileNotFoundError("prometheus not installed; run `make system`")
    return path


class PrometheusServer:
    def __init__(self, workdir: Path, job: str, targets: list[str], interval: str = "1s") -> None:
        self.workdir = workdir
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }))
        self.proc = Proc("prometheus", [
            prometheus_bin(), f"--config.file={self.config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ], workdir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
            return r.status == 200

    def start(self) -> PrometheusServer:
        self.proc.start()
        try:
            wait_until(self.ready, 60, "prometheus /-/ready")
        except BaseException:
            print(self.proc.log_tail())
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        self.proc.stop()

    def query(self, expr: str) -> list[dict[str, Any]]:
        qs = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])
