"""Peer transport: Raft messages between members over long-lived framed TCP streams.

Frames are ``u32 length | u8 kind | payload``; payloads use the core's versioned codec
(never pickle). Each connection starts with a HELLO naming the format version, the
cluster ID and both member IDs; a mismatched cluster is refused, so members of another
cluster (or a client pointed at the peer port) cannot inject messages. A message stream
carries only Raft's peer message types, and term 0 only on forwarded proposals and
ReadIndex requests (Raft takes any other term-0 message for a local one). DISCOVER (a
joining member asking for the cluster ID and member list) is answered only to a dialer
naming peer URLs that are a member's; anyone else learns nothing. One outbound
stream per peer carries ordinary messages: ``send`` writes each Ready's messages for a
peer in one write, at once, with no task between Raft and the socket; while the stream
is down they wait in a bounded list that its connection flushes (and a failed
connection discards: Raft resends what matters). When that list is full, or the
stream's unsent bytes pass ``MAX_UNSENT`` (a peer that stopped reading), messages are
dropped, which Raft tolerates, and the peer is reported unreachable; the stream
reconnects with capped exponential backoff. A snapshot goes on
a connection of its own, the backend file streamed in chunks with a CRC, so a large
transfer never delays heartbeats; the receiver writes it to a file and only then hands
the snapshot message to Raft. At most one snapshot transfer runs per peer (Raft asking
again meanwhile is ignored: the running transfer reports its status); every
per-transfer send copy is deleted when its transfer ends, every receive writes a temp
file of its own that is renamed or deleted, and leftovers of a crashed process are
deleted at start.

TLS (an https peer URL): the listener and the dialer use the peer port's certificates
(:class:`~raftkv.server.tlsfiles.CertSource`, re-read when their files change). With a
peer trusted CA, a dialer without a certificate that CA signed fails the TLS handshake,
and one whose certificate CN is not ``--peer-cert-allowed-cn`` (when set) is refused
before its HELLO is read: no Raft message of either is ever decoded. The dialer verifies
the listener's certificate against the same CA and the peer URL's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from raftkv.raft import Message, MessageType
from raftkv.raft.codec import DecodeError, decode_message, encode_message
from raftkv.raft.types import LOCAL_MESSAGES
from raftkv.server.tlsfiles import CertSource, peer_common_name

log = logging.getLogger("raftkv.transport")

PROTOCOL_VERSION = 1
MAX_FRAME = 64 << 20
SNAPSHOT_CHUNK = 1 << 20
QUEUE_LIMIT = 4096  # messages held for a peer whose stream is not connected
MAX_UNSENT = 32 << 20  # bytes a connected stream may buffer before messages are dropped

HELLO, MSG, SNAP_HEADER, SNAP_CHUNK, SNAP_END, MEMBERS, WHO = 1, 2, 3, 4, 5, 6, 7
STREAM, SNAPSHOT, DISCOVER = 1, 2, 3  # connection purposes, named in HELLO

# What a peer may send on a message stream: Raft's peer messages. Local-only types (HUP,
# BEAT, UNREACHABLE, SNAP_STATUS, CHECK_QUORUM) come from this process alone; MsgSnap has
# its own connection.
PEER_TYPES = frozenset(MessageType) - LOCAL_MESSAGES - {MessageType.SNAP}
# Raft treats a term-0 message as local (no term checks); only forwarded proposals and
# ReadIndex requests legitimately cross the network with term 0.
TERM_ZERO_TYPES = frozenset({MessageType.PROP, MessageType.READ_INDEX})

_HDR = struct.Struct(">IB")
_HELLO = struct.Struct(">BBQQQ")  # version, purpose, cluster, from, to


class TransportError(Exception):
    pass


def host_port(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    if not u.hostname or not u.port:
        raise ValueError(f"peer URL {url!r} needs a host and a port")
    return u.hostname, u.port


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    hdr = await reader.readexactly(_HDR.size)
    length, kind = _HDR.unpack(hdr)
    if length > MAX_FRAME:
        raise TransportError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    return kind, await reader.readexactly(length)


def frame(kind: int, payload: bytes) -> bytes:
    return _HDR.pack(len(payload), kind) + payload


def put(w: asyncio.StreamWriter, data: bytes) -> None:
    """Write to a peer connection. One the far end already reset is a ConnectionResetError
    on every event loop: asyncio's drops the bytes, uvloop raises RuntimeError, which
    ended a stream task for good (a member never heard from its leader again)."""
    if w.is_closing():
        raise ConnectionResetError("the peer closed the connection")
    w.write(data)


def received_snapshot_path(snapshot_dir: Path, term: int, index: int) -> Path:
    """Where a snapshot's backend file received from the leader is kept until installed."""
    return snapshot_dir / f"{term:016x}-{index:016x}.snap.db"


