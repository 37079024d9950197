"""Failpoints: named places where the process can be made to die abruptly, for crash tests.

``RAFTKV_FAILPOINTS=name[@N][,name[@N]]`` arms them (``@N``: only the N-th time the
point is reached, so a crash can land in the middle of a workload); reaching an armed one
writes one line to
stderr and calls ``os._exit`` at once (no cleanup, no flush of anything unsynced), which
is what a power cut or SIGKILL at that instant would leave. Names follow etcd's gofail
points (raftBeforeSave, raftAfterSave, raftBeforeApply, raftAfterApply,
raftBeforeSnapshotRename, raftAfterWALRelease, backendBeforeCommit, ...).
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 86
NAMES = frozenset({
    # the Ready loop, the apply task, snapshots (raftkv/server/readyloop.py, applytask.py,
    # snapshots.py)
    "raftBeforeSave", "raftAfterSave", "raftBeforeLeaderSend", "raftAfterLeaderSend",
    "raftBeforeFollowerSend",
    "raftBeforeApply", "raftAfterApply",
    "raftBeforeSaveSnap", "raftAfterSaveSnap", "raftAfterWALRelease",
    "raftBeforeInstallSnapshot", "raftAfterInstallSnapFile", "raftAfterInstallWALMarker",
    "raftAfterInstallBackend",
    # storage (raftkv/storage/snap.py, raftkv/storage/backend.py)
    "raftBeforeSnapshotRename", "backendBeforeCommit", "backendAfterCommit",
    "backendBeforeInstallRename",
})



def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, nth = part.partition("@")
        if name not in NAMES:
            raise SystemExit(f"RAFTKV_FAILPOINTS names an unknown failpoint: {name!r}")
        if nth and not (nth.isdigit() and int(nth) > 0):
            raise SystemExit(f"RAFTKV_FAILPOINTS: {part!r}: @N needs a positive count")
        armed[name] = int(nth) if nth else 1
    return armed


_ARMED = _parse(os.environ.get("RAFTKV_FAILPOINTS", ""))


def hit(name: str) -> None:
    left = _ARMED.get(name)
    if left is None:
        return
    if left > 1:
        _ARMED[name] = left - 1
        return
    sys.stderr.write(f"raftkv: failpoint {name} reached, exiting\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)


def armed() -> frozenset[str]:
    return frozenset(_ARMED)
