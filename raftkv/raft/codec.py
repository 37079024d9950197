"""A fixed, versioned binary encoding of the core's types for the wire and the disk.

Peers' bytes are untrusted: ``decode_*`` validates every length and enum against the
buffer and raises :class:`DecodeError` (never anything else) on malformed input. Every
top-level record starts with a format version byte; an unknown version is refused.
Integers are big-endian and unsigned; IDs, terms and indexes are 64-bit.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from raftkv.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

VERSION = 1
MAX_COUNT = 1 << 24  # no list in a record may claim more elements than this

_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ENTRY = struct.Struct(">QQBI")
_MSG = struct.Struct(">BBQQQQQQBQI")
_HARD = struct.Struct(">BQQQ")
_CC = struct.Struct(">BBQ")
_SNAPMETA = struct.Struct(">QQ")


class DecodeError(ValueError):
    """The bytes are not a valid record of the expected kind and version."""


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise DecodeError(f"truncated record: need {n} bytes at offset {self.pos}")
        view = self.buf[self.pos : end]
        self.pos = end
        return view

    def unpack(self, st: struct.Struct) -> tuple[int, ...]:
        return st.unpack(self.take(st.size))

    def count(self) -> int:
        (n,) = self.unpack(_U32)
        if n > MAX_COUNT:
            raise DecodeError(f"count {n} exceeds limit {MAX_COUNT}")
        return int(n)

    def blob(self) -> bytes:
        return bytes(self.take(self.count()))

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise DecodeError(f"{len(self.buf) - self.pos} trailing bytes")


def _version(r: _Reader) -> None:
    (v,) = r.unpack(_U8)
    if v != VERSION:
        raise DecodeError(f"unsupported format version {v} (this build reads {VERSION})")


_E = TypeVar("_E", EntryType, MessageType, ConfChangeType)


def _enum(cls: type[_E], value: int) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"invalid {cls.__name__} {value}") from None


# --- entries -------------------------------------------------------------------------


def _put_entry(out: list[bytes], e: Entry) -> None:
    out.append(_ENTRY.pack(e.term, e.index, e.type, len(e.data)))
    out.append(e.data)


def _get_entry(r: _Reader) -> Entry:
    term, index, typ, n = r.unpack(_ENTRY)
    return Entry(term, index, _enum(EntryType, typ), bytes(r.take(n)))


def encode_entry(e: Entry) -> bytes:
    out = [_U8.pack(VERSION)]
    _put_entry(out, e)
    return b"".join(out)


def decode_entry(buf: bytes) -> Entry:
    r = _Reader(buf)
    _version(r)
    e = _get_entry(r)
    r.done()
    return e


# --- conf state, snapshots ---------------------------------------------------------


def _put_ids(out: list[bytes], ids: tuple[int, ...]) -> None:
    out.append(_U32.pack(len(ids)))
    out.extend(_U64.pack(i) for i in ids)


def _get_ids(r: _Reader) -> tuple[int, ...]:
    return tuple(int(r.unpack(_U64)[0]) for _ in range(r.count()))


def _put_snapshot(out: list[bytes], s: Snapshot) -> None:
    out.append(_SNAPMETA.pack(s.metadata.index, s.metadata.term))
    _put_ids(out, s.metadata.conf_state.voters)
    _put_ids(out, s.metadata.conf_state.learners)
    out.append(_U32.pack(len(s.data)))
    out.append(s.data)


def _get_snapshot(r: _Reader) -> Snapshot:
    index, term = r.unpack(_SNAPMETA)
    voters = _get_ids(r)
    learners = _get_ids(r)
    data = r.blob()
    return Snapshot(SnapshotMetadata(index, term, ConfState(voters, learners)), data)


def encode_snapshot(s: Snapshot) -> bytes:
    out = [_U8.pack(VERSION)]
    _put_snapshot(out, s)
    return b"".join(out)


def decode_snapshot(buf: bytes) -> Snapshot:
    r = _Reader(buf)
    _version(r)
    s = _get_snapshot(r)
    r.done()
    return s


# --- hard state, conf change ---------------------------------------------------------


def encode_hard_state(hs: HardState) -> bytes:
    return _HARD.pack(VERSION, hs.term, hs.vote, hs.commit)


def decode_hard_state(buf: bytes) -> HardState:
    r = _Reader(buf)
    v, term, vote, commit = r.unpack(_HARD)
    if v != VERSION:
        raise DecodeError(f"unsupported format version {v} (this build reads {VERSION})")
    r.done()
    return HardState(term, vote, commit)


def encode_conf_change(cc: ConfChange) -> bytes:
    return b"".join(
        (_CC.pack(VERSION, cc.type, cc.node_id), _U32.pack(len(cc.context)), cc.context)
    )


def decode_conf_change(buf: bytes) -> ConfChange:
    r = _Reader(buf)
    v, typ, node = r.unpack(_CC)
    if v != VERSION:
        raise DecodeError(f"unsupported format version {v} (this build reads {VERSION})")
    ctx = r.blob()
    r.done()
    if node == 0:
        raise DecodeError("conf change names node 0")
    return ConfChange(_enum(ConfChangeType, typ), int(node), ctx)


# --- messages --------------------------------------------------------------------------


def encode_message(m: Message) -> bytes:
    out = [
        _MSG.pack(
            VERSION,
            m.type,
            m.to,
            m.sender,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            1 if m.reject else 0,
            m.reject_hint,
            len(m.entries),
        ),
        _U32.pack(len(m.context)),
        m.context,
    ]
    for e in m.entries:
        _put_entry(out, e)
    if m.snapshot is None:
        out.append(b"\x00")
    else:
        out.append(b"\x01")
        _put_snapshot(out, m.snapshot)
    return b"".join(out)


def decode_message(buf: bytes) -> Message:
    r = _Reader(buf)
    v, typ, to, sender, term, log_term, index, commit, reject, hint, n = r.unpack(_MSG)
    if v != VERSION:
        raise DecodeError(f"unsupported format version {v} (this build reads {VERSION})")
    if n > MAX_COUNT:
        raise DecodeError(f"entry count {n} exceeds limit {MAX_COUNT}")
    if reject > 1:
        raise DecodeError(f"invalid reject flag {reject}")
    ctx = r.blob()
    entries = [_get_entry(r) for _ in range(n)]
    (has_snap,) = r.unpack(_U8)
    if has_snap > 1:
        raise DecodeError(f"invalid snapshot flag {has_snap}")
    snap = _get_snapshot(r) if has_snap else None
    r.done()
    return Message(
        _enum(MessageType, typ),
        int(to),
        int(sender),
        int(term),
        int(log_term),
        int(index),
        entries,
        int(commit),
        snap,
        bool(reject),
        int(hint),
        ctx,
    )
