"""The outside view: ``etcdctl endpoint status`` (etcdctl 3.6.16, built by ``make etcd``)
asked about every member, one line per member.

Invariants: etcdctl runs as a child process with short dial and command timeouts and is
killed by pid if it outlives them; a missing etcdctl or an endpoint that does not answer
is a line saying so, never an exception (the view is shown, not relied on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

from raftkv.etcdtools import etcd36_bin


def etcdctl() -> str | None:
    try:
        return str(etcd36_bin("etcdctl"))
    except FileNotFoundError:
        return None


async def endpoint_status(names: dict[str, str], leader_names: dict[int, str]) -> list[str]:
    """``names``: endpoint (host:port) -> member name; ``leader_names``: member id -> name."""
    exe = etcdctl()
    if exe is None:
        return ["etcdctl 3.6.16 is not built (run `make etcd`): no outside view"]
    proc = await asyncio.create_subprocess_exec(
        exe, f"--endpoints={','.join(names)}", "--dial-timeout=1s", "--command-timeout=2s",
        "endpoint", "status", "-w", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ETCDCTL_API": "3"})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ["etcdctl endpoint status did not finish in 20 s"]
    try:
        rows: list[dict[str, Any]] = json.loads(out or b"[]")
    except ValueError:
        rows = []
    seen: dict[str, dict[str, Any]] = {r["Endpoint"].removeprefix("http://"): r["Status"]
                                       for r in rows}
    lines = []
    for ep, name in names.items():
        st = seen.get(ep)
        if st is None:
            lines.append(f"{name}  {ep}  no answer")
            continue
        me = int(st["header"]["member_id"])
        lead = int(st.get("leader", 0))
        who = "IS LEADER" if lead == me else \
            f"leader {leader_names.get(lead, 'none' if not lead else f'{lead:x}')}"
        lines.append(f"{name}  {ep}  {who:<12} term {st.get('raftTerm', 0):<3} "
                     f"raft index {st.get('raftIndex', 0):<4} "
                     f"applied {st.get('raftAppliedIndex', 0):<4} "
                     f"revision {st['header'].get('revision', 0)}")
    if not rows and err:
        lines.append(err.decode(errors="replace").strip().splitlines()[-1])
    return lines
