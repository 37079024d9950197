"""Which process owns the far end of a loopback TCP connection (Linux ``/proc``).

The fault proxies need to know which member dialed them: all members dial from
127.0.0.1 (etcd 3.5's peer dialer does not bind a source address), so the source address
says nothing. The kernel does know: the dialer's socket is the one in ``/proc/net/tcp``
whose local port is the connection's source port and whose remote port is the proxy's
port, and its inode appears as ``socket:[inode]`` among the owner's file descriptors.

Invariant: returns a pid only when that exact socket was found among the given pids'
descriptors; otherwise None (the caller treats the dialer as unidentified).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable


def _socket_inode(src_port: int, dst_port: int) -> int | None:
    want_local = f"0100007F:{src_port:04X}"
    want_remote = f"0100007F:{dst_port:04X}"
    with open("/proc/net/tcp") as f:  # IPv4 only: members dial 127.0.0.1
        next(f)
        for line in f:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if local == want_local and remote == want_remote and inode != "0":
                return int(inode)
    return None


def owner_of_connection(src_port: int, dst_port: int, pids: Iterable[int]) -> int | None:
    """The pid among ``pids`` that holds the client socket 127.0.0.1:src_port -> dst_port."""
    inode = _socket_inode(src_port, dst_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}") == target:
                        return pid
    return None
