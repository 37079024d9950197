"""The replicated auth store (etcd's server/auth/store.go): users, roles, permissions,
whether auth is on, and the auth revision.

Invariants:
- It changes only when an auth entry is applied (``apply``), in the backend transaction of
  that entry: the whole store is one JSON document in meta ``auth`` (bytes as base64,
  never pickle), so it travels in snapshots and is reloaded after a restart or install.
- Every change that can alter what a user may do moves ``revision`` by one (etcd's
  commitRevision; enabling auth does not). A request carries the revision its proposer saw;
  apply refuses it with "auth old revision" if the store moved since, on every member alike.
- Passwords are stored only as the hash the API layer computed (PBKDF2-SHA256 with a random
  salt, where etcd uses bcrypt), so no log entry holds a clear password.
- The "root" role is implicit permission on every key; with auth on, the root user and
  role cannot be deleted and root cannot lose the root role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import authperm, errors
from raftkv.storage.backend import Backend

AUTH_META = "auth"
ROOT = "root"
PBKDF2_ITERATIONS = 60_000


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """The ``hashedPassword`` a UserAdd or ChangePassword entry carries."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    text = f"pbkdf2-sha256${iterations}${salt.hex()}${digest.hex()}"
    return base64.b64encode(text.encode()).decode()


def check_password(hashed: str, password: str) -> bool:
    try:
        algo, iters, salt, digest = base64.b64decode(hashed).decode().split("$")
        if algo != "pbkdf2-sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iters))
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """Who asks, and the auth revision their token was checked at (0: nobody)."""

    user: str = ""
    revision: int = 0


@dataclass
class User:
    password: str | None  # the stored hash; None for a no-password user
    roles: list[str] = field(default_factory=list)


Perm = tuple[int, bytes, bytes]  # (type, key, range_end)


def _b(x: bytes) -> str:
    return base64.b64encode(x).decode()


