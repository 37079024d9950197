"""The nemesis leaves nothing broken, and the error classification is conservative.

- cancelled in the middle of a fault (a paused member, a partition), the nemesis still
  resumes, restarts and heals everything, and the cluster is healthy afterwards;
- only gRPC statuses that prove a request was rejected make an operation ``failed``;
  connection loss, deadlines and unknown errors leave it ``unknown``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from raftkv.netfault.proxy import NONE
from tests.e2e.history.cluster import ProxiedCluster
from tests.e2e.history.etcdapi import classify
from tests.e2e.history.history import Status
from tests.e2e.history.nemesis import Nemesis


def rpc_error(code: grpc.StatusCode, details: str) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details)


@pytest.mark.parametrize(("code", "details", "status"), [
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", Status.FAILED),
    (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", Status.FAILED),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests", Status.FAILED),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out", Status.UNKNOWN),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", Status.UNKNOWN),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous "
     "leader failure", Status.UNKNOWN),
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", Status.UNKNOWN),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", Status.UNKNOWN),
    (grpc.StatusCode.UNKNOWN, "Stream removed", Status.UNKNOWN),
    (grpc.StatusCode.CANCELLED, "cancelled", Status.UNKNOWN),
])
def test_error_classification(code: grpc.StatusCode, details: str, status: Status) -> None:
    assert classify(rpc_error(code, details))[0] is status


def test_client_side_timeouts_are_unknown() -> None:
    assert classify(TimeoutError())[0] is Status.UNKNOWN


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["pause-leader", "partition-leader", "kill-random"])
async def test_cancelled_nemesis_heals_everything(fault: str, tmp_path: Path) -> None:
    cluster = ProxiedCluster(tmp_path / "cluster", 3)
    try:
        await asyncio.to_thread(cluster.start)
        nemesis = Nemesis(cluster, seed=1, scenario=fault, hold=(30.0, 30.0), quiet=(0, 0))
        task = asyncio.create_task(nemesis.run(asyncio.Event()))
        while not nemesis.log:  # readiness: the fault is in place
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for a in cluster.names:
            for b in cluster.names:
                assert cluster.hub.fault(a, b) == NONE
        for m in cluster.members:
            assert m.proc is not None and m.proc.alive()
            with open(f"/proc/{m.proc.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            assert state != "T", f"{m.name} still stopped"
        await asyncio.to_thread(cluster.wait_healthy, 30)
    finally:
        await asyncio.to_thread(cluster.stop)
