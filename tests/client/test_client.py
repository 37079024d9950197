"""raftkv.client against a real etcd 3.5.1: the calls diag and the operator use, and the
classification of failures (refused, paused member, silent socket, HTTP/1 server)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from raftkv.client import EndpointStatus, ErrorKind, EtcdClient, EtcdError, parse_endpoint
from tests.support.etcd import Cluster, etcd_bin
from tests.support.proc import free_port, wait_until

# grpc.aio binds its poller to one event loop: run this module's tests on one loop.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("client-etcd"), size=1, binary=etcd_bin("etcd", "3.5"))
    c.start()
    yield c
    c.stop()


def client(url: str, dial: float = 1.0, cmd: float = 2.0) -> EtcdClient:
    return EtcdClient(parse_endpoint(url), dial_timeout=dial, command_timeout=cmd)


async def test_calls(etcd: Cluster) -> None:
    async with client(etcd.endpoints[0]) as c:
        st = await c.status()
        assert st.is_leader and st.version == "3.5.1" and st.raft_term >= 2
        ml = await c.member_list()
        assert [m.id for m in ml.members] == [st.member_id]
        assert ml.members[0].client_urls == (etcd.endpoints[0],)
        lease = await c.lease_grant(5)
        rev = await c.put(b"/client/k", b"v", lease)
        r = await c.get(b"/client/k")
        assert r.count == 1 and r.revision >= rev
        await c.lease_revoke(lease)
        assert (await c.get(b"/client/k", serializable=True)).count == 0
        assert await c.alarms() == []
    assert etcd.etcdctl("get", "/client/k").stdout == ""


async def status_once(url: str, dial: float = 1.0) -> EndpointStatus:
    c = client(url, dial=dial)
    try:
        return await c.status()
    finally:
        await c.close()


async def test_refused() -> None:
    with pytest.raises(EtcdError) as e:
        await status_once(f"127.0.0.1:{free_port()}")
    assert e.value.kind == ErrorKind.UNREACHABLE and "refused" in str(e.value).lower()


async def test_paused_member_times_out(tmp_path: Path) -> None:
    c = Cluster(tmp_path, size=1, binary=etcd_bin("etcd", "3.5")).start()
    try:
        cl = client(c.endpoints[0], dial=0.5, cmd=0.5)
        try:
            await cl.status()
            c.pause(c.members[0])
            proc = c.members[0].proc
            assert proc is not None
            wait_until(lambda: stopped(proc.pid), 10, "etcd to be stopped by SIGSTOP")
            with pytest.raises(EtcdError) as e:
                await cl.status()
            assert e.value.kind == ErrorKind.TIMEOUT
        finally:
            await cl.close()
    finally:
        c.resume(c.members[0])
        c.stop()


def stopped(pid: int) -> bool:
    """Every thread of the process is in state T (stopped)."""
    tasks = Path(f"/proc/{pid}/task")
    states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
    return bool(states) and all(s in ("T", "t") for s in states)


@pytest.fixture
def silent_socket() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


async def test_silent_socket_hits_the_dial_timeout(silent_socket: int) -> None:
    with pytest.raises(EtcdError) as e:
        await status_once(f"127.0.0.1:{silent_socket}", dial=0.5)
    assert e.value.kind == ErrorKind.TIMEOUT and "dial timeout" in e.value.detail


@pytest.fixture
def http1_server() -> Iterator[int]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


async def test_http1_server_is_not_etcd(http1_server: int) -> None:
    with pytest.raises(EtcdError) as e:
        await status_once(f"127.0.0.1:{http1_server}")
    assert e.value.kind == ErrorKind.NOT_ETCD, e.value



def _reset(conn: socket.socket) -> None:
    """Close with an RST, as a process killed mid-call does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


@pytest.fixture
def resetting_listener() -> Iterator[int]:
    """Accepts every connection, reads the client's first bytes, and resets it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    done = threading.Event()

    def serve() -> None:
        s.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = s.accept()
            except OSError:
                continue
            conn.recv(64)
            _reset(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield s.getsockname()[1]
    done.set()
    t.join(timeout=5)
    s.close()


async def test_listener_that_resets_is_not_etcd(resetting_listener: int) -> None:
    with pytest.raises(EtcdError) as e:
        await status_once(f"127.0.0.1:{resetting_listener}")
    assert e.value.kind == ErrorKind.NOT_ETCD, e.value


@pytest.fixture
def dying_listener() -> Iterator[int]:
    """Accepts one connection, stops listening, then resets it: a member killed mid-call."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]

    def serve() -> None:
        conn, _ = s.accept()
        conn.recv(64)
        s.close()
        _reset(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield port
    t.join(timeout=5)
    s.close()


async def test_reset_by_a_dead_member_is_unreachable(dying_listener: int) -> None:
    with pytest.raises(EtcdError) as e:
        await status_once(f"127.0.0.1:{dying_listener}")
    assert e.value.kind == ErrorKind.UNREACHABLE, e.value
    assert "refuses" in e.value.detail or "refused" in e.value.detail.lower()
