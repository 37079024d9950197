"""An async etcd v3 client for one endpoint, over aetcd's generated etcdserverpb stubs.

aetcd's high-level ``Client`` has no TLS and no raw Status fields (applied index, DB size
in use, learner), so this module drives the same stubs on its own grpc channel.

Invariants:
- dialing is bounded by ``dial_timeout``, every call by ``command_timeout``;
- every failure leaves as a classified :class:`~raftkv.client.errors.EtcdError`; a TLS
  failure's cause is named by :mod:`raftkv.client.tlsprobe` (one more dial, on failure only);
- ``close()`` is idempotent and the client is an async context manager;
- with ``credentials``, the first connect authenticates (etcd's Authenticate) and every
  call carries the token; a token the server no longer knows is renewed once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from raftkv.client.auth import AUTH_NOT_ENABLED, Credentials
from raftkv.client.endpoints import Endpoint
from raftkv.client.errors import ErrorKind, EtcdError, classify
from raftkv.client.tls import TLSConfig
from raftkv.client.tlsprobe import diagnose, speaks_tls
from raftkv.client.types import Alarm, EndpointStatus, Member, MemberList, ReadResult

T = TypeVar("T")

_ALARM_NAMES = {v: k for k, v in rpc.AlarmType.items()}


class EtcdClient:
    """One endpoint's channel and the calls diag and the operator need."""

    def __init__(
        self,
        endpoint: Endpoint,
        tls: TLSConfig | None = None,
        dial_timeout: float = 2.0,
        command_timeout: float = 5.0,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self._token: str | None = None  # after Authenticate; "" when auth is off
        self.tls = tls or TLSConfig()
        self.use_tls = endpoint.scheme == "https" or self.tls.enabled
        self.dial_timeout = dial_timeout
        self.command_timeout = command_timeout
        self._channel: grpc.aio.Channel | None = None
        self._connected = False

    @property
    def name(self) -> str:
        return self.endpoint.target

    # -- channel ----------------------------------------------------------------------

    def _make_channel(self) -> grpc.aio.Channel:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0),
        ]
        if self.use_tls:
            return grpc.aio.secure_channel(
                self.endpoint.target, self.tls.grpc_credentials(), options=options
            )
        return grpc.aio.insecure_channel(self.endpoint.target, options=options)

    async def connect(self) -> None:
        """Dial within ``dial_timeout``; on failure raise the classified reason."""
        if self._connected:
            return
        if self._channel is None:
            try:
                self._channel = self._make_channel()
            except ValueError as exc:
                raise EtcdError(ErrorKind.USAGE, self.name, str(exc)) from exc
        channel = self._channel
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.dial_timeout
        state = channel.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            if state in (
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                grpc.ChannelConnectivity.SHUTDOWN,
            ):
                # One fail-fast call carries grpc's reason (refused, TLS, HTTP/1 server).
                await self._probe_failure()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EtcdError(
                    ErrorKind.TIMEOUT, self.name,
                    f"could not connect within the dial timeout ({self.dial_timeout:g}s)",
                )
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
            except TimeoutError:
                continue
            state = channel.get_state(try_to_connect=True)
        self._connected = True
        if self.credentials is not None and self._token is None:
            await self._authenticate()

    def _kw(self) -> dict[str, Any]:
        """Every call's timeout, and its token while there is one."""
        return {"timeout": self.command_timeout,
                "metadata": (("token", self._token),) if self._token else ()}

    async def _authenticate(self) -> None:
        """etcd clientv3's getToken: Authenticate once per client; a cluster with auth off
        answers "authentication is not enabled", and the calls then go without a token."""
        assert self._channel is not None and self.credentials is not None
        req = rpc.AuthenticateRequest(name=self.credentials.user,
                                      password=self.credentials.password)
        try:
            resp = await asyncio.wait_for(rpc.AuthStub(self._channel).Authenticate(
                req, timeout=self.command_timeout), self.command_timeout + 0.5)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if (isinstance(exc, grpc.aio.AioRpcError)
                    and AUTH_NOT_ENABLED in (exc.details() or "")):
                self._token = ""
                return
            self._connected = False
            err = classify(exc, self.name, self.use_tls)
            if err.kind is ErrorKind.AUTH_FAILED:
                err = EtcdError(ErrorKind.AUTH_FAILED, self.name,
                                f"user {self.credentials.user!r}: {err.detail}")
            raise err from None
        self._token = str(resp.token)

    async def _probe_failure(self) -> None:
        assert self._channel is not None
        stub = rpc.MaintenanceStub(self._channel)
        try:
            await stub.Status(rpc.StatusRequest(), timeout=self.dial_timeout)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = classify(exc, self.name, self.use_tls)
            if err.kind in (ErrorKind.RPC, ErrorKind.AUTH_FAILED, ErrorKind.AUTH_REQUIRED):
                return  # the server answered (no token on a probe): the channel recovered
            raise await self._recheck(err) from None
        # The call went through after all: the channel recovered.

    async def _recheck(self, err: EtcdError) -> EtcdError:
        """Tell a dead member from a listener that closes gRPC: dial plain TCP once.

        A member killed mid-call resets its connections exactly as a TLS-only or non-etcd
        listener does; only the dead one then refuses a new connection.
        """
        if not err.closed:
            return await self._explain_tls(err)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.endpoint.host, self.endpoint.port),
                self.dial_timeout,
            )
        except (OSError, TimeoutError) as exc:
            return EtcdError(ErrorKind.UNREACHABLE, self.name,
                             f"the connection was reset and the port now refuses "
                             f"connections ({exc or type(exc).__name__})")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return await self._explain_tls(err)

    async def _explain_tls(self, err: EtcdError) -> EtcdError:
        """Name the TLS cause with a handshake of our own (grpc's text rarely says it)."""
        if err.kind in (ErrorKind.TIMEOUT, ErrorKind.RPC, ErrorKind.USAGE,
                        ErrorKind.AUTH_FAILED, ErrorKind.AUTH_REQUIRED) or (
                "connection refused" in err.detail.lower()):
            return err
        host, port = self.endpoint.host, self.endpoint.port
        if self.use_tls:
            found = await asyncio.to_thread(diagnose, host, port, self.tls, self.dial_timeout)
            return err if found is None else EtcdError(found.kind, self.name, found.detail)
        plain_refused = err.closed or err.kind.is_tls or err.kind is ErrorKind.NOT_ETCD
        if plain_refused and await asyncio.to_thread(speaks_tls, host, port, self.dial_timeout):
            return EtcdError(ErrorKind.TLS, self.name,
                             "the endpoint serves TLS; use an https:// endpoint with --cacert "
                             "(and --cert/--key if it asks for a client certificate)")
        return err

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._connected = False
            await channel.close()

    async def __aenter__(self) -> EtcdClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, make: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            await self.connect()
            assert self._channel is not None
            try:
                return await asyncio.wait_for(make(self._channel), self.command_timeout + 0.5)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._connected = False  # dial again (and classify why) on the next call
                err = classify(exc, self.name, self.use_tls)
                if (attempt == 1 and err.kind is ErrorKind.AUTH_FAILED and self._token
                        and "invalid auth token" in err.detail):
                    self._token = None  # expired, or the member restarted: as clientv3,
                    continue  # authenticate again and retry once
                raise await self._recheck(err) from None
        raise AssertionError("unreachable")

    # -- calls ------------------------------------------------------------------------

    async def status(self) -> EndpointStatus:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.MaintenanceStub(ch).Status(
                rpc.StatusRequest(), **self._kw()
            )

        r = await self._call(call)
        return EndpointStatus(
            endpoint=self.endpoint.target,
            cluster_id=r.header.cluster_id,
            member_id=r.header.member_id,
            revision=r.header.revision,
            version=r.version,
            db_size=r.dbSize,
            db_size_in_use=r.dbSizeInUse,
            leader=r.leader,
            is_learner=r.isLearner,
            raft_term=r.raftTerm,
            raft_index=r.raftIndex,
            raft_applied_index=r.raftAppliedIndex,
            errors=tuple(r.errors),
        )

    async def member_list(self, linearizable: bool = False) -> MemberList:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.ClusterStub(ch).MemberList(
                rpc.MemberListRequest(linearizable=linearizable), **self._kw()
            )

        r = await self._call(call)
        return MemberList(
            cluster_id=r.header.cluster_id,
            member_id=r.header.member_id,
            raft_term=r.header.raft_term,
            members=tuple(
                Member(
                    id=m.ID,
                    name=m.name,
                    peer_urls=tuple(m.peerURLs),
                    client_urls=tuple(m.clientURLs),
                    is_learner=m.isLearner,
                )
                for m in r.members
            ),
        )

    async def alarms(self) -> list[Alarm]:
        async def call(ch: grpc.aio.Channel) -> Any:
            req = rpc.AlarmRequest(action=rpc.AlarmRequest.GET, memberID=0, alarm=0)
            return await rpc.MaintenanceStub(ch).Alarm(req, **self._kw())

        r = await self._call(call)
        return [Alarm(a.memberID, _ALARM_NAMES.get(a.alarm, str(a.alarm))) for a in r.alarms]

    async def get(self, key: bytes, serializable: bool = False) -> ReadResult:
        """A Range on one key; linearizable unless ``serializable``."""

        async def call(ch: grpc.aio.Channel) -> Any:
            req = rpc.RangeRequest(key=key, serializable=serializable, count_only=True)
            return await rpc.KVStub(ch).Range(req, **self._kw())

        r = await self._call(call)
        return ReadResult(revision=r.header.revision, count=r.count)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Returns the revision of the write."""

        async def call(ch: grpc.aio.Channel) -> Any:
            req = rpc.PutRequest(key=key, value=value, lease=lease)
            return await rpc.KVStub(ch).Put(req, **self._kw())

        r = await self._call(call)
        return int(r.header.revision)

    async def lease_grant(self, ttl: int) -> int:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.LeaseStub(ch).LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl, ID=0), **self._kw()
            )

        r = await self._call(call)
        if r.error:
            raise EtcdError(ErrorKind.RPC, self.name, f"lease grant: {r.error}")
        return int(r.ID)

    async def lease_revoke(self, lease_id: int) -> None:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.LeaseStub(ch).LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), **self._kw()
            )

        await self._call(call)

    # -- membership (the operator's steps) ----------------------------------------------

    async def member_add(self, peer_urls: list[str], is_learner: bool = True) -> Member:
        """MemberAdd; returns the new member (its ID assigned by the cluster)."""

        async def call(ch: grpc.aio.Channel) -> Any:
            req = rpc.MemberAddRequest(peerURLs=peer_urls, isLearner=is_learner)
            return await rpc.ClusterStub(ch).MemberAdd(req, **self._kw())

        r = await self._call(call)
        m = r.member
        return Member(id=m.ID, name=m.name, peer_urls=tuple(m.peerURLs),
                      client_urls=tuple(m.clientURLs), is_learner=m.isLearner)

    async def member_remove(self, member_id: int) -> None:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.ClusterStub(ch).MemberRemove(
                rpc.MemberRemoveRequest(ID=member_id), **self._kw()
            )

        await self._call(call)

    async def member_promote(self, member_id: int) -> None:
        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.ClusterStub(ch).MemberPromote(
                rpc.MemberPromoteRequest(ID=member_id), **self._kw()
            )

        await self._call(call)

    async def move_leader(self, target_id: int) -> None:
        """Maintenance.MoveLeader: this endpoint must be the leader."""

        async def call(ch: grpc.aio.Channel) -> Any:
            return await rpc.MaintenanceStub(ch).MoveLeader(
                rpc.MoveLeaderRequest(targetID=target_id), **self._kw()
            )

        await self._call(call)
