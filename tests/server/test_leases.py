"""Leases on a real raftkv cluster through etcdctl: grant, attach, keep-alive, time-to-live
from a follower, revoke deleting the keys, expiry through the leader, unknown leases."""

from __future__ import annotations

import re

import pytest

from tests.support.etcd import Cluster
from tests.support.proc import wait_until

pytestmark = pytest.mark.slow  # real raftkv processes


def test_lease_lifecycle(raftkv3: Cluster) -> None:
    c = raftkv3
    out = c.etcdctl("lease", "grant", "60").stdout
    lease = re.search(r"lease ([0-9a-f]+) granted with TTL\(60s\)", out)
    assert lease, out
    lid = lease.group(1)
    c.etcdctl("put", "--lease=" + lid, "held", "v")
    for m in c.members:  # any member answers, followers by asking the leader
        ttl = c.etcdctl("lease", "timetolive", lid, "--keys", endpoints=[m.client_url]).stdout
        assert "attached keys([held])" in ttl and "granted with TTL(60s)" in ttl, ttl
    assert "keepalived with TTL(60)" in c.etcdctl("lease", "keep-alive", "--once", lid).stdout
    assert lid in c.etcdctl("lease", "list").stdout
    c.etcdctl("lease", "revoke", lid)
    assert c.etcdctl("get", "held", "--print-value-only").stdout.strip() == ""
    bad = c.etcdctl("put", "--lease=1234", "x", "y", check=False)
    assert bad.returncode != 0
    assert "etcdserver: requested lease not found" in bad.stderr


def test_expired_lease_deletes_its_keys(raftkv3: Cluster) -> None:
    c = raftkv3
    out = c.etcdctl("lease", "grant", "1").stdout
    lid = re.search(r"lease ([0-9a-f]+) granted", out).group(1)  # type: ignore[union-attr]
    c.etcdctl("put", "--lease=" + lid, "short", "v")
    assert c.etcdctl("get", "short", "--print-value-only").stdout.strip() == "v"
    wait_until(lambda: '"kvs"' not in c.etcdctl("get", "short", "-w", "json").stdout, 20,
               "the expired lease's key to be deleted")
    ttl = c.etcdctl("lease", "timetolive", lid).stdout
    assert "already expired" in ttl
