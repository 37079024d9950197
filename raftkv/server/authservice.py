"""etcd's Auth gRPC service (``etcdctl auth/user/role``) over a RaftServer.

Changes to the auth store are proposed with the caller's user and auth revision and
applied by :class:`raftkv.mvcc.auth.AuthStore` (a root user is required there while auth is
on). Passwords are hashed here, before proposing, so no entry holds one in clear text.
Reads (user/role get and list, auth status) are served by this member after a ReadIndex
barrier, with the same admission as etcd's apply: root for lists and status, a user may
read itself and the roles it has. Authenticate checks the password against this member's
applied store, then replicates the user name and a fresh token prefix so every member
learns the token (:mod:`raftkv.server.tokens`); if the store moved while the password was
checked, it checks again, as etcd's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from raftkv.mvcc import errors
from raftkv.mvcc.auth import check_password, hash_password
from raftkv.server.raftserver import RaftServer
from raftkv.server.services import _fail, _fill
from raftkv.server.tokens import new_prefix


class AuthService(rpc_pb2_grpc.AuthServicer):
    def __init__(self, server: RaftServer) -> None:
        self.s = server
        self.gate = server.auth_gate

    async def _write(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return _fill(self.s, await self.s.propose(request, self.gate.info(context)))
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def AuthEnable(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def AuthDisable(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def UserDelete(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def UserGrantRole(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def UserRevokeRole(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def RoleAdd(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def RoleDelete(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def RoleGrantPermission(self, request: Any,
                                  context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def RoleRevokePermission(self, request: Any,
                                   context: grpc.aio.ServicerContext) -> Any:
        return await self._write(request, context)

    async def UserAdd(self, request: rpc_pb2.AuthUserAddRequest,
                      context: grpc.aio.ServicerContext) -> Any:
        if not request.options.no_password:
            request.hashedPassword = await asyncio.to_thread(hash_password, request.password)
        request.password = ""
        return await self._write(request, context)

    async def UserChangePassword(self, request: rpc_pb2.AuthUserChangePasswordRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        request.hashedPassword = await asyncio.to_thread(hash_password, request.password)
        request.password = ""
        return await self._write(request, context)

    # --- reads ------------------------------------------------------------------------

    async def _read(self, context: grpc.aio.ServicerContext, which: str, name: str = "") -> Any:
        try:
            await self.s.linearizable_barrier()
            store = self.gate.store
            ai = self.gate.info(context)
            try:
                store.check_admin(ai)
            except errors.EtcdError:
                own = ai is not None and (
                    (which == "user" and name == ai.user)
                    or (which == "role" and store.has_role(ai.user, name)))
                if not own:
                    raise
            if which == "user":
                resp = store.user_get(name)
            elif which == "role":
                resp = store.role_get(name)
            elif which == "users":
                resp = store.user_list()
            elif which == "roles":
                resp = store.role_list()
            else:
                resp = store.status()
            return _fill(self.s, resp)
        except errors.EtcdError as exc:
            await _fail(context, exc)

    async def UserGet(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._read(context, "user", request.name)

    async def RoleGet(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._read(context, "role", request.role)

    async def UserList(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._read(context, "users")

    async def RoleList(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._read(context, "roles")

    async def AuthStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._read(context, "status")

    async def Authenticate(self, request: rpc_pb2.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> Any:
        try:
            await self.s.linearizable_barrier()
            while True:
                store = self.gate.store
                hashed = store.password_of(request.name)
                checked_at = store.revision
                if hashed is None or not await asyncio.to_thread(
                        check_password, hashed, request.password):
                    raise errors.AuthFailed()
                resp = await self.s.propose(
                    rpc_pb2.AuthenticateRequest(name=request.name, password=new_prefix()))
                if checked_at == self.gate.store.revision:
                    return _fill(self.s, resp)
        except errors.EtcdError as exc:
            await _fail(context, exc)
