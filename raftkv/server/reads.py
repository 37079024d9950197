"""Reads that may be large, served without holding the event loop: a Range is read a page
of keys at a time at one revision and its response built a page at a time, yielding to
the loop between pages (Python threads do not help CPU-bound work, and the backend's
connection belongs to the loop's thread).

Invariants: every page is read at the same revision ``at``, which is consistent because
only a compaction above ``at`` can remove rows visible at ``at``; if one ran meanwhile
the read starts over at the new current revision (or, for an explicit revision that got
compacted, fails with Compacted as any read below the compacted revision does). Each page
is read under the backend lock, which a defragmentation holds while it runs.
"""

from __future__ import annotations

import asyncio

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors, kv
from raftkv.server import validate
from raftkv.storage.backend import Backend, KeyValue

PAGE = 200  # keys per page: a millisecond or two of SQLite and protobuf work


async def range_paged(backend: Backend, lock: asyncio.Lock, r: rpc_pb2.RangeRequest,
                      page: int = PAGE) -> rpc_pb2.RangeResponse:
    validate.check_range(r)
    end = r.range_end if r.range_end else None
    # as kv.range_ (and etcd): with the default order and no filters the limit applies to
    # the keys in key order before sorting; the count is of every key in the range
    default_order, filters = kv.order_and_filters(r)
    keep = r.limit + 1 if r.limit > 0 and default_order and not filters else 0
    # key order and nothing to filter: each page goes straight into the response, so no
    # Python object per key outlives its page (100k of them made the collector's full
    # passes long enough to show as loop lag)
    direct = not filters and r.sort_target == rpc_pb2.RangeRequest.KEY and \
        r.sort_order in (rpc_pb2.RangeRequest.NONE, rpc_pb2.RangeRequest.ASCEND)
    while True:
        current = kv.check_range_revision(backend, r)
        at = r.revision if r.revision > 0 else current  # <= 0: current, as etcd
        resp = rpc_pb2.RangeResponse()
        rows: list[KeyValue] = []
        count = 0
        after: bytes | None = None
        while True:
            async with lock:
                got, after = backend.range_page(r.key, end, at, after, page)
            count += len(got)
            if direct:
                room = r.limit - len(resp.kvs) if r.limit > 0 else len(got)
                if not r.count_only and room > 0:
                    resp.kvs.extend(kv.to_pb(x, r.keys_only) for x in got[:room])
            elif not keep or len(rows) < keep:
                rows.extend(got[:keep - len(rows)] if keep else got)
            if after is None:
                break
            await asyncio.sleep(0)
        if backend.compacted_revision() <= at:
            break  # no compaction above ``at``: nothing we read at ``at`` was deleted
        if r.revision > 0:
            raise errors.Compacted()
    if direct:
        resp.count = count
        resp.more = 0 < r.limit < count
        resp.header.revision = current
        return resp
    resp, out = kv.select(r, rows, count, current)
    if not r.count_only:
        for i in range(0, len(out), page):
            resp.kvs.extend(kv.to_pb(x, r.keys_only) for x in out[i:i + page])
            if i + page < len(out):
                await asyncio.sleep(0)
    return resp
