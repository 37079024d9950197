"""Key-range permissions as etcd's auth store evaluates them (server/auth/range_perm_cache.go).

A permission is ``(type, key, range_end)``: an empty ``range_end`` is the single key,
``b"\\x00"`` is every key from ``key`` on, anything else is ``[key, range_end)``. A request
for one key is permitted if one interval of the right type holds it; a request for a range
is permitted only if the union of those intervals covers all of it (etcd's adt
``Contains``). A key is modelled as ``[key, key + b"\\x00")``, the next key up, so points and
ranges merge alike. Pure functions: no state, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from aetcd.rpc import auth_pb2

READ = auth_pb2.Permission.READ
WRITE = auth_pb2.Permission.WRITE
READWRITE = auth_pb2.Permission.READWRITE

# (start, end) with end None for "up to the last key"
Interval = tuple[bytes, bytes | None]


def interval(key: bytes, range_end: bytes) -> Interval:
    if not range_end:
        return key, key + b"\x00"
    if range_end == b"\x00":
        return key, None
    return key, range_end


def valid_permission_range(key: bytes, range_end: bytes) -> bool:
    """etcd's isValidPermissionRange: a key is needed, and a range must not be empty."""
    if not key:
        return False
    if not range_end or range_end == b"\x00":
        return True
    return key < range_end


def of_type(perms: Iterable[tuple[int, bytes, bytes]], want: int) -> list[Interval]:
    """The intervals a permission type grants: READWRITE grants both READ and WRITE."""
    return sorted((interval(k, e) for t, k, e in perms if t in (want, READWRITE)),
                  key=lambda i: i[0])


def permitted(ivls: list[Interval], key: bytes, range_end: bytes) -> bool:
    """Whether sorted ``ivls`` hold the key (empty ``range_end``) or cover the range."""
    if not range_end:
        return any(s <= key and (e is None or key < e) for s, e in ivls)
    want_end = None if range_end == b"\x00" else range_end
    reach: bytes | None = key  # covered so far: [key, reach); None once unbounded
    for s, e in ivls:
        if reach is None:
            break
        if s > reach:
            break
        if e is None or e > reach:
            reach = e
    if reach is None:
        return True
    return want_end is not None and reach >= want_end
