"""Which gRPC server shape to build on, and how raftkv compares with etcd under load.

Starts a KV servicer that answers Range/Put/DeleteRange instantly (no consensus, no
disk) in one of four shapes, grpc.aio as the generated code registers it, grpc.aio with
generic handlers only (``raftkv.server.embed.GenericHandlersOnly``), the same on uvloop
(as raftkv serves: ``raftkv.server.eventloop``) or the threaded server, and points
``etcdctl check perf --load=<load>`` at it; then the same
load at a real 3-member etcd 3.6.16 on loopback, in the same process tree. The servicer's
ceiling is the best the server could ever do through that shape. Last, a real 3-member
raftkv cluster under the same load (etcdctl 3.6.16 throughout). Run:
``.venv/bin/python bench/grpc_servicer.py [--load s|m|l]``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from raftkv.server import eventloop
from raftkv.server.embed import GenericHandlersOnly
from tests.support.etcd import Cluster, etcd36_bin, raftkv_cluster
from tests.support.proc import free_port, port_open, wait_until


def _header() -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=1, member_id=1, revision=1, raft_term=1)


class NullKV(rpc_pb2_grpc.KVServicer):
    def Range(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.RangeResponse(header=_header())

    def Put(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.PutResponse(header=_header())

    def DeleteRange(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.DeleteRangeResponse(header=_header())


class NullKVAio(rpc_pb2_grpc.KVServicer):
    async def Range(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.RangeResponse(header=_header())

    async def Put(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.PutResponse(header=_header())

    async def DeleteRange(self, request, context):  # type: ignore[no-untyped-def]
        return rpc_pb2.DeleteRangeResponse(header=_header())


MODES = ("aio", "aio-generic", "aio-generic-uvloop", "threaded")


def serve(mode: str, port: int) -> None:
    if mode == "threaded":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        rpc_pb2_grpc.add_KVServicer_to_server(NullKV(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
    else:
        async def main() -> None:
            server = grpc.aio.server()
            rpc_pb2_grpc.add_KVServicer_to_server(
                NullKVAio(), GenericHandlersOnly(server) if mode.startswith("aio-generic")
                else server)
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            await server.wait_for_termination()
        eventloop.run(main(), "uvloop" if mode.endswith("uvloop") else "asyncio")


def check_perf(endpoints: str, load: str) -> str:
    out = subprocess.run(
        [str(etcd36_bin("etcdctl")), f"--endpoints={endpoints}", "check", "perf", f"--load={load}"],
        capture_output=True, text=True, timeout=300,
    )
    text = out.stdout + out.stderr
    m = re.search(r"Throughput[^\d]*(\d+) writes/s", text)
    verdict = " ".join(ln for ln in text.splitlines() if ln.startswith(("PASS", "FAIL")))
    return f"{m.group(1) if m else '?'}   ({verdict})"


@contextlib.contextmanager
def running(mode: str) -> Iterator[tuple[int, int]]:
    """A null servicer of one shape in a process of its own; yields its port and pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port)])
    try:
        wait_until(lambda: port_open(port), 30, f"{mode} servicer")
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def null_servicer(mode: str, load: str) -> str:
    """``check perf`` at a null servicer of one shape."""
    with running(mode) as (port, _):
        return check_perf(f"127.0.0.1:{port}", load)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", default="l", choices=["s", "m", "l", "xl"])
    ap.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    results = {f"null KV servicer, grpc {mode}": null_servicer(mode, args.load)
               for mode in MODES}
    with tempfile.TemporaryDirectory() as d, Cluster(Path(d), 3, binary=etcd36_bin()) as c:
        results["etcd 3.6.16, 3 members"] = check_perf(",".join(c.endpoints), args.load)
    with tempfile.TemporaryDirectory() as d, raftkv_cluster(Path(d), 3) as c:
        results["raftkv, 3 members"] = check_perf(",".join(c.endpoints), args.load)
    print(f"etcdctl check perf --load={args.load}: throughput, writes/s")
    for what, fig in results.items():
        print(f"  {what:40} {fig}")


if __name__ == "__main__":
    main()
