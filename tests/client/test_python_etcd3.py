"""python-etcd3 (PyPI ``etcd3`` 0.12.0) works unchanged against raftkv, as against etcd.

python-etcd3 imports only with the pure-Python protobuf runtime, so it runs in a venv of
its own (scripts/etcd3-venv.sh, cached outside the repo, built here on first use) with
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python. Its script (scripts/etcd3_watch.py) does
put, get, get_prefix, a prefix watch from revision 1 with prev_kv, a callback watch, and
watch_once; the transcripts from a raftkv member and an etcd 3.6.16 member must be equal,
and must show the watch events (so equality is not of two empty transcripts).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster

pytestmark = pytest.mark.slow  # real servers, and a venv built on first use

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "scripts" / "etcd3_watch.py"


@pytest.fixture(scope="module")
def etcd3_python() -> Path:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "etcd3-venv.sh")], check=True,
                         capture_output=True, text=True, timeout=600).stdout
    return Path(out.strip().splitlines()[-1]) / "bin" / "python"


def transcript(python: Path, cluster: Cluster) -> Any:
    port = cluster.members[0].client_port
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    p = subprocess.run([str(python), str(SCRIPT), "127.0.0.1", str(port)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, f"python-etcd3 script failed:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


def test_python_etcd3_watch_on_raftkv_as_on_etcd(etcd3_python: Path, tmp_path: Path) -> None:
    with Cluster(tmp_path / "etcd", 1, binary=etcd36_bin()) as etcd:
        theirs = transcript(etcd3_python, etcd)
    with raftkv_cluster(tmp_path / "raftkv", 1) as raftkv:
        ours = transcript(etcd3_python, raftkv)
    assert len(theirs["watch_prefix_rev1"]) == 4 and theirs["callback_done"]
    assert theirs["watch_once"][:3] == ["PutEvent", "/e3/d", "6"]
    assert ours == theirs