class AuthStore:
    def __init__(self, backend: Backend) -> None:
        self.reload(backend)

    def reload(self, backend: Backend) -> None:
        self.backend = backend
        self.enabled = False
        self.revision = 1  # etcd's NewAuthStore commits revision 1 into an empty store
        self.users: dict[str, User] = {}
        self.roles: dict[str, list[Perm]] = {}
        raw = backend.meta_get(AUTH_META)
        if raw:
            d = json.loads(raw)
            self.enabled, self.revision = bool(d["enabled"]), int(d["revision"])
            self.users = {n: User(u["password"], list(u["roles"])) for n, u in d["users"].items()}
            self.roles = {n: [(int(t), base64.b64decode(k), base64.b64decode(e))
                              for t, k, e in ps] for n, ps in d["roles"].items()}

    def _save(self, bump: bool = True) -> None:
        if bump:
            self.revision += 1
        d = {"enabled": self.enabled, "revision": self.revision,
             "users": {n: {"password": u.password, "roles": u.roles}
                       for n, u in sorted(self.users.items())},
             "roles": {n: [[t, _b(k), _b(e)] for t, k, e in ps]
                       for n, ps in sorted(self.roles.items())}}
        self.backend.meta_put(AUTH_META, json.dumps(d, sort_keys=True).encode())

    # --- checks (etcd's isOpPermitted, IsAdminPermitted) ------------------------------

    def _user_for(self, ai: AuthInfo) -> User | None:
        if ai.revision == 0:
            raise errors.UserEmpty()
        if ai.revision < self.revision:
            raise errors.AuthOldRevision()
        return self.users.get(ai.user)

    def _check(self, ai: AuthInfo, key: bytes, range_end: bytes, want: int) -> None:
        if not self.enabled:
            return
        u = self._user_for(ai)
        if u is None:
            raise errors.PermissionDenied()
        if ROOT in u.roles:
            return
        perms = [p for r in u.roles for p in self.roles.get(r, [])]
        if not authperm.permitted(authperm.of_type(perms, want), key, range_end):
            raise errors.PermissionDenied()

    def check_range(self, ai: AuthInfo, key: bytes, range_end: bytes = b"") -> None:
        self._check(ai, key, range_end, authperm.READ)

    def check_put(self, ai: AuthInfo, key: bytes) -> None:
        self._check(ai, key, b"", authperm.WRITE)

    def check_delete(self, ai: AuthInfo, key: bytes, range_end: bytes = b"") -> None:
        self._check(ai, key, range_end, authperm.WRITE)

    def is_admin(self, ai: AuthInfo | None) -> bool:
        try:
            self.check_admin(ai)
        except errors.EtcdError:
            return False
        return True

    def check_admin(self, ai: AuthInfo | None) -> None:
        if not self.enabled:
            return
        if ai is None or not ai.user:
            raise errors.UserEmpty()
        u = self.users.get(ai.user)
        if u is None:
            raise errors.UserNotFound()
        if ROOT not in u.roles:
            raise errors.PermissionDenied()

    def has_role(self, user: str, role: str) -> bool:
        u = self.users.get(user)
        return u is not None and role in u.roles

    # --- reads (answered by the member after a ReadIndex barrier) ---------------------

    def user_list(self) -> rpc_pb2.AuthUserListResponse:
        return rpc_pb2.AuthUserListResponse(users=sorted(self.users))

    def role_list(self) -> rpc_pb2.AuthRoleListResponse:
        return rpc_pb2.AuthRoleListResponse(roles=sorted(self.roles))

    def user_get(self, name: str) -> rpc_pb2.AuthUserGetResponse:
        u = self.users.get(name)
        if u is None:
            raise errors.UserNotFound()
        return rpc_pb2.AuthUserGetResponse(roles=u.roles)

    def role_get(self, name: str) -> rpc_pb2.AuthRoleGetResponse:
        if name not in self.roles:
            raise errors.RoleNotFound()
        resp = rpc_pb2.AuthRoleGetResponse()
        if name == ROOT:
            resp.perm.add(permType=authperm.READWRITE, key=b"", range_end=b"\x00")
        for t, k, e in self.roles[name] if name != ROOT else []:
            resp.perm.add(permType=t, key=k, range_end=e)
        return resp

    def status(self) -> rpc_pb2.AuthStatusResponse:
        return rpc_pb2.AuthStatusResponse(enabled=self.enabled, authRevision=self.revision)

    # --- applied entries --------------------------------------------------------------

    def authenticate(self, name: str) -> None:
        """The apply side of Authenticate: the user must still exist with a password."""
        if not self.enabled:
            raise errors.AuthNotEnabled()
        u = self.users.get(name)
        if u is None or u.password is None:
            raise errors.AuthFailed()

    def password_of(self, name: str) -> str | None:
        """The stored hash (the API layer checks it before proposing); raises as etcd's
        CheckPassword does."""
        if not self.enabled:
            raise errors.AuthNotEnabled()
        u = self.users.get(name)
        if u is None:
            raise errors.AuthFailed()
        if u.password is None:
            raise errors.NoPasswordUser()
        return u.password

    def apply(self, r: Any) -> tuple[Any, str | None]:
        """Apply one auth write; returns its response and the user whose tokens must go
        (deleted user, changed password), if any."""
        handler = _HANDLERS[type(r)]
        return handler(self, r)

    def _enable(self, r: rpc_pb2.AuthEnableRequest) -> tuple[Any, None]:
        if not self.enabled:
            root = self.users.get(ROOT)
            if root is None:
                raise errors.RootUserNotExist()
            if ROOT not in root.roles:
                raise errors.RootRoleNotExist()
            self.enabled = True
            self._save(bump=False)
        return rpc_pb2.AuthEnableResponse(), None

    def _disable(self, r: rpc_pb2.AuthDisableRequest) -> tuple[Any, None]:
        if self.enabled:
            self.enabled = False
            self._save()
        return rpc_pb2.AuthDisableResponse(), None

    def _user_add(self, r: rpc_pb2.AuthUserAddRequest) -> tuple[Any, None]:
        if not r.name:
            raise errors.UserEmpty()
        if r.name in self.users:
            raise errors.UserAlreadyExist()
        if r.options.no_password:
            password = None
        elif r.hashedPassword:
            password = r.hashedPassword
        else:
            raise errors.NoPasswordUser()  # etcd: the hash does not decode
        self.users[r.name] = User(password)
        self._save()
        return rpc_pb2.AuthUserAddResponse(), None

    def _user_delete(self, r: rpc_pb2.AuthUserDeleteRequest) -> tuple[Any, str]:
        if self.enabled and r.name == ROOT:
            raise errors.InvalidAuthMgmt()
        if self.users.pop(r.name, None) is None:
            raise errors.UserNotFound()
        self._save()
        return rpc_pb2.AuthUserDeleteResponse(), r.name

    def _user_password(self, r: rpc_pb2.AuthUserChangePasswordRequest) -> tuple[Any, str]:
        u = self.users.get(r.name)
        if u is None:
            raise errors.UserNotFound()
        if u.password is not None:
            if not r.hashedPassword:
                raise errors.NoPasswordUser()
            u.password = r.hashedPassword
        self._save()
        return rpc_pb2.AuthUserChangePasswordResponse(), r.name

    def _user_grant(self, r: rpc_pb2.AuthUserGrantRoleRequest) -> tuple[Any, None]:
        u = self.users.get(r.user)
        if u is None:
            raise errors.UserNotFound()
        if r.role != ROOT and r.role not in self.roles:
            raise errors.RoleNotFound()
        if r.role not in u.roles:
            u.roles = sorted([*u.roles, r.role])
            self._save()
        return rpc_pb2.AuthUserGrantRoleResponse(), None

    def _user_revoke(self, r: rpc_pb2.AuthUserRevokeRoleRequest) -> tuple[Any, None]:
        if self.enabled and r.name == ROOT and r.role == ROOT:
            raise errors.InvalidAuthMgmt()
        u = self.users.get(r.name)
        if u is None:
            raise errors.UserNotFound()
        if r.role not in u.roles:
            raise errors.RoleNotGranted()
        u.roles = [x for x in u.roles if x != r.role]
        self._save()
        return rpc_pb2.AuthUserRevokeRoleResponse(), None

    def _role_add(self, r: rpc_pb2.AuthRoleAddRequest) -> tuple[Any, None]:
        if not r.name:
            raise errors.RoleEmpty()
        if r.name in self.roles:
            raise errors.RoleAlreadyExist()
        self.roles[r.name] = []
        self._save()
        return rpc_pb2.AuthRoleAddResponse(), None

    def _role_delete(self, r: rpc_pb2.AuthRoleDeleteRequest) -> tuple[Any, None]:
        if self.enabled and r.role == ROOT:
            raise errors.InvalidAuthMgmt()
        if self.roles.pop(r.role, None) is None:
            raise errors.RoleNotFound()
        for u in self.users.values():
            u.roles = [x for x in u.roles if x != r.role]
        self._save()
        return rpc_pb2.AuthRoleDeleteResponse(), None

    def _role_grant(self, r: rpc_pb2.AuthRoleGrantPermissionRequest) -> tuple[Any, None]:
        if not r.HasField("perm"):
            raise errors.PermissionNotGiven()
        if not authperm.valid_permission_range(r.perm.key, r.perm.range_end):
            raise errors.InvalidAuthMgmt()
        perms = self.roles.get(r.name)
        if perms is None:
            raise errors.RoleNotFound()
        new = (int(r.perm.permType), bytes(r.perm.key), bytes(r.perm.range_end))
        for i, (_, k, e) in enumerate(perms):
            if k == new[1] and e == new[2]:
                perms[i] = new
                break
        else:
            perms.append(new)
            perms.sort(key=lambda p: p[1])
        self._save()
        return rpc_pb2.AuthRoleGrantPermissionResponse(), None

    def _role_revoke(self, r: rpc_pb2.AuthRoleRevokePermissionRequest) -> tuple[Any, None]:
        perms = self.roles.get(r.role)
        if perms is None:
            raise errors.RoleNotFound()
        kept = [p for p in perms if p[1] != r.key or p[2] != r.range_end]
        if len(kept) == len(perms):
            raise errors.PermissionNotGranted()
        self.roles[r.role] = kept
        self._save()
        return rpc_pb2.AuthRoleRevokePermissionResponse(), None


_HANDLERS: dict[type, Any] = {
    rpc_pb2.AuthEnableRequest: AuthStore._enable,
    rpc_pb2.AuthDisableRequest: AuthStore._disable,
    rpc_pb2.AuthUserAddRequest: AuthStore._user_add,
    rpc_pb2.AuthUserDeleteRequest: AuthStore._user_delete,
    rpc_pb2.AuthUserChangePasswordRequest: AuthStore._user_password,
    rpc_pb2.AuthUserGrantRoleRequest: AuthStore._user_grant,
    rpc_pb2.AuthUserRevokeRoleRequest: AuthStore._user_revoke,
    rpc_pb2.AuthRoleAddRequest: AuthStore._role_add,
    rpc_pb2.AuthRoleDeleteRequest: AuthStore._role_delete,
    rpc_pb2.AuthRoleGrantPermissionRequest: AuthStore._role_grant,
    rpc_pb2.AuthRoleRevokePermissionRequest: AuthStore._role_revoke,
}
AUTH_WRITES = tuple(_HANDLERS)
