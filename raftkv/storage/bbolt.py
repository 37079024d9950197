"""A read-only reader of bbolt files (etcd's backend), enough to restore an etcd snapshot.

Written from bbolt's documented on-disk format: fixed-size pages, each with a 16-byte
header (id u64, flags u16, count u16, overflow u32, little-endian); two meta pages (0 and
1) of which the valid one with the higher transaction ID is current; branch pages hold
(pos u32, ksize u32, pgid u64) elements, leaf pages (flags u32, pos u32, ksize u32,
vsize u32) elements whose key and value sit ``pos`` bytes after the element; a leaf
element with flag 1 is a sub-bucket whose value starts with (root pgid u64, sequence
u64) and, for an inline bucket (root 0), holds its one leaf page right after.

Invariants: the file is never written (opened read-only, mapped read-only); every offset
is checked against the mapping and no page is visited twice in one walk, so a truncated
or malformed file raises ``BoltError`` instead of reading garbage, looping or crashing;
keys come out in bbolt's (byte) order.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from raftkv.storage.errors import StorageError

MAGIC = 0xED0CDAED
_HDR = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQQ")  # magic version pagesize flags root seq freelist pgid txid chk
_BRANCH = struct.Struct("<IIQ")
_LEAF = struct.Struct("<IIII")
_BUCKET = struct.Struct("<QQ")
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
MAX_DEPTH = 64


class BoltError(StorageError):
    pass


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class BoltFile:
    def __init__(self, path: Path, size: int | None = None) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self._m = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            self._f.close()
            raise BoltError(f"{path} is empty") from None
        self.size = min(size or len(self._m), len(self._m))
        self.path = path
        metas = []
        ps = self._meta_at(0)
        if ps is None:
            self.close()
            raise BoltError(f"{path} is not a bbolt file (no valid meta page)")
        self.page_size = ps[2]
        for pgid in (0, 1):
            m = self._meta_at(pgid * self.page_size)
            if m is not None:
                metas.append(m)
        if not metas:
            self.close()
            raise BoltError(f"{path} has no valid bbolt meta page")
        meta = max(metas, key=lambda m: m[8])
        self.root = meta[4]

    def _meta_at(self, off: int) -> tuple[int, ...] | None:
        end = off + _HDR.size + _META.size
        if off < 0 or end > self.size:
            return None
        raw = bytes(self._m[off + _HDR.size:end])
        m = _META.unpack(raw)
        if m[0] != MAGIC or m[2] < 512 or m[2] & (m[2] - 1):
            return None
        if _fnv64a(raw[:_META.size - 8]) != m[9]:
            return None
        return m

    def close(self) -> None:
        if getattr(self, "_m", None) is not None:
            self._m.close()
        self._f.close()

    def __enter__(self) -> BoltFile:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _page(self, pgid: int) -> bytes:
        off = pgid * self.page_size
        if pgid < 2 or off + _HDR.size > self.size:
            raise BoltError(f"{self.path}: page {pgid} is outside the file")
        overflow = _HDR.unpack_from(self._m, off)[3]
        end = off + (overflow + 1) * self.page_size
        if end > self.size:
            raise BoltError(f"{self.path}: page {pgid} runs past the end of the file")
        return self._m[off:end]  # a copy: nothing keeps the mapping exported

    def _items(self, page: bytes, depth: int = 0,
               seen: set[int] | None = None) -> Iterator[tuple[bytes, bytes, int]]:
        """Elements of the tree rooted at ``page`` in order; ``seen`` holds the pages of
        this walk (a page reached twice is a cycle or a shared subtree: malformed)."""
        seen = set() if seen is None else seen
        if depth > MAX_DEPTH:
            raise BoltError(f"{self.path}: the B+tree is deeper than {MAX_DEPTH}")
        if len(page) < _HDR.size:
            raise BoltError(f"{self.path}: a page shorter than its header")
        _, flags, count, _ = _HDR.unpack_from(page)
        if flags & BRANCH:
            for i in range(count):
                e = _HDR.size + i * _BRANCH.size
                self._check(page, e + _BRANCH.size)
                _, _, child = _BRANCH.unpack_from(page, e)
                if child in seen:
                    raise BoltError(f"{self.path}: page {child} is reached twice")
                seen.add(child)
                yield from self._items(self._page(child), depth + 1, seen)
        elif flags & LEAF:
            for i in range(count):
                e = _HDR.size + i * _LEAF.size
                self._check(page, e + _LEAF.size)
                fl, pos, ksize, vsize = _LEAF.unpack_from(page, e)
                k0 = e + pos
                self._check(page, k0 + ksize + vsize)
                yield page[k0:k0 + ksize], page[k0 + ksize:k0 + ksize + vsize], fl
        else:
            raise BoltError(f"{self.path}: page with flags {flags:#x} inside a bucket")

    def _check(self, page: bytes, end: int) -> None:
        if end > len(page):
            raise BoltError(f"{self.path}: an element runs past its page")

    def _bucket_pages(self, value: bytes) -> bytes:
        if len(value) < _BUCKET.size:
            raise BoltError(f"{self.path}: a bucket header is truncated")
        root, _ = _BUCKET.unpack_from(value)
        if root == 0:
            return value[_BUCKET.size:]  # an inline bucket's one leaf page
        return self._page(root)

    def buckets(self) -> list[bytes]:
        return [k for k, _, fl in self._items(self._page(self.root)) if fl & BUCKET_LEAF]

    def items(self, bucket: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The (key, value) pairs of a top-level bucket (none if it does not exist)."""
        for k, v, fl in self._items(self._page(self.root)):
            if k == bucket and fl & BUCKET_LEAF:
                for k2, v2, fl2 in self._items(self._bucket_pages(v)):
                    if not fl2 & BUCKET_LEAF:
                        yield k2, v2
                return
