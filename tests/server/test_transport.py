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
import contextlib
import json
import socket
import struct
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


# --- snapshot transfers (issue 11, defect 4, transport side) --------------------------------

SENDER = PEER


def snap_msg(index: int) -> Message:
    from raftkv.raft.types import ConfState, Snapshot, SnapshotMetadata
    return Message(MessageType.SNAP, to=ME, sender=SENDER, term=2, snapshot=Snapshot(
        SnapshotMetadata(index=index, term=2, conf_state=ConfState(voters=(ME, SENDER)))))


@dataclass
class Sender:
    transport: t.Transport
    release: asyncio.Event
    made: list[Path]
    statuses: list[bool]


@pytest.fixture
async def sender(node: Node, tmp_path: Path) -> AsyncIterator[Sender]:
    release = asyncio.Event()
    made: list[Path] = []
    statuses: list[bool] = []
    out = tmp_path / "sender-snap"
    out.mkdir()

    async def provider(m: Message) -> Path:
        path = out / f"send-{m.to:x}-{len(made)}.db"
        path.write_bytes(b"x" * (3 << 20))
        made.append(path)
        await release.wait()  # the transfer is "slow" until the test says so
        return path

    tr = t.Transport(SENDER, CLUSTER, lambda m: None, lambda pid: None,
                     lambda pid, failed: statuses.append(failed), provider, out)
    tr.set_peers({ME: node.url})
    try:
        yield Sender(tr, release, made, statuses)
    finally:
        await tr.close()


async def _until(pred: object, what: str) -> None:
    for _ in range(500):
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)  # polling a transfer's progress
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_snapshot_transfer_at_a_time_per_peer(node: Node, sender: Sender) -> None:
    for i in range(3):  # Raft re-probing a peer in snapshot state asks again and again
        sender.transport.send([snap_msg(10 + i)])
    await _until(lambda: sender.made, "the first transfer to start")
    assert (sender.transport.snapshots_sent, sender.transport.snapshots_skipped) == (1, 2)
    sender.release.set()
    await _until(lambda: sender.statuses, "the transfer to report")
    assert sender.statuses == [False]  # succeeded
    assert [m.type for m in node.received] == [MessageType.SNAP]
    # the send copy is gone; the receiver kept only the finished file
    assert not sender.made[0].exists()
    snap_dir = node.transport.snapshot_dir
    assert [p.name for p in snap_dir.iterdir()] == [
        t.received_snapshot_path(snap_dir, 2, 10).name]
    # and the next snapshot may go now
    sender.transport.send([snap_msg(20)])
    await _until(lambda: len(sender.statuses) == 2, "the second transfer")
    assert sender.transport.snapshots_sent == 2


async def test_a_failed_transfer_deletes_its_send_copy(node: Node, sender: Sender) -> None:
    await node.transport.close()  # nobody listens any more
    sender.release.set()
    sender.transport.send([snap_msg(10)])
    await _until(lambda: sender.statuses, "the transfer to fail")
    assert sender.statuses == [True] and not sender.made[0].exists()


async def test_concurrent_receives_use_their_own_temp_files(node: Node) -> None:
    """Two transfers of the same snapshot at once (two connections): each writes its own
    temp file; a cut one leaves nothing; the finished file is whole."""
    body = b"y" * (1 << 20)
    conns = []
    for _ in range(2):
        r, w = await _dial(node.url)
        w.write(t.frame(t.HELLO, t._HELLO.pack(t.PROTOCOL_VERSION, t.SNAPSHOT, CLUSTER,
                                               SENDER, ME)))
        w.write(t.frame(t.SNAP_HEADER, encode_message(snap_msg(10))))
        w.write(t.frame(t.SNAP_CHUNK, body))
        await w.drain()
        conns.append((r, w))
    snap_dir = node.transport.snapshot_dir
    await _until(lambda: len(list(snap_dir.glob(t.TMP_GLOB))) == 2, "two temp files")
    r, w = conns[0]
    import zlib
    w.write(t.frame(t.SNAP_END, zlib.crc32(body).to_bytes(4, "big")))
    await w.drain()
    kind, payload = await asyncio.wait_for(t.read_frame(r), 5)
    assert (kind, payload) == (t.SNAP_END, b"ok")
    conns[1][1].close()  # the other transfer is cut half way
    await _until(lambda: not list(snap_dir.glob(t.TMP_GLOB)), "the cut transfer's cleanup")
    final = t.received_snapshot_path(snap_dir, 2, 10)
    assert final.read_bytes() == body
    w.close()


