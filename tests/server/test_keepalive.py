"""gRPC keepalive as Go clients expect it: a client pinging every second on an idle
connection (no active call) is never cut off with GOAWAY "too_many_pings"."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from tests.support.etcd import Cluster

pytestmark = pytest.mark.slow  # real raftkv processes

PINGY = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def test_idle_connection_with_frequent_pings_stays_up(raftkv3: Cluster) -> None:
    target = raftkv3.members[0].client_url.removeprefix("http://")
    async with grpc.aio.insecure_channel(target, options=PINGY) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        await kv.Range(rpc_pb2.RangeRequest(key=b"a", serializable=True), timeout=5)
        assert ch.get_state() is grpc.ChannelConnectivity.READY
        states = []

        async def watch() -> None:
            state = ch.get_state()
            while True:
                await ch.wait_for_state_change(state)
                state = ch.get_state()
                states.append(state)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(12)  # the idle period under test: about 12 pings, no call
        watcher.cancel()
        assert states == [], f"the connection left READY while idle: {states}"
        await kv.Range(rpc_pb2.RangeRequest(key=b"a", serializable=True), timeout=5)
