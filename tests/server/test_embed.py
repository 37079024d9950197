"""Embedding: ``async with raftkv.Node(config)`` runs a member in-process with a direct
put/get/delete/txn/status API, and still serves etcd clients over gRPC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aetcd.rpc import rpc_pb2

import raftkv
from raftkv.server.config import ServerConfig
from tests.support.etcd import etcd_bin
from tests.support.proc import free_port

pytestmark = pytest.mark.slow  # real raftkv processes


def _config(tmp_path: Path) -> ServerConfig:
    c, p, m = free_port(), free_port(), free_port()
    peer = f"http://127.0.0.1:{p}"
    return ServerConfig(
        name="solo", data_dir=tmp_path / "solo", listen_peer_urls=[peer],
        initial_advertise_peer_urls=[peer], listen_client_urls=[f"http://127.0.0.1:{c}"],
        advertise_client_urls=[f"http://127.0.0.1:{c}"],
        listen_metrics_urls=[f"http://127.0.0.1:{m}"], initial_cluster={"solo": [peer]},
        heartbeat_interval_ms=20, election_timeout_ms=200,
    )


async def test_embedded_member(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    async with raftkv.Node(cfg) as node:
        await node.wait_leader()
        put = await node.put(b"k", b"v1")
        assert put.header.revision == 2  # an empty store is at 1, as etcd's
        await node.put(b"k", b"v2")
        got = await node.get(b"k")
        assert [(kv.value, kv.version) for kv in got.kvs] == [(b"v2", 2)]
        txn = rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.VALUE,
                                     result=rpc_pb2.Compare.EQUAL, value=b"v2")],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"v3"))])
        assert (await node.txn(txn)).succeeded
        # the same member answers a real etcd client (run without blocking our loop)
        proc = await asyncio.create_subprocess_exec(
            str(etcd_bin("etcdctl")), f"--endpoints={cfg.listen_client_urls[0]}", "get", "k",
            "--print-value-only", stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert out.decode().strip() == "v3"
        deleted = await node.delete(b"k")
        assert deleted.deleted == 1
        st = node.status()
        assert st.leader == node.server.id and st.raftAppliedIndex >= 5
    # and it comes back with its data after a restart
    async with raftkv.Node(cfg) as node:
        await node.wait_leader()
        got = await node.get(b"k", revision=4)
        assert got.kvs[0].value == b"v3"
