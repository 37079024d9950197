"""Client traffic run inside the kind cluster (in a pod on the raftkv image), for the e2e tests.

``traffic.py writer ENDPOINT``: writes ``w/<n>`` = n sequentially through ENDPOINT (the
client Service), printing ``ACK n <unix time>`` only after the write was acknowledged, and
every tenth write reads the last acknowledged key back (linearizable), printing ``READ n ok``
or ``READ n MISSING``; errors print ``ERR ...`` and the next attempt dials again.

``traffic.py sampler ENDPOINT``: about every 200 ms, reads the member list through ENDPOINT
and each voter's own Status, printing ``SAMPLE <unix time> <voters> <healthy voters>
<stall ms> <id>=<state>,...``. A healthy voter answers its Status within 1 s of the sample's
start, reports no error and knows a leader; a voter that answers "no leader" is asked again
until that second is up, so the few milliseconds of an election or a leadership transfer,
where every member is between leaders, are not taken for a lost quorum, while a quorum
that is really gone (no leader for a second) still is. ``<state>`` says why a voter is not
healthy (``timeout``, ``no-leader``, ``unavailable``, ...). ``<stall ms>`` is how late the
sampler's own event loop ran during the sample (a 50 ms ticker): a sampler starved of CPU
for longer than the 1 s deadline sees every member time out, which measures the sampler,
not the cluster, and the test counts such samples apart. Each member's connection is kept
across samples.

``traffic.py verify ENDPOINT N...``: reads every ``w/<n>`` given and prints ``LOST n`` for
each missing one, then ``VERIFIED <count>``.

Each mode takes an optional last argument TLSDIR: a directory holding ``ca.crt``,
``tls.crt`` and ``tls.key`` (a mounted ``kubernetes.io/tls`` Secret); with it every dial
(the endpoint and the members' own https client URLs) uses mutual TLS.

Both loops run until the pod is deleted (SIGTERM); every line is flushed at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRPC_DNS_RESOLVER", "native")  # before grpc loads: search domains

from raftkv.client import EtcdClient, EtcdError, TLSConfig, parse_endpoint

TLS = TLSConfig()


def dial(url: str, dial_timeout: float, command_timeout: float) -> EtcdClient:
    return EtcdClient(parse_endpoint(url), dial_timeout=dial_timeout,
                      command_timeout=command_timeout, tls=TLS)


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def writer(endpoint: str) -> None:
    n, last_acked = 0, 0
    c = dial(endpoint, 2, 3)
    while True:
        n += 1
        try:
            await c.put(f"w/{n:08d}".encode(), str(n).encode())
            out(f"ACK {n} {time.time():.3f}")
            last_acked = n
            if n % 10 == 0:
                got = await c.get(f"w/{last_acked:08d}".encode())
                out(f"READ {last_acked} {'ok' if got.count == 1 else 'MISSING'}")
        except EtcdError as exc:
            out(f"ERR {n} {exc}")
            await c.close()
            c = dial(endpoint, 2, 3)
            await asyncio.sleep(0.1)  # back off before dialing again, not a readiness wait


async def _voter_state(c: EtcdClient, mid: int, deadline: float) -> str:
    """``ok`` if voter ``mid`` is healthy before ``deadline`` (monotonic), else why not."""
    while True:
        try:
            s = await c.status()
        except EtcdError as exc:
            return exc.kind.value
        if s.member_id != mid:
            return "wrong-member"
        if s.errors:
            return "errors"
        if s.is_learner:
            return "learner"
        if s.leader != 0:
            return "ok"
        if time.monotonic() + 0.05 >= deadline:
            return "no-leader"
        await asyncio.sleep(0.05)  # between leaders: ask again within the second


class Stalls:
    """The event loop's lateness, from a 50 ms ticker: how starved the sampler itself is."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.monotonic() - t - 0.05)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


async def sampler(endpoint: str) -> None:
    c = dial(endpoint, 1, 1)
    # one client per member URL, kept across samples: a sample asks each member how it is,
    # it does not time a fresh TLS handshake on a loaded node
    members: dict[str, EtcdClient] = {}

    def member(url: str) -> EtcdClient:
        if url not in members:
            members[url] = dial(url, 1, 1)
        return members[url]

    stalls = Stalls()
    while True:
        started = time.monotonic()
        stalls.take()
        try:
            ml = await c.member_list()
            voters = [m for m in ml.members if not m.is_learner]
            deadline = time.monotonic() + 1.0
            states = await asyncio.gather(*(
                _voter_state(member(m.client_urls[0]), m.id, deadline) if m.client_urls
                else asyncio.sleep(0, "no-url") for m in voters))
            healthy = sum(1 for st in states if st == "ok")
            detail = ",".join(f"{m.id:x}={st}" for m, st in zip(voters, states, strict=True))
            out(f"SAMPLE {time.time():.3f} {len(voters)} {healthy} "
                f"{stalls.take() * 1000:.0f} {detail}")
        except EtcdError as exc:
            out(f"SAMPLE-ERR {time.time():.3f} {exc}")
            await c.close()
            c = dial(endpoint, 1, 1)
        await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - started)))


async def verify(endpoint: str, numbers: list[int]) -> None:
    c = dial(endpoint, 3, 5)
    for n in numbers:
        got = await c.get(f"w/{n:08d}".encode())
        if got.count != 1:
            out(f"LOST {n}")
    out(f"VERIFIED {len(numbers)}")
    await c.close()


def main() -> None:
    global TLS
    mode, endpoint = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        d = Path(sys.argv[3])
        TLS = TLSConfig(cacert=d / "ca.crt", cert=d / "tls.crt", key=d / "tls.key")
    if mode == "writer":
        asyncio.run(writer(endpoint))
    elif mode == "sampler":
        asyncio.run(sampler(endpoint))
    elif mode == "verify":
        asyncio.run(verify(endpoint, [int(x) for x in sys.stdin.read().split()]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
