"""The peer transport over mutual TLS (issue 13), in-process on loopback.

- a member's stream over https delivers messages when both ends show certificates from
  the peer CA;
- a dialer with a certificate from another CA, with none, or speaking plain text to the
  TLS port is refused in the handshake: its HELLO and messages never reach Raft;
- with ``--peer-cert-allowed-cn`` a certificate of the right CA but another CN is
  refused before its HELLO is read;
- replacing the certificate files on disk: the next connection gets the new certificate,
  the connection already open keeps working (no restart).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from raftkv.raft import Message, MessageType
from raftkv.raft.codec import encode_message
from raftkv.server import transport as t
from raftkv.server.tlsconfig import TLSInfo, TLSSettings
from raftkv.server.tlsfiles import CertSource
from tests.support.pki import ClusterPKI, cluster_pki, issue, make_ca
from tests.support.proc import free_port

CLUSTER, ME, PEER = 0xC1, 0xA1, 0xB2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    out = cluster_pki(tmp_path_factory.mktemp("pki"))
    make_ca(out.dir, "other-ca", "another CA")
    issue(out.dir, "other-ca", "stranger", "/CN=raftkv-peer", usage="peer")
    issue(out.dir, out.ca, "other-cn", "/CN=intruder", usage="peer")
    return out


def peer_info(pki: ClusterPKI, name: str = "peer", allowed_cn: str = "") -> TLSInfo:
    return TLSInfo(prefix="peer-", cert_file=str(pki.crt(name)), key_file=str(pki.key(name)),
                   trusted_ca_file=str(pki.crt(pki.ca)), client_cert_auth=True,
                   allowed_cn=allowed_cn)


@dataclass
class Node:
    transport: t.Transport
    url: str
    tls: CertSource
    received: list[Message] = field(default_factory=list)


Start = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[t.Transport] = []

    async def no_snapshot(m: Message) -> Path:
        raise AssertionError("no snapshot in these tests")

    async def make(member: int, info: TLSInfo, listen: bool = True) -> Node:
        received: list[Message] = []
        src = CertSource(info, TLSSettings())
        tr = t.Transport(member, CLUSTER, received.append, lambda pid: None,
                         lambda pid, f: None, no_snapshot, tmp_path / f"snap-{member:x}",
                         tls=src)
        url = f"https://127.0.0.1:{free_port()}"
        if listen:
            await tr.listen(url)
        started.append(tr)
        return Node(tr, url, src, received)

    yield make
    for tr in started:
        await tr.close()


async def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # a poll of in-process state, not a wait for time


def _heartbeat(term: int = 3) -> Message:
    return Message(MessageType.HEARTBEAT, to=ME, sender=PEER, term=term)


def _stream_bytes(msgs: list[Message]) -> bytes:
    hello = t.frame(t.HELLO, t._HELLO.pack(t.PROTOCOL_VERSION, t.STREAM, CLUSTER, PEER, ME))
    return hello + b"".join(t.frame(t.MSG, encode_message(m)) for m in msgs)


async def _refused(url: str, ctx: ssl.SSLContext | None) -> None:
    """Dial, send a HELLO and a message, and see the connection end without an answer."""
    host, port = t.host_port(url)
    try:
        r, w = await asyncio.open_connection(host, port, ssl=ctx,
                                             server_hostname=host if ctx else None)
    except (ssl.SSLError, ConnectionError):
        return  # refused within the handshake itself (TLS 1.2 style)
    try:
        w.write(_stream_bytes([_heartbeat()]))
        await w.drain()
        assert await asyncio.wait_for(r.read(), 5) == b""
    except (ssl.SSLError, ConnectionError):
        pass  # TLS 1.3: the server's alert arrives after the client's handshake ended
    finally:
        w.close()


def _client_ctx(pki: ClusterPKI, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.crt(pki.ca)))
    if name is not None:
        ctx.load_cert_chain(str(pki.crt(name)), str(pki.key(name)))
    return ctx


async def test_mutual_tls_stream_delivers(pki: ClusterPKI, start: Start) -> None:
    me = await start(ME, peer_info(pki))
    peer = await start(PEER, peer_info(pki), listen=False)
    peer.transport.set_peers({ME: me.url})
    peer.transport.send([_heartbeat()])
    await _wait_for(lambda: len(me.received) == 1, "the heartbeat over mTLS")
    assert me.received[0].type is MessageType.HEARTBEAT


@pytest.mark.parametrize("dialer", ["stranger", "no-certificate", "plain-text"])
async def test_peers_without_a_valid_certificate_are_refused(
        pki: ClusterPKI, start: Start, dialer: str) -> None:
    me = await start(ME, peer_info(pki))
    ctx = {"stranger": lambda: _client_ctx(pki, "stranger"),
           "no-certificate": lambda: _client_ctx(pki, None),
           "plain-text": lambda: None}[dialer]()
    await _refused(me.url, ctx)
    # the same dial with the member's own certificate is delivered: the refusal was the cert
    _, w = await asyncio.open_connection(*t.host_port(me.url), ssl=_client_ctx(pki, "peer"),
                                         server_hostname="127.0.0.1")
    w.write(_stream_bytes([_heartbeat(term=9)]))
    await w.drain()
    await _wait_for(lambda: len(me.received) == 1, "the member's own heartbeat")
    w.close()
    assert [m.term for m in me.received] == [9]


async def test_a_stranger_transport_never_delivers(pki: ClusterPKI, start: Start) -> None:
    """A whole transport with another CA's certificate: its stream never gets through
    (and it never trusts the member's certificate either)."""
    me = await start(ME, peer_info(pki))
    stranger_info = replace(peer_info(pki, "stranger"),
                            trusted_ca_file=str(pki.crt("other-ca")))
    stranger = await start(PEER, stranger_info, listen=False)
    stranger.transport.set_peers({ME: me.url})
    unreachable: list[int] = []
    stranger.transport.on_unreachable = unreachable.append
    for _ in range(3):
        stranger.transport.send([_heartbeat()])
        await _wait_for(lambda: len(unreachable) >= 1, "the stream to fail")
        unreachable.clear()
    assert me.received == []


async def test_allowed_cn(pki: ClusterPKI, start: Start) -> None:
    me = await start(ME, peer_info(pki, allowed_cn="raftkv-peer"))
    await _refused(me.url, _client_ctx(pki, "other-cn"))
    assert me.received == []
    _, w = await asyncio.open_connection(*t.host_port(me.url), ssl=_client_ctx(pki, "peer"),
                                         server_hostname="127.0.0.1")
    w.write(_stream_bytes([_heartbeat()]))
    await w.drain()
    await _wait_for(lambda: len(me.received) == 1, "the allowed CN's heartbeat")
    w.close()


async def _served_serial(url: str, pki: ClusterPKI) -> str:
    _, w = await asyncio.open_connection(*t.host_port(url), ssl=_client_ctx(pki, "peer"),
                                         server_hostname="127.0.0.1")
    cert = w.get_extra_info("peercert")
    w.close()
    return str(cert["serialNumber"])


async def test_rotation_new_connections_get_the_new_certificate(
        pki: ClusterPKI, start: Start, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    for suffix in (".crt", ".key"):
        (own / f"peer{suffix}").write_bytes((pki.dir / f"peer{suffix}").read_bytes())
    info = replace(peer_info(pki), cert_file=str(own / "peer.crt"),
                   key_file=str(own / "peer.key"))
    me = await start(ME, info)
    before = await _served_serial(me.url, pki)
    peer = await start(PEER, peer_info(pki), listen=False)
    peer.transport.set_peers({ME: me.url})
    peer.transport.send([_heartbeat(term=1)])
    await _wait_for(lambda: len(me.received) == 1, "a heartbeat before rotation")

    issue(pki.dir, pki.ca, "rotated", "/CN=raftkv-peer", usage="peer")
    for suffix in (".crt", ".key"):  # as kubelet/cert-manager do: write new, rename over
        tmp = own / f"new{suffix}"
        tmp.write_bytes((pki.dir / f"rotated{suffix}").read_bytes())
        tmp.rename(own / f"peer{suffix}")
    after = await _served_serial(me.url, pki)
    assert after != before
    with open(pki.crt("rotated"), "rb") as f:
        want = ssl.PEM_cert_to_DER_cert(f.read().decode())
    host, port = t.host_port(me.url)
    _, w = await asyncio.open_connection(host, port, ssl=_client_ctx(pki, "peer"),
                                         server_hostname=host)
    got = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    w.close()
    assert got == want
    assert me.tls.reloads == 1
    # the stream opened before the rotation still carries messages
    peer.transport.send([_heartbeat(term=2)])
    await _wait_for(lambda: len(me.received) == 2, "a heartbeat after rotation")
    assert peer.transport.connected(ME)


async def test_a_half_written_rotation_keeps_the_old_certificate(
        pki: ClusterPKI, start: Start, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    for suffix in (".crt", ".key"):
        (own / f"peer{suffix}").write_bytes((pki.dir / f"peer{suffix}").read_bytes())
    info = replace(peer_info(pki), cert_file=str(own / "peer.crt"),
                   key_file=str(own / "peer.key"))
    me = await start(ME, info)
    before = await _served_serial(me.url, pki)
    issue(pki.dir, pki.ca, "half", "/CN=raftkv-peer", usage="peer")
    (own / "peer.crt").write_bytes(pki.crt("half").read_bytes())  # the key not yet
    assert await _served_serial(me.url, pki) == before
    (own / "peer.key").write_bytes(pki.key("half").read_bytes())
    assert await _served_serial(me.url, pki) != before
