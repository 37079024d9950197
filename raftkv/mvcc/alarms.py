"""The replicated alarm table (etcd's alarm store): which member raised which alarm.

Alarms raised through the log (today: CORRUPT, raised by the leader's corruption check,
``raftkv.server.corruptcheck``) are part of the replicated state: they change only when
an ALARM entry is applied, are stored in the backend (meta ``alarms``, JSON, never
pickle) in the same transaction as the entry's consistent index, and are reloaded after a
restart or a snapshot install. While CORRUPT is active every member refuses writes with
etcd's "corrupt cluster" (apply rejects them alike everywhere, so members stay equal);
reads are still served, as etcd's. NOSPACE stays member-local (``RaftServer.nospace``).
"""

from __future__ import annotations

import json

from aetcd.rpc import rpc_pb2

from raftkv.mvcc import errors
from raftkv.storage.backend import Backend

ALARMS_META = "alarms"


class Alarms:
    def __init__(self, backend: Backend) -> None:
        self.active: set[tuple[int, int]] = set()  # (member ID, rpc_pb2.AlarmType)
        self.reload(backend)

    def reload(self, backend: Backend) -> None:
        self.backend = backend
        raw = backend.meta_get(ALARMS_META)
        try:
            items = json.loads(raw) if raw else []
            self.active = {(int(m), int(a)) for m, a in items}
        except (ValueError, TypeError):
            self.active = set()

    def corrupt(self) -> bool:
        return any(a == rpc_pb2.CORRUPT for _, a in self.active)

    def _save(self) -> None:
        self.backend.meta_put(ALARMS_META, json.dumps(sorted(self.active)).encode())

    def apply(self, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        """An applied ALARM entry: activate or deactivate; the response lists what
        changed (etcd's applyAlarm)."""
        resp = rpc_pb2.AlarmResponse()
        if r.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if r.alarm != rpc_pb2.NONE and (r.memberID, r.alarm) not in self.active:
                self.active.add((r.memberID, r.alarm))
                self._save()
            resp.alarms.add(memberID=r.memberID, alarm=r.alarm)
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            gone = {x for x in self.active if (r.alarm == rpc_pb2.NONE or x[1] == r.alarm)
                    and (r.memberID == 0 or x[0] == r.memberID)}
            if gone:
                self.active -= gone
                self._save()
            for m, a in sorted(gone):
                resp.alarms.add(memberID=m, alarm=a)
        else:
            raise errors.InvalidAlarmAction()
        return resp

    def listed(self) -> list[tuple[int, int]]:
        return sorted(self.active)
