"""The peer transport refuses what only a member may do (issue 11, defect 9).

- DISCOVER reveals the cluster ID and member IDs only to a dialer whose advertised peer
  URLs belong to a member of the cluster (one added with MemberAdd); anyone else gets
  the connection closed and not one byte;
- a message stream carries only peer message types: local-only types (HUP, BEAT,
  UNREACHABLE, SNAP_STATUS, CHECK_QUORUM) and term-0 messages other than forwarded
  proposals and ReadIndex requests (which Raft would treat as local) close the stream and
  never reach Raft.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raftkv.raft import Message, MessageType
from raftkv.raft.codec import encode_message
from raftkv.server import transport as t
from tests.support.proc import free_port

CLUSTER, ME, PEER = 0xC1, 0xA1, 0xB2
ADDED = "http://127.0.0.1:1"  # a member added with MemberAdd that has not started yet


@dataclass
class Node:
    transport: t.Transport
    url: str
    received: list[Message] = field(default_factory=list)


def members_json() -> bytes:
    return json.dumps({"cluster_id": CLUSTER, "members": [
        {"id": ME, "name": "me", "peer_urls": ["http://127.0.0.1:2"]},
        {"id": PEER, "name": "", "peer_urls": [ADDED]},
    ]}).encode()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    received: list[Message] = []

    async def no_snapshot(m: Message) -> Path:
        raise AssertionError("no snapshot in these tests")

    tr = t.Transport(ME, CLUSTER, received.append, lambda pid: None, lambda pid, f: None,
                     no_snapshot, tmp_path / "snap", members_json)
    url = f"http://127.0.0.1:{free_port()}"
    await tr.listen(url)
    try:
        yield Node(tr, url, received)
    finally:
        await tr.close()


async def _dial(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*t.host_port(url))


async def _closed_without_a_byte(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_discover_tells_a_stranger_nothing(node: Node) -> None:
    hello = t.frame(t.HELLO, t._HELLO.pack(t.PROTOCOL_VERSION, t.DISCOVER, 0, 0, 0))
    for then in (b"",  # today's main answered a bare DISCOVER HELLO with everything
                 t.frame(t.WHO, b'["http://10.9.9.9:2380"]'),
                 t.frame(t.WHO, b'not json'),
                 t.frame(t.MSG, b"")):
        r, w = await _dial(node.url)
        w.write(hello + then)
        w.write_eof()
        assert await _closed_without_a_byte(r), then
        w.close()
    with pytest.raises(t.TransportError):
        await t.discover(node.url, peer_urls=["http://10.9.9.9:2380"])


async def test_discover_answers_a_member_that_was_added(node: Node) -> None:
    info = json.loads(await t.discover(node.url, peer_urls=[ADDED]))
    assert info["cluster_id"] == CLUSTER
    assert {m["id"] for m in info["members"]} == {ME, PEER}


async def _stream(url: str, msgs: list[Message]) -> tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]:
    r, w = await _dial(url)
    w.write(t.frame(t.HELLO, t._HELLO.pack(t.PROTOCOL_VERSION, t.STREAM, CLUSTER, PEER, ME)))
    w.write(b"".join(t.frame(t.MSG, encode_message(m)) for m in msgs))
    await w.drain()
    return r, w


@pytest.mark.parametrize("bad", [
    Message(MessageType.APP, to=ME, sender=PEER, term=0, index=5, log_term=0, commit=99),
    Message(MessageType.HEARTBEAT, to=ME, sender=PEER, term=0, commit=99),
    Message(MessageType.HUP, to=ME, sender=PEER, term=7),
    Message(MessageType.BEAT, to=ME, sender=PEER, term=7),
    Message(MessageType.CHECK_QUORUM, to=ME, sender=PEER, term=7),
    Message(MessageType.UNREACHABLE, to=ME, sender=PEER, term=7),
    Message(MessageType.SNAP_STATUS, to=ME, sender=PEER, term=7),
], ids=lambda m: f"{m.type.name}-term{m.term}")
async def test_local_and_term_zero_messages_are_refused(node: Node, bad: Message) -> None:
    good = Message(MessageType.HEARTBEAT, to=ME, sender=PEER, term=3)
    r, w = await _stream(node.url, [good, bad, good])
    assert await _closed_without_a_byte(r)
    w.close()
    assert [m.type for m in node.received] == [MessageType.HEARTBEAT], node.received


async def test_peer_messages_are_delivered(node: Node) -> None:
    msgs = [Message(MessageType.APP, to=ME, sender=PEER, term=2, index=1, log_term=1),
            Message(MessageType.PROP, to=ME, sender=PEER, term=0),  # forwarded: term 0
            Message(MessageType.READ_INDEX, to=ME, sender=PEER, term=0),
            Message(MessageType.VOTE, to=ME, sender=PEER, term=4, index=3, log_term=2)]
    r, w = await _stream(node.url, msgs)
    for _ in range(100):
        if len(node.received) == len(msgs):
            break
        await asyncio.sleep(0.01)  # delivery is asynchronous: poll the receiver
    assert [m.type for m in node.received] == [m.type for m in msgs]
    assert not r.at_eof()  # the stream stays open
    w.close()
