"""The wire/disk encoding: exact round trips, and malformed bytes refused with DecodeError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.raft.codec import (
    DecodeError,
    decode_conf_change,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    encode_conf_change,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
)
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

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
entries = st.builds(Entry, u64, u64, st.sampled_from(EntryType), st.binary(max_size=64))
snapshots = st.builds(
    Snapshot,
    st.builds(SnapshotMetadata, u64, u64,
              st.builds(ConfState, st.lists(ids, max_size=7).map(tuple),
                        st.lists(ids, max_size=3).map(tuple))),
    st.binary(max_size=128),
)
messages = st.builds(
    Message,
    st.sampled_from(MessageType), u64, u64, u64, u64, u64,
    st.lists(entries, max_size=5), u64, st.none() | snapshots, st.booleans(), u64,
    st.binary(max_size=16),
)


@given(messages)
def test_message_round_trip(m: Message) -> None:
    assert decode_message(encode_message(m)) == m


@given(entries)
def test_entry_round_trip(e: Entry) -> None:
    assert decode_entry(encode_entry(e)) == e


@given(snapshots)
def test_snapshot_round_trip(s: Snapshot) -> None:
    assert decode_snapshot(encode_snapshot(s)) == s


@given(st.builds(HardState, u64, u64, u64))
def test_hard_state_round_trip(hs: HardState) -> None:
    assert decode_hard_state(encode_hard_state(hs)) == hs


@given(st.builds(ConfChange, st.sampled_from(ConfChangeType), ids, st.binary(max_size=8)))
def test_conf_change_round_trip(cc: ConfChange) -> None:
    assert decode_conf_change(encode_conf_change(cc)) == cc


@settings(max_examples=300)
@given(messages, st.data())
def test_corrupted_message_never_crashes(m: Message, data: st.DataObject) -> None:
    """Truncations, flipped bytes and junk either decode to something or raise DecodeError."""
    buf = bytearray(encode_message(m))
    choice = data.draw(st.sampled_from(["truncate", "flip", "append"]))
    if choice == "truncate":
        del buf[data.draw(st.integers(0, len(buf) - 1)):]
    elif choice == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] ^= data.draw(st.integers(1, 255))
    else:
        buf += data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(DecodeError):
        decode_message(bytes(buf))


def test_refuses_unknown_version_and_bogus_counts() -> None:
    good = encode_message(Message(MessageType.APP, to=1, sender=2, term=3))
    with pytest.raises(DecodeError, match="version"):
        decode_message(b"\x09" + good[1:])
    with pytest.raises(DecodeError, match="trailing"):
        decode_message(good + b"\x00")
    with pytest.raises(DecodeError, match="invalid MessageType"):
        decode_message(good[:1] + b"\xff" + good[2:])
    # an entry count far beyond the buffer must not allocate or loop
    bogus = bytearray(good)
    bogus[59:63] = (0xFFFFFF).to_bytes(4, "big")
    with pytest.raises(DecodeError):
        decode_message(bytes(bogus))
