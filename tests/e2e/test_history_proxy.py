"""Each fault of the per-link proxy does what it says, on plain TCP (fast, no etcd).

The dialer is this test process, identified by pid as member "a"; the listener "b" is an
echo server that also records what reached it, so each direction is observed alone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TypeAlias

import pytest

from raftkv.netfault.proxy import CUT, DROP, NONE, ProxyHub, delay
from tests.support.proc import wait_until


class Echo:
    """Upstream "member b": echoes bytes back and remembers everything it received."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.received = bytearray()
        self.conns: list[socket.socket] = []
        self._closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                self.received += data
                conn.sendall(data)

    def close(self) -> None:
        self._closing = True
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()


Setup: TypeAlias = "tuple[ProxyHub, Echo, dict[int, str]]"


@pytest.fixture
def setup() -> Iterator[Setup]:
    owners = {os.getpid(): "a"}
    echo = Echo()
    hub = ProxyHub(pids=lambda: dict(owners))
    hub.add("b", echo.port)
    hub.add("a", echo.port)  # a second member so "b" has more than one inbound link
    try:
        yield hub, echo, owners
    finally:
        hub.stop()
        echo.close()


def dial(hub: ProxyHub) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", hub.port("b")), timeout=2)
    s.settimeout(0.5)
    return s


def roundtrip(s: socket.socket, payload: bytes) -> bytes:
    s.sendall(payload)
    got = b""
    with contextlib.suppress(TimeoutError):
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def test_no_fault_passes_bytes_and_identifies_the_dialer(setup: Setup) -> None:
    hub, _echo, _ = setup
    with dial(hub) as s:
        assert roundtrip(s, b"hello") == b"hello"
    assert hub.link_stats("a", "b").bytes_passed == 5
    assert hub.link_stats("b", "a").bytes_passed == 5
    assert hub.unidentified == 0


def test_delay_adds_latency_in_one_direction_only(setup: Setup) -> None:
    hub, _echo, _ = setup
    with dial(hub) as s:
        s.settimeout(3)
        hub.set("a", "b", delay(0.4))
        t0 = time.monotonic()
        assert roundtrip(s, b"x" * 10) == b"x" * 10
        assert time.monotonic() - t0 >= 0.4
        hub.set_many({("a", "b"): NONE, ("b", "a"): delay(0.3)})
        t0 = time.monotonic()
        assert roundtrip(s, b"y") == b"y"
        took = time.monotonic() - t0
        assert 0.3 <= took < 0.4 + 0.3


def test_one_way_drop_towards_the_listener(setup: Setup) -> None:
    hub, echo, _ = setup
    with dial(hub) as s:
        assert roundtrip(s, b"before") == b"before"
        hub.set("a", "b", DROP)
        assert roundtrip(s, b"lost") == b""
        assert b"lost" not in echo.received
        assert hub.link_stats("a", "b").bytes_dropped == 4


def test_one_way_drop_back_to_the_dialer(setup: Setup) -> None:
    hub, echo, _ = setup
    with dial(hub) as s:
        hub.set("b", "a", DROP)
        assert roundtrip(s, b"ping") == b""
        wait_until(lambda: b"ping" in echo.received, 2, "upstream received the bytes")


def test_healed_drop_resets_the_damaged_connection_and_new_ones_work(setup: Setup) -> None:
    hub, _echo, _ = setup
    s = dial(hub)
    hub.set("a", "b", DROP)
    assert roundtrip(s, b"lost") == b""
    hub.heal()
    with pytest.raises((ConnectionResetError, BrokenPipeError, TimeoutError, OSError)):
        s.sendall(b"again")
        if not s.recv(10):
            raise ConnectionResetError("closed")
    s.close()
    with dial(hub) as s2:
        assert roundtrip(s2, b"fresh") == b"fresh"


def test_cut_resets_open_connections_and_refuses_new_ones(setup: Setup) -> None:
    hub, _echo, _ = setup
    s = dial(hub)
    assert roundtrip(s, b"up") == b"up"
    hub.set("b", "a", CUT)  # cutting either direction kills the connection
    with pytest.raises(OSError):
        s.sendall(b"x")
        if not s.recv(10):
            raise ConnectionResetError("closed")
    s.close()
    with pytest.raises(OSError), dial(hub) as s2:
        s2.sendall(b"x")
        if not s2.recv(10):
            raise ConnectionResetError("closed")
    assert hub.link_stats("a", "b").resets >= 2
    hub.heal()
    with dial(hub) as s3:
        assert roundtrip(s3, b"ok") == b"ok"


def test_links_are_directed_and_per_pair(setup: Setup) -> None:
    hub, _echo, _owners = setup
    hub.set("c", "b", CUT)  # some other member's link: "a" is unaffected
    with dial(hub) as s:
        assert roundtrip(s, b"mine") == b"mine"


def test_unidentified_dialer_is_cut_only_when_the_listener_is_isolated(setup: Setup) -> None:
    hub, _echo, owners = setup
    owners.clear()  # nobody known: this process is now an unidentified dialer
    hub.set("a", "b", CUT)  # one inbound link of b only (b also has a -> b only here)
    hub.isolate("b", CUT)
    with pytest.raises(OSError), dial(hub) as s:
        s.sendall(b"x")
        if not s.recv(10):
            raise ConnectionResetError("closed")
    assert hub.unidentified >= 1
    hub.heal()
    with dial(hub) as s2:
        assert roundtrip(s2, b"fine") == b"fine"
