"""The cached build scripts return at once on a warm cache and say where the build is.

For scripts/build-etcd.sh, build-k8s-node.sh and build-helm.sh: each must exit 0, report
``cached`` and build nothing, within a few seconds even on a busy machine. Skipped per
script when its cache is cold (a cold build takes minutes; ``make etcd helm kind`` fills
them).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raftkv"

CASES = [
    ("scripts/build-etcd.sh", CACHE / "etcd/v3.6.16/bin/.complete", "build-etcd: cached: "),
    ("scripts/build-k8s-node.sh", CACHE / "k8s/v1.36.3/node-bin/.complete",
     "build-k8s: cached: "),
    ("scripts/build-helm.sh", CACHE / "helm/v3.22.0/bin/.complete", "build-helm: cached: "),
]


@pytest.mark.parametrize(("script", "marker", "expect"), CASES, ids=[c[0] for c in CASES])
def test_warm_cache_returns_at_once(script: str, marker: Path, expect: str) -> None:
    if not marker.exists():
        pytest.skip(f"cold cache ({marker} absent)")
    t0 = time.monotonic()
    out = subprocess.run(["bash", str(ROOT / script)], capture_output=True, text=True,
                         timeout=60, check=False)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert expect in out.stderr, out.stderr
    assert "building" not in out.stderr
    assert elapsed < 5, f"{script} took {elapsed:.1f}s on a warm cache"


def test_etcd_binaries_report_3_6_16() -> None:
    bin_dir = CACHE / "etcd/v3.6.16/bin"
    if not (bin_dir / ".complete").exists():
        pytest.skip("etcd 3.6.16 not built (make etcd)")
    server = subprocess.run([str(bin_dir / "etcd"), "--version"], capture_output=True,
                            text=True, check=True).stdout
    assert server.splitlines()[0] == "etcd Version: 3.6.16"
    for tool in ("etcdctl", "etcdutl"):
        out = subprocess.run([str(bin_dir / tool), "version"], capture_output=True, text=True,
                             check=True).stdout
        assert out.splitlines()[0] == f"{tool} version: 3.6.16"
