"""etcdctl move-leader on raftkv: leadership moves to the chosen member in a new term,
asking a follower is refused as etcd refuses it, and writes go on afterwards."""

from __future__ import annotations

import json

import pytest

from tests.support.etcd import Cluster

pytestmark = pytest.mark.slow  # real raftkv processes


def _status(c: Cluster) -> list[dict]:  # type: ignore[type-arg]
    return [e["Status"] for e in json.loads(c.etcdctl("endpoint", "status", "-w", "json").stdout)]


def test_move_leader(raftkv3: Cluster) -> None:
    c = raftkv3
    before = _status(c)
    leader, term = before[0]["leader"], before[0]["raftTerm"]
    target = next(s["header"]["member_id"] for s in before if s["header"]["member_id"] != leader)
    follower_ep = next(m.client_url for m, s in zip(c.members, before, strict=True)
                       if s["header"]["member_id"] != leader)
    refused = c.etcdctl("move-leader", f"{target:x}", endpoints=[follower_ep], check=False)
    assert refused.returncode != 0
    moved = c.etcdctl("move-leader", f"{target:x}")
    assert f"Leadership transferred from {leader:x} to {target:x}" in moved.stdout
    after = _status(c)
    assert {s["leader"] for s in after} == {target}
    assert all(s["raftTerm"] > term for s in after)
    c.etcdctl("put", "after-move", "ok")