def dial_context(url: str, tls: CertSource | None) -> ssl.SSLContext | None:
    """The TLS context to dial ``url`` with: None for http, else the peer certificates'
    (or, with none configured, the system's trust store and no client certificate)."""
    if urlsplit(url).scheme != "https":
        return None
    return tls.client_context() if tls is not None else ssl.create_default_context()


async def open_peer(url: str, tls: CertSource | None, timeout: float,
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a peer URL, over TLS for https (the handshake within ``timeout``)."""
    host, port = host_port(url)
    ctx = dial_context(url, tls)
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None),
        timeout)


async def discover(peer_url: str, peer_urls: list[str], timeout: float = 5.0,
                   tls: CertSource | None = None) -> bytes:
    """Ask a member, over its peer port, for the cluster ID and member list (JSON).

    ``peer_urls`` are the asking member's own advertised peer URLs: the member answers
    only if they are a member's (one added with MemberAdd), and closes the connection
    without a word otherwise."""
    reader, writer = await open_peer(peer_url, tls, timeout)
    try:
        put(writer, frame(HELLO, _HELLO.pack(PROTOCOL_VERSION, DISCOVER, 0, 0, 0)))
        put(writer, frame(WHO, json.dumps(sorted(peer_urls)).encode()))
        await writer.drain()
        try:
            kind, payload = await asyncio.wait_for(read_frame(reader), timeout)
        except asyncio.IncompleteReadError:
            raise TransportError(f"peer {peer_url} refused discovery: peer URLs "
                                 f"{sorted(peer_urls)} are not a member's") from None
        if kind != MEMBERS:
            raise TransportError(f"peer {peer_url} answered discovery with frame kind {kind}")
        return payload
    finally:
        writer.close()


SnapshotProvider = Callable[[Message], Awaitable[Path]]
"""Given an outgoing MsgSnap, produce the backend file to stream with it: a copy made for
this one transfer, which the transport deletes once the transfer ends (either way)."""

SEND_GLOB = "send-*.db"  # the provider's per-transfer copies (raftserver._snapshot_file)
TMP_GLOB = "*.snap.db.*.tmp"  # receives in progress


@dataclass
class _Peer:
    id: int
    url: str
    pending: list[bytes] = field(default_factory=list)  # frames sent before it connected
    writer: asyncio.StreamWriter | None = None  # the connected stream
    task: asyncio.Task[None] | None = None
    connected: bool = False
    sending_snapshot: bool = False  # one transfer at a time per peer
    tls_error: str = ""  # the last TLS failure dialing it (logged when it changes)


class Transport:
    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        snapshot_provider: SnapshotProvider,
        snapshot_dir: Path,
        members_provider: Callable[[], bytes] = lambda: b"{}",
        tls: CertSource | None = None,
    ) -> None:
        self.members_provider = members_provider
        self.tls = tls
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.on_message = on_message
        self.on_unreachable = on_unreachable
        self.on_snapshot_status = on_snapshot_status
        self.snapshot_provider = snapshot_provider
        self.snapshot_dir = snapshot_dir
        self.peers: dict[int, _Peer] = {}
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.snapshots_sent = 0  # transfers started (for tests and logs)
        self.snapshots_skipped = 0  # MsgSnaps dropped while a transfer to the peer ran

    # --- lifecycle ----------------------------------------------------------------------

    async def listen(self, url: str) -> None:
        self._remove_leftovers()
        host, port = host_port(url)
        ctx = None
        if urlsplit(url).scheme == "https":
            if self.tls is None:
                raise TransportError(f"peer URL {url} is https, but no peer certificate is set")
            ctx = self.tls.listening_context()
        self.server = await asyncio.start_server(self._accept, host, port, ssl=ctx)

    def _remove_leftovers(self) -> None:
        """Send copies and partial receives of a previous process (none is live: the
        data dir is locked by this one)."""
        if not self.snapshot_dir.is_dir():
            return
        for pattern in (SEND_GLOB, TMP_GLOB, "*.snap.tmp"):
            for path in self.snapshot_dir.glob(pattern):
                with contextlib.suppress(OSError):
                    path.unlink()

    def set_peers(self, peers: dict[int, str]) -> None:
        """Make the peer set exactly ``peers`` (id -> peer URL), starting/stopping streams."""
        for pid in list(self.peers):
            if pid not in peers or self.peers[pid].url != peers[pid]:
                self._drop_peer(pid)
        for pid, url in peers.items():
            if pid != self.member_id and pid not in self.peers:
                p = _Peer(pid, url)
                p.task = asyncio.create_task(self._stream(p), name=f"peer-{pid:x}")
                self.peers[pid] = p

    def _drop_peer(self, pid: int) -> None:
        p = self.peers.pop(pid)
        if p.task is not None:
            p.task.cancel()

    async def close(self) -> None:
        self._closing = True
        streams = [p.task for p in self.peers.values() if p.task is not None]
        for pid in list(self.peers):
            self._drop_peer(pid)
        await asyncio.gather(*streams, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def connected(self, pid: int) -> bool:
        p = self.peers.get(pid)
        return p is not None and p.connected

    # --- sending ---------------------------------------------------------------------------

    def send(self, msgs: list[Message]) -> None:
        frames: dict[int, list[bytes]] = {}
        for m in msgs:
            p = self.peers.get(m.to)
            if p is None:
                continue  # not (or no longer) a peer: Raft will cope
            if m.type is MessageType.SNAP:
                if p.sending_snapshot:
                    # Raft asks again while the first transfer runs (a large database
                    # takes longer than its probe interval): one transfer at a time; the
                    # running one reports its status, and Raft asks again if needed
                    self.snapshots_skipped += 1
                    log.info("snapshot to %x already in flight; not sending another", p.id)
                    continue
                p.sending_snapshot = True
                self.snapshots_sent += 1
                self._spawn(self._send_snapshot(p, m), f"snapshot-to-{p.id:x}")
                continue
            frames.setdefault(m.to, []).append(frame(MSG, encode_message(m)))
        for pid, out in frames.items():
            self._write(self.peers[pid], out)

    def _write(self, p: _Peer, out: list[bytes]) -> None:
        w = p.writer
        if w is None or w.is_closing():
            if len(p.pending) + len(out) > QUEUE_LIMIT:
                self.on_unreachable(p.id)
                return
            p.pending.extend(out)
        elif w.transport.get_write_buffer_size() > MAX_UNSENT:
            self.on_unreachable(p.id)  # it stopped reading: drop, Raft resends
        else:
            w.write(b"".join(out))

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        t = asyncio.ensure_future(coro)
        t.set_name(name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _hello(self, purpose: int, to: int) -> bytes:
        return frame(HELLO, _HELLO.pack(PROTOCOL_VERSION, purpose, self.cluster_id,
                                        self.member_id, to))

    async def _stream(self, p: _Peer) -> None:
        backoff = 0.05
        while not self._closing:
            writer: asyncio.StreamWriter | None = None
            try:
                r, w = await open_peer(p.url, self.tls, 2)
                writer = w
                put(w, self._hello(STREAM, p.id))
                await w.drain()
                p.connected = True
                backoff = 0.05
                if p.pending:
                    put(w, b"".join(p.pending))
                    p.pending.clear()
                p.writer = w
                try:
                    # The receiver never writes on a stream: anything readable (or EOF)
                    # means the far end closed (perhaps only half-closed, by a proxy or a
                    # dead process); a failed write closes the transport, which ends this
                    # read too.
                    await r.read(1)
                finally:
                    p.writer = None
                raise ConnectionResetError("peer closed the stream")
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, ValueError) as exc:
                if isinstance(exc, ssl.SSLError) and str(exc) != p.tls_error:
                    p.tls_error = str(exc)  # once per distinct error, not every retry
                    log.warning("TLS with peer %x at %s failed: %s", p.id, p.url, exc)
                if p.connected:
                    log.info("lost stream to peer %x: %s", p.id, exc)
                p.connected = False
                self.on_unreachable(p.id)
                p.pending.clear()  # stale once this attempt failed; Raft resends
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                if writer is not None:
                    writer.close()

    async def _send_snapshot(self, p: _Peer, m: Message) -> None:
        ok = False
        writer: asyncio.StreamWriter | None = None
        path: Path | None = None
        try:
            path = await self.snapshot_provider(m)
            assert m.snapshot is not None
            log.info("sending snapshot %d/%d to %x (%d bytes)", m.snapshot.metadata.term,
                     m.snapshot.metadata.index, p.id, path.stat().st_size)
            reader, w = await open_peer(p.url, self.tls, 5)
            writer = w
            put(w, self._hello(SNAPSHOT, p.id))
            put(w, frame(SNAP_HEADER, encode_message(m)))
            crc = 0
            with open(path, "rb") as f:
                while chunk := f.read(SNAPSHOT_CHUNK):
                    crc = zlib.crc32(chunk, crc)
                    put(w, frame(SNAP_CHUNK, chunk))
                    await w.drain()
            put(w, frame(SNAP_END, struct.pack(">I", crc)))
            await w.drain()
            kind, payload = await asyncio.wait_for(read_frame(reader), 120)
            ok = kind == SNAP_END and payload == b"ok"
        except asyncio.CancelledError:
            p.sending_snapshot = False
            raise
        except Exception as exc:  # any failure: report it so Raft retries later
            log.warning("sending snapshot to %x failed: %s", p.id, exc)
        finally:
            if writer is not None:
                writer.close()
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()  # the per-transfer copy, sent or not
        p.sending_snapshot = False
        self.on_snapshot_status(p.id, not ok)

    # --- receiving -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            self._check_peer_cn(writer)
            kind, payload = await asyncio.wait_for(read_frame(reader), 5)
            if kind != HELLO or len(payload) != _HELLO.size:
                raise TransportError("connection did not start with a HELLO frame")
            version, purpose, cluster, sender, to = _HELLO.unpack(payload)
            if version != PROTOCOL_VERSION:
                raise TransportError(f"peer speaks protocol {version}, we speak "
                                     f"{PROTOCOL_VERSION}")
            if purpose == DISCOVER:
                # a member joining with --initial-cluster-state=existing learns its ID and
                # the cluster's (like GET /members on etcd's peer port), once it named
                # peer URLs that are a member's; anyone else learns nothing
                answer = await self._discovery_answer(reader)
                put(writer, frame(MEMBERS, answer))
                await writer.drain()
                return
            if cluster != self.cluster_id:
                raise TransportError(f"cluster ID mismatch: peer {sender:x} is in cluster "
                                     f"{cluster:x}, we are in {self.cluster_id:x}")
            if to != self.member_id:
                raise TransportError(f"peer {sender:x} addressed member {to:x}, we are "
                                     f"{self.member_id:x}")
            if purpose == STREAM:
                await self._receive_stream(reader, sender)
            elif purpose == SNAPSHOT:
                await self._receive_snapshot(reader, writer, sender)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # shutting down: end the handler quietly (asyncio's stream server would log
            # a cancelled handler task as an error)
            pass
        except (TransportError, DecodeError) as exc:
            log.warning("refused peer connection: %s", exc)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _check_peer_cn(self, writer: asyncio.StreamWriter) -> None:
        """--peer-cert-allowed-cn: a TLS peer whose certificate has another CN is refused."""
        allowed = self.tls.info.allowed_cn if self.tls is not None else ""
        if not allowed or writer.get_extra_info("sslcontext") is None:
            return
        cn = peer_common_name(writer.get_extra_info("peercert"))
        if cn != allowed:
            raise TransportError(f"peer certificate CN {cn!r} is not the allowed "
                                 f"{allowed!r} (--peer-cert-allowed-cn)")

    async def _discovery_answer(self, reader: asyncio.StreamReader) -> bytes:
        kind, payload = await asyncio.wait_for(read_frame(reader), 5)
        if kind != WHO:
            raise TransportError("discovery without the dialer's peer URLs")
        try:
            urls = sorted(str(u) for u in json.loads(payload))
        except (ValueError, TypeError) as exc:
            raise TransportError(f"discovery with malformed peer URLs: {exc}") from None
        answer = self.members_provider()
        members = json.loads(answer).get("members", [])
        if not urls or not any(sorted(m.get("peer_urls", [])) == urls for m in members):
            raise TransportError(f"discovery from peer URLs {urls}, which are no member's")
        return answer

    async def _receive_stream(self, reader: asyncio.StreamReader, sender: int) -> None:
        while True:
            kind, payload = await read_frame(reader)
            if kind != MSG:
                raise TransportError(f"unexpected frame kind {kind} on a message stream")
            m = decode_message(payload)
            if m.sender != sender or m.to != self.member_id:
                raise TransportError(f"message {m.sender:x}->{m.to:x} on the stream from "
                                     f"{sender:x}")
            if m.type not in PEER_TYPES:
                raise TransportError(f"{m.type.name} from {sender:x}: not a peer message type")
            if m.term == 0 and m.type not in TERM_ZERO_TYPES:
                raise TransportError(f"term-0 {m.type.name} from {sender:x}: Raft would take "
                                     "it for a local message")
            self.on_message(m)

    async def _receive_snapshot(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: int
    ) -> None:
        kind, payload = await read_frame(reader)
        if kind != SNAP_HEADER:
            raise TransportError("snapshot stream without a header")
        m = decode_message(payload)
        if m.type is not MessageType.SNAP or m.snapshot is None or m.sender != sender:
            raise TransportError("snapshot header is not a snapshot message from the sender")
        meta = m.snapshot.metadata
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        final = received_snapshot_path(self.snapshot_dir, meta.term, meta.index)
        # a name of its own per receive: two transfers of one snapshot may overlap
        tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex}.tmp")
        crc = 0
        try:
            with open(tmp, "wb") as f:
                while True:
                    kind, payload = await read_frame(reader)
                    if kind == SNAP_CHUNK:
                        crc = zlib.crc32(payload, crc)
                        f.write(payload)
                    elif kind == SNAP_END:
                        (want,) = struct.unpack(">I", payload)
                        if want != crc:
                            raise TransportError("snapshot checksum mismatch")
                        break
                    else:
                        raise TransportError(f"unexpected frame kind {kind} in a snapshot")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a cut or corrupt transfer leaves nothing behind
            raise
        dfd = os.open(self.snapshot_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        put(writer, frame(SNAP_END, b"ok"))
        await writer.drain()
        self.on_message(m)
