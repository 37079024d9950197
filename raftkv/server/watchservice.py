"""The etcd v3 Watch gRPC service: one ``WatchStream`` per call, served from this member's
own applied state through the server's watch hub.

Job: run a stream's three loops - read requests (create, cancel, progress) into the
stream, send what the stream queued, and tick periodic progress notifications every
``--watch-progress-notify-interval`` (plus up to a tenth of jitter, as etcd) - and, for a
call carrying etcd's ``hasleader`` metadata (clientv3's WithRequireLeader), refuse it on
a member without a leader and end it with etcd's "no leader" error once the member has
had no leader for three election timeouts (etcd's monitorLeader), so the client moves on.

Invariants: every task a call starts is cancelled when the call ends, however it ends,
and every watcher of the call leaves the hub then; a request never ends the call unless
the client ends it (a malformed one gets a canceled reply from the stream).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import errors
from raftkv.server.raftserver import RaftServer
from raftkv.server.watchstream import EventCache, WatchStream

log = logging.getLogger("raftkv.server.watch")

NO_LEADER_CHECKS = 3  # etcd's maxNoLeaderCnt


class MalformedRequest(errors.EtcdError):
    """Not etcd's text: etcd's gRPC layer answers a message it cannot decode itself."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: the watch request could not be decoded"


def _status_text(exc: errors.EtcdError) -> str:
    """A gRPC status as Go prints it: etcd's watch cancel reason for an auth refusal."""
    go_code = "".join(w.capitalize() for w in exc.code.split("_"))
    return f"rpc error: code = {go_code} desc = {exc.message}"


class WatchService(rpc_pb2_grpc.WatchServicer):
    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.events = EventCache()  # one encoding of a change for every stream

    async def Watch(self, request_iterator: Any,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[rpc_pb2.WatchResponse]:
        s = self.s
        md = {k: v for k, v in (context.invocation_metadata() or ())}
        require_leader = md.get("hasleader") == "true"
        if require_leader and s.leader_id() == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, errors.NoLeader.message)
        stream = WatchStream(s.watch_hub, s.header, s.cfg.max_request_bytes, self.events,
                             permit=self._permit(context))
        failed: list[errors.EtcdError] = []
        tasks = [asyncio.create_task(self._read(request_iterator, stream, failed)),
                 asyncio.create_task(self._progress(stream))]
        if require_leader:
            tasks.append(asyncio.create_task(self._monitor_leader(stream, failed)))
        try:
            while True:
                if failed:
                    await context.abort(getattr(grpc.StatusCode, failed[0].code),
                                        failed[0].message)
                resps = stream.take()
                if not resps:
                    await stream.ready.wait()
                    continue
                for r in resps:
                    yield r
        finally:
            for t in tasks:
                t.cancel()
            stream.close()

    def _permit(self, context: grpc.aio.ServicerContext) -> Callable[[bytes, bytes], str | None]:
        """etcd's isWatchPermitted: read permission on the range, for the call's user."""
        gate = self.s.auth_gate

        def permit(key: bytes, range_end: bytes) -> str | None:
            try:
                gate.store.check_range(gate.who(context), key, range_end)
            except (errors.InvalidAuthToken, errors.AuthOldRevision, errors.UserEmpty) as exc:
                return _status_text(exc)
            except errors.EtcdError:
                return _status_text(errors.PermissionDenied())
            return None
        return permit

    async def _read(self, request_iterator: Any, stream: WatchStream,
                    failed: list[errors.EtcdError]) -> None:
        """Requests into the stream until the client half-closes (then the stream goes
        on, as etcd's); a request that cannot be read ends the call with an error."""
        try:
            async for req in request_iterator:
                await stream.ctrl_room.wait()
                stream.handle(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("watch stream: unreadable request, ending the call: %s: %s",
                     type(exc).__name__, exc)
            failed.append(MalformedRequest())
            stream.ready.set()

    async def _progress(self, stream: WatchStream) -> None:
        interval = self.s.cfg.watch_progress_notify_interval
        while True:
            await asyncio.sleep(interval + random.uniform(0, interval / 10))
            stream.tick_progress()

    async def _monitor_leader(self, stream: WatchStream, failed: list[errors.EtcdError]) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self.s.cfg.election_timeout_ms / 1000)
            misses = misses + 1 if self.s.leader_id() == 0 else 0
            if misses >= NO_LEADER_CHECKS:
                failed.append(errors.NoLeader())
                stream.ready.set()
                return
