"""Helpers for the Watch tests on real raftkv processes: an etcdctl (3.6.16) watch
process whose output is read from its log file, stopped by pid; a raw gRPC Watch stream;
a metrics reader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.diag.scrape import scrape
from tests.support.etcd import etcd36_bin
from tests.support.proc import wait_until


class CtlWatch:
    """``etcdctl watch ...`` running against one endpoint; ``stdin`` for ``-i``."""

    def __init__(self, log: Path, endpoint: str, *args: str, stdin: bool = False) -> None:
        self.log = log
        self.args = args
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                [str(etcd36_bin("etcdctl")), f"--endpoints={endpoint}", "watch", *args],
                stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if k != "ETCDCTL_API"})

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, timeout: float = 20.0, count: int = 1) -> str:
        wait_until(lambda: self.text().count(what) >= count, timeout,
                   f"{what!r} x{count} from etcdctl watch {' '.join(self.args)}: "
                   f"{self.text()[-500:]!r}")
        return self.text()

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def wait_exit(self, timeout: float = 20.0) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        if self.popen.stdin is not None:
            self.popen.stdin.close()


def target(url: str) -> str:
    return url.removeprefix("http://")


def create(key: bytes, **kw: object) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, **kw))


async def open_watch(channel: grpc.aio.Channel, *reqs: rpc_pb2.WatchRequest,
                     require_leader: bool = False) -> grpc.aio.StreamStreamCall:
    md = (("hasleader", "true"),) if require_leader else None
    call = rpc_pb2_grpc.WatchStub(channel).Watch(metadata=md)
    for r in reqs:
        await call.write(r)
    return call


async def read(call: grpc.aio.StreamStreamCall, timeout: float = 20.0) -> rpc_pb2.WatchResponse:
    """The next response, or TimeoutError: a test never waits forever on a stream."""
    resp = await asyncio.wait_for(call.read(), timeout)
    assert resp is not grpc.aio.EOF, "the stream ended"
    return resp


def metric(metrics_url: str, name: str) -> float:
    v = scrape(metrics_url + "/metrics", 5.0).scalar(name)
    assert v is not None, f"{metrics_url} serves no {name}"
    return v