async def test_leftovers_of_a_crashed_process_are_deleted_at_start(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    keep = t.received_snapshot_path(snap, 1, 5)
    for name in ("send-a1-123.db", f"{keep.name}.abc.tmp", "0000-0005.snap.tmp"):
        (snap / name).write_bytes(b"old")
    keep.write_bytes(b"complete, not yet installed")
    tr = t.Transport(ME, CLUSTER, lambda m: None, lambda pid: None, lambda p, f: None,
                     None, snap)  # type: ignore[arg-type]
    await tr.listen(f"http://127.0.0.1:{free_port()}")
    try:
        assert [p.name for p in snap.iterdir()] == [keep.name]
    finally:
        await tr.close()


def app_msg(to: int, data: bytes = b"x") -> Message:
    from raftkv.raft.types import Entry
    return Message(MessageType.APP, to=to, sender=SENDER, term=2, index=1, log_term=2,
                   entries=(Entry(2, 2, data=data),))


async def test_messages_sent_before_the_stream_connects_arrive(node: Node,
                                                                tmp_path: Path) -> None:
    """Sent in the same step as set_peers, before the dial finished: held, then flushed
    when the stream connects (Raft's first votes go out this way)."""
    tr = t.Transport(SENDER, CLUSTER, lambda m: None, lambda pid: None,
                     lambda pid, f: None, lambda m: None, tmp_path / "s")  # type: ignore[arg-type, return-value]
    tr.set_peers({ME: node.url})
    try:
        tr.send([app_msg(ME, b"first"), app_msg(ME, b"second")])
        await _until(lambda: len(node.received) == 2, "both messages")
        assert [m.entries[0].data for m in node.received] == [b"first", b"second"]
    finally:
        await tr.close()


async def test_a_peer_that_stops_reading_is_reported_and_its_buffer_bounded(
        tmp_path: Path) -> None:
    """A listener that takes the connection and never reads (a SIGSTOPped member): the
    sender's unsent bytes stop at about ``MAX_UNSENT`` and the peer is reported
    unreachable, instead of memory growing with every message."""
    async def never_reads(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    port = free_port()
    server = await asyncio.start_server(never_reads, "127.0.0.1", port)
    unreachable: list[int] = []
    tr = t.Transport(SENDER, CLUSTER, lambda m: None, unreachable.append,
                     lambda pid, f: None, lambda m: None, tmp_path / "s")  # type: ignore[arg-type, return-value]
    tr.set_peers({ME: f"http://127.0.0.1:{port}"})
    try:
        await _until(lambda: tr.connected(ME), "the stream to connect")
        big = app_msg(ME, b"x" * (1 << 20))
        for _ in range(t.MAX_UNSENT // (1 << 20) + 64):  # beyond the kernel's buffers too
            tr.send([big])
        w = tr.peers[ME].writer
        assert w is not None
        assert ME in unreachable
        assert w.transport.get_write_buffer_size() <= t.MAX_UNSENT + (2 << 20)
    finally:
        await tr.close()
        server.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_write_to_a_reset_connection_raises_on_either_loop(loop: str) -> None:
    """uvloop raises RuntimeError on a write to a closed transport (asyncio drops it); a
    stream task died of that once and a member never heard from its leader again."""
    from raftkv.server import eventloop

    async def check() -> None:
        async def reset(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.get_extra_info("socket").setsockopt(  # an RST, as the fault proxy sends
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()

        server = await asyncio.start_server(reset, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            with contextlib.suppress(ConnectionError):
                await r.read(1)  # the reset arrived
            with pytest.raises(ConnectionResetError):
                t.put(w, b"x")
            w.close()
        finally:
            server.close()

    eventloop.run(check(), loop)
