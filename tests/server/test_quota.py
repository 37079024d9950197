"""--quota-backend-bytes: past the quota, writes get etcd's NOSPACE error and the alarm
shows in `etcdctl alarm list` and endpoint status; reads still work; the alarm holds
until compaction, defragmentation and `alarm disarm`, then writes are accepted again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.etcd import raftkv_cluster

pytestmark = pytest.mark.slow  # real raftkv processes

QUOTA = 256 * 1024
VALUE = "x" * 8000


def test_quota_refuses_writes_until_compact_and_defrag(tmp_path: Path) -> None:
    c = raftkv_cluster(tmp_path, 1, extra_args=[f"--quota-backend-bytes={QUOTA}"])
    try:
        c.start()
        refused = None
        for i in range(200):
            r = c.etcdctl("put", f"k{i % 5}", input_text=VALUE, check=False)
            if r.returncode != 0:
                refused = r
                break
        assert refused is not None, "the quota was never reached"
        assert "etcdserver: mvcc: database space exceeded" in refused.stderr
        assert "alarm:NOSPACE" in c.etcdctl("alarm", "list").stdout
        assert "alarm:NOSPACE" in c.etcdctl("endpoint", "status").stdout
        assert c.etcdctl("get", "k0", "--print-value-only").stdout.strip() == VALUE
        rev = c.etcdctl("get", "k0", "-w", "json").stdout.split('"revision":')[1].split(",")[0]
        c.etcdctl("del", "k", "--prefix")
        c.etcdctl("compaction", "--physical", str(int(rev) + 1))
        c.etcdctl("defrag")
        blocked = c.etcdctl("put", "still", "no", check=False)
        assert "database space exceeded" in blocked.stderr, "the alarm must hold until disarmed"
        c.etcdctl("alarm", "disarm")
        assert c.etcdctl("alarm", "list").stdout.strip() == ""
        c.etcdctl("put", "after", "ok")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
