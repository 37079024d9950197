"""A seeded stream of hostile but well-formed etcd v3 requests (KV, Lease, Cluster,
Maintenance).

Every request is a valid protobuf message of its method; its fields take hostile values:
undefined enum numbers, extreme and negative integers, empty and oversized keys and
values, wide and deep txns, unknown and negative leases, compactions at odd revisions,
member IDs that do not exist and peer URLs that are not URLs.

Invariants:

- the stream is a pure function of the seed (``random.Random(seed)``), so a failing run
  replays exactly with the same seed;
- requests that need cluster facts (a real member's ID or peer URL, the ID of the
  learner this stream added) are built late by ``Op.build(ctx)`` from a :class:`Ctx` the
  runner fills, so the same stream runs against raftkv and etcd alike;
- the stream stays comparable between two servers: leases that may expire during the
  run (short or negative TTLs) never get keys and are never revoked, an activated alarm
  is deactivated by the next op, and members are only ever added as learners (which
  cannot change the quorum).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aetcd.rpc import rpc_pb2

pb = rpc_pb2

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)
MAX_REQUEST_BYTES = 1536 * 1024  # etcd's and raftkv's --max-request-bytes default
LONG_TTL = 3600


@dataclass
class Ctx:
    """Facts about the cluster under test, filled by the runner."""

    member_ids: list[int] = field(default_factory=list)  # by member index
    peer_urls: list[str] = field(default_factory=list)
    added: list[int] = field(default_factory=list)  # IDs of members this stream added


@dataclass
class Op:
    n: int
    tag: str  # the kind of hostility, e.g. "range.sort-target"; keys the difference table
    service: str  # KV, Lease, Cluster, Maintenance
    method: str
    build: Callable[[Ctx], Any]
    member: int  # which member (index) the request goes to

    def describe(self, ctx: Ctx) -> str:
        text = str(self.build(ctx)).replace("\n", " ")
        return f"#{self.n} {self.service}.{self.method} [{self.tag}] -> m{self.member}: " + (
            text if len(text) < 300 else text[:300] + "...")


def _const(msg: Any) -> Callable[[Ctx], Any]:
    return lambda ctx: msg


class Generator:
    def __init__(self, seed: int, members: int = 3, etcd_safe: bool = False) -> None:
        """``etcd_safe``: leave out what etcd 3.6.16 itself gets wrong, so the stream can
        be compared with it: Ranges naming a revision inside txns that may write
        (etcd-io/etcd#18667: members apply those differently), peer URLs with a port
        beyond 65535 or no host (etcd adds such a member) and Alarm requests with an undefined
        action (etcd's member serving one panics)."""
        self.seed = seed
        self.etcd_safe = etcd_safe
        self.rng = random.Random(seed)
        self.members = members
        self.n = 0
        self.long_leases: list[int] = []
        self.short_leases: list[int] = []
        self.writes = 0  # an upper bound on the revision reached (for "odd" revisions)
        self.learner_added = False

    # --- values ----------------------------------------------------------------------------

    def key(self) -> bytes:
        r = self.rng.random()
        if r < 0.70:
            return b"k%d" % self.rng.randrange(24)
        if r < 0.80:
            return self.rng.choice([b"\0", b"\xff", b"\xff" * 8, b"\0\0", b"/", b" "])
        if r < 0.95:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 40)))
        return b"K" * self.rng.choice([1024, 64 << 10, 200 << 10])

    def range_end(self, key: bytes) -> bytes:
        r = self.rng.random()
        if r < 0.4:
            return b""
        if r < 0.55:
            return b"\0"
        if r < 0.75:
            return key[:-1] + bytes([(key[-1] + 1) % 256]) if key else b"\0"
        if r < 0.85:
            return b"\x01"  # below almost every key: an empty range
        return self.key()

    def value(self) -> bytes:
        r = self.rng.random()
        if r < 0.6:
            return b"v%d" % self.rng.randrange(1000)
        if r < 0.75:
            return b""
        if r < 0.9:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 64)))
        return b"V" * self.rng.choice([10 << 10, 500 << 10, MAX_REQUEST_BYTES - 64,
                                       MAX_REQUEST_BYTES + 1024, (2 << 20) + 1024])

    def integer(self) -> int:
        return self.rng.choice([0, 1, -1, 2, 3, 7, 100, -100, 1 << 31, -(1 << 31), I64_MAX,
                                I64_MIN, self.rng.randrange(-5, self.writes + 8)])

    def revision(self) -> int:
        r = self.rng.random()
        if r < 0.6:
            return self.rng.randrange(-2, self.writes + 6)
        return self.integer()

    def enum(self, values: list[int]) -> int:
        if self.rng.random() < 0.8:
            return self.rng.choice(values)
        return self.rng.choice([-1, max(values) + 1, 99, 1 << 20, -(1 << 31)])

    def lease(self) -> int:
        r = self.rng.random()
        if r < 0.5:
            return 0
        if r < 0.8 and self.long_leases:
            return self.rng.choice(self.long_leases)
        return self.rng.choice([1, -1, 12345, I64_MAX, I64_MIN, self.rng.randrange(1, 1 << 62)])

    # --- requests --------------------------------------------------------------------------

    def range_req(self, in_write_txn: bool = False) -> rpc_pb2.RangeRequest:
        k = self.key() if self.rng.random() > 0.05 else b""
        rr = pb.RangeRequest(key=k, range_end=self.range_end(k))
        rng = self.rng
        if rng.random() < 0.4:
            rr.limit = self.integer()
        if rng.random() < 0.3 and not (in_write_txn and self.etcd_safe):
            rr.revision = self.revision()
        if rng.random() < 0.4:
            rr.sort_order = self.enum(list(pb.RangeRequest.SortOrder.values()))  # type: ignore[assignment]
            rr.sort_target = self.enum(list(pb.RangeRequest.SortTarget.values()))  # type: ignore[assignment]
        rr.serializable = rng.random() < 0.5
        rr.keys_only = rng.random() < 0.2
        rr.count_only = rng.random() < 0.2
        for f in ("min_mod_revision", "max_mod_revision", "min_create_revision",
                  "max_create_revision"):
            if rng.random() < 0.1:
                setattr(rr, f, self.revision())
        return rr

    def put_req(self) -> rpc_pb2.PutRequest:
        k = self.key() if self.rng.random() > 0.05 else b""
        pr = pb.PutRequest(key=k, value=self.value(), lease=self.lease())
        pr.prev_kv = self.rng.random() < 0.3
        if self.rng.random() < 0.1:
            pr.ignore_value = True
            if self.rng.random() < 0.6:
                pr.value = b""
        if self.rng.random() < 0.1:
            pr.ignore_lease = True
            if self.rng.random() < 0.6:
                pr.lease = 0
        return pr

    def delete_req(self) -> rpc_pb2.DeleteRangeRequest:
        k = self.key() if self.rng.random() > 0.05 else b""
        return pb.DeleteRangeRequest(key=k, range_end=self.range_end(k),
                                     prev_kv=self.rng.random() < 0.3)

    def compare(self, undefined_enums: bool = False) -> rpc_pb2.Compare:
        k = self.key() if self.rng.random() > 0.03 else b""
        c = pb.Compare(key=k, range_end=self.range_end(k) if self.rng.random() < 0.3 else b"")
        results = list(pb.Compare.CompareResult.values())
        targets = list(pb.Compare.CompareTarget.values())
        if undefined_enums:
            c.result = self.enum(results)  # type: ignore[assignment]
            c.target = self.enum(targets)  # type: ignore[assignment]
        else:
            c.result = self.rng.choice(results)  # type: ignore[assignment]
            c.target = self.rng.choice(targets)  # type: ignore[assignment]
        which = self.rng.choice(["version", "create_revision", "mod_revision", "value",
                                 "lease", None])
        if which == "value":
            c.value = self.value() if self.rng.random() < 0.9 else b""
        elif which is not None:
            setattr(c, which, self.revision())
        return c

    def request_op(self, depth: int, width: int, reads_only: bool = False) -> rpc_pb2.RequestOp:
        r = self.rng.random()
        if r < 0.3 or (reads_only and r < 0.75):
            return pb.RequestOp(request_range=self.range_req(in_write_txn=not reads_only))
        if r < 0.6:
            return pb.RequestOp(request_put=self.put_req())
        if r < 0.75:
            return pb.RequestOp(request_delete_range=self.delete_req())
        if r < 0.97 and depth > 0:
            return pb.RequestOp(request_txn=self.txn_req(depth - 1, width, reads_only))
        return pb.RequestOp()  # empty: "key not found"

    def txn_req(self, depth: int = 2, width: int = 3,
                reads_only: bool | None = None) -> rpc_pb2.TxnRequest:
        """A random txn. Undefined compare enums come only in txns that cannot write:
        raftkv refuses them and etcd evaluates them, and the two keyspaces must stay
        equal for the rest of the stream to stay comparable."""
        if reads_only is None:
            reads_only = self.rng.random() < 0.15
        t = pb.TxnRequest()
        for _ in range(self.rng.randrange(width + 1)):
            t.compare.append(self.compare(undefined_enums=reads_only))
        for _ in range(self.rng.randrange(width + 1)):
            t.success.append(self.request_op(depth, width, reads_only))
        for _ in range(self.rng.randrange(width + 1)):
            t.failure.append(self.request_op(depth, width, reads_only))
        return t

    def hostile_txn(self) -> tuple[str, rpc_pb2.TxnRequest]:
        r = self.rng.random()
        if r < 0.5:
            return "txn.random", self.txn_req()
        if r < 0.7:  # wide: at and just past --max-txn-ops
            n = self.rng.choice([127, 128, 129, 200])
            ops = [pb.RequestOp(request_range=pb.RangeRequest(key=b"k%d" % i))
                   if self.rng.random() < 0.5 else
                   pb.RequestOp(request_put=pb.PutRequest(key=b"w%d" % i, value=b"x"))
                   for i in range(n)]
            return "txn.wide", pb.TxnRequest(success=ops)
        if r < 0.85:  # deep: nested txns
            depth = self.rng.choice([5, 20, 40])
            t = pb.TxnRequest(success=[pb.RequestOp(request_put=self.put_req())])
            for _ in range(depth):
                t = pb.TxnRequest(compare=[self.compare()] if self.rng.random() < 0.3 else [],
                                  success=[pb.RequestOp(request_txn=t)],
                                  failure=[pb.RequestOp(request_txn=t)]
                                  if self.rng.random() < 0.2 and depth < 10 else [])
            return "txn.deep", t
        # the poison of issue 11 and its relatives
        bad = pb.RangeRequest(key=b"k1")
        setattr(bad, self.rng.choice(["sort_target", "sort_order"]),
                self.rng.choice([99, -1, 7]))
        return "txn.poison", pb.TxnRequest(success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"k1", value=b"2")),
            pb.RequestOp(request_range=bad)])

    # --- the stream ------------------------------------------------------------------------

    def _op(self, tag: str, service: str, method: str, build: Callable[[Ctx], Any],
            member: int | None = None) -> Op:
        self.n += 1
        return Op(self.n, tag, service, method, build,
                  self.rng.randrange(self.members) if member is None else member)

    def preamble(self) -> list[Op]:
        """Leases the stream's puts can use; they outlive any run."""
        ops = []
        for _ in range(3):
            lid = self.rng.randrange(1, 1 << 62)
            self.long_leases.append(lid)
            ops.append(self._op("lease.grant-long", "Lease", "LeaseGrant",
                                _const(pb.LeaseGrantRequest(ID=lid, TTL=LONG_TTL))))
        return ops

    def next_ops(self) -> list[Op]:
        """One or two ops (an alarm activation comes with its deactivation)."""
        rng = self.rng
        r = rng.random()
        if r < 0.22:
            return [self._op("range", "KV", "Range", _const(self.range_req()))]
        if r < 0.42:
            self.writes += 1
            return [self._op("put", "KV", "Put", _const(self.put_req()))]
        if r < 0.50:
            self.writes += 1
            return [self._op("delete", "KV", "DeleteRange", _const(self.delete_req()))]
        if r < 0.68:
            self.writes += 1
            tag, t = self.hostile_txn()
            return [self._op(tag, "KV", "Txn", _const(t))]
        if r < 0.72:
            rev = self.revision()
            return [self._op("compact", "KV", "Compact",
                             _const(pb.CompactionRequest(revision=rev,
                                                         physical=rng.random() < 0.5)))]
        if r < 0.84:
            return self.lease_ops()
        if r < 0.92:
            return self.cluster_ops()
        return self.maintenance_ops()

    def lease_ops(self) -> list[Op]:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            ttl = rng.choice([-1, 0, 1, 5, LONG_TTL, 9_000_000_000, 9_000_000_001, I64_MAX,
                              I64_MIN, -(1 << 31)])
            fresh = rng.randrange(1, 1 << 62)
            if ttl > 9_000_000_000:  # refused whatever the ID: any ID
                lid = rng.choice([fresh, -5, 0, I64_MAX, I64_MIN, *self.long_leases[:1]])
            elif ttl >= LONG_TTL:  # outlives the run: fixed and reused IDs are safe
                lid = rng.choice([fresh, fresh, -5, I64_MAX, I64_MIN, *self.long_leases[:1]])
                if lid not in self.long_leases:
                    self.long_leases.append(lid)
            else:
                # may expire at any moment: a fresh ID nothing else refers to (a reused
                # ID would make "lease already exists" a race with the expiry)
                lid = fresh
                self.short_leases.append(lid)
            return [self._op("lease.grant", "Lease", "LeaseGrant",
                             _const(pb.LeaseGrantRequest(ID=lid, TTL=ttl)))]
        known = self.long_leases + self.short_leases
        anyid = rng.choice([*known, 0, -1, 424242, I64_MIN]) if known else 0
        if r < 0.45:
            if rng.random() < 0.3 and self.long_leases:
                lid = self.long_leases.pop(rng.randrange(len(self.long_leases)))
            else:
                lid = rng.choice([0, -1, 424242, I64_MAX])
            self.writes += 1
            return [self._op("lease.revoke", "Lease", "LeaseRevoke",
                             _const(pb.LeaseRevokeRequest(ID=lid)))]
        if r < 0.65:
            return [self._op("lease.keepalive", "Lease", "LeaseKeepAlive",
                             _const(pb.LeaseKeepAliveRequest(ID=anyid)))]
        if r < 0.9:
            return [self._op("lease.ttl", "Lease", "LeaseTimeToLive",
                             _const(pb.LeaseTimeToLiveRequest(ID=anyid,
                                                              keys=rng.random() < 0.5)))]
        return [self._op("lease.leases", "Lease", "LeaseLeases",
                         _const(pb.LeaseLeasesRequest()))]

    def cluster_ops(self) -> list[Op]:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return [self._op("member.list", "Cluster", "MemberList",
                             _const(pb.MemberListRequest(linearizable=rng.random() < 0.5)))]
        if r < 0.55:
            # etcd 3.6.16 accepts (and adds a member for) a port beyond 65535 or an empty
            # host: those only in the raftkv-only stream
            bad = rng.choice([[], ["not a url"], ["http://127.0.0.1"], ["ftp://127.0.0.1:1"],
                              [""], *([] if self.etcd_safe else [["http://127.0.0.1:99999"],
                                                                 ["http://:80"]])])
            return [self._op("member.add-bad-url", "Cluster", "MemberAdd",
                             _const(pb.MemberAddRequest(peerURLs=bad,
                                                        isLearner=rng.random() < 0.5)))]
        if r < 0.62:
            i = rng.randrange(self.members)
            return [self._op("member.add-existing-url", "Cluster", "MemberAdd",
                             lambda ctx, i=i: pb.MemberAddRequest(peerURLs=[ctx.peer_urls[i]]))]
        if r < 0.66 and not self.learner_added:
            # a learner that never starts: harmless to the quorum; promote and remove it
            self.learner_added = True
            port = rng.randrange(20000, 30000)
            return [self._op("member.add-learner", "Cluster", "MemberAdd",
                             _const(pb.MemberAddRequest(
                                 peerURLs=[f"http://127.0.0.1:{port}"], isLearner=True)))]
        if r < 0.8:
            return [self._op("member.promote", "Cluster", "MemberPromote",
                             self._member_ref(pb.MemberPromoteRequest))]
        if r < 0.9:
            return [self._op("member.remove", "Cluster", "MemberRemove",
                             self._member_ref(pb.MemberRemoveRequest, voters=False))]
        if not self.etcd_safe and rng.random() < 0.5:
            # etcd 3.6.16 stores any string as a member's peer URL (etcdctl checks, the
            # server does not) and then cannot dial it: raftkv-only stream
            i = rng.randrange(self.members)
            bad = rng.choice([[], ["not a url"], ["http://127.0.0.1"], ["http://:80"],
                              ["http://127.0.0.1:99999"], ["ftp://127.0.0.1:1"]])
            return [self._op("member.update-bad-url", "Cluster", "MemberUpdate",
                             lambda ctx, i=i, bad=bad: pb.MemberUpdateRequest(
                                 ID=ctx.member_ids[i], peerURLs=bad))]
        return [self._op("member.update", "Cluster", "MemberUpdate",
                         _const(pb.MemberUpdateRequest(ID=rng.choice([0, 1, I64_MAX]),
                                                       peerURLs=["http://127.0.0.1:1"])))]

    def _member_ref(self, cls: Any, voters: bool = True,
                    field: str = "ID") -> Callable[[Ctx], Any]:
        """A request naming an unknown member, a voter (if ``voters``) or our learner."""
        rng = self.rng
        choice = rng.choice(["unknown", "voter", "learner"] if voters else ["unknown",
                                                                             "learner"])
        i = rng.randrange(self.members)
        unknown = rng.choice([0, 1, I64_MAX, (1 << 64) - 1, rng.randrange(1 << 64)])

        def build(ctx: Ctx) -> Any:
            if choice == "voter":
                return cls(**{field: ctx.member_ids[i]})
            if choice == "learner" and ctx.added:
                return cls(**{field: ctx.added[-1]})
            return cls(**{field: unknown})
        return build

    def maintenance_ops(self) -> list[Op]:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return [self._op("status", "Maintenance", "Status", _const(pb.StatusRequest()))]
        if r < 0.55:
            actions = list(pb.AlarmRequest.AlarmAction.values())
            # etcd 3.6.16 dereferences a nil response for an undefined action and the
            # member serving the request exits: left out of the etcd-safe stream
            action = rng.choice(actions) if self.etcd_safe else self.enum(actions)
            alarm = self.enum(list(pb.AlarmType.values()))
            i = rng.randrange(self.members)
            mid_unknown = rng.random() < 0.3

            def build(ctx: Ctx, a: int = action, al: int = alarm, i: int = i,
                      mu: bool = mid_unknown) -> Any:
                return pb.AlarmRequest(action=a, alarm=al,  # type: ignore[arg-type]
                                       memberID=12345 if mu else ctx.member_ids[i])
            ops = [self._op("alarm", "Maintenance", "Alarm", build)]
            if action == pb.AlarmRequest.ACTIVATE:
                def undo(ctx: Ctx, al: int = alarm, i: int = i, mu: bool = mid_unknown) -> Any:
                    return pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE,
                                           alarm=al,  # type: ignore[arg-type]
                                           memberID=12345 if mu else ctx.member_ids[i])
                ops.append(self._op("alarm.undo", "Maintenance", "Alarm", undo))
            return ops
        if r < 0.65:
            return [self._op("defragment", "Maintenance", "Defragment",
                             _const(pb.DefragmentRequest()))]
        if r < 0.8:
            return [self._op("hashkv", "Maintenance", "HashKV",
                             _const(pb.HashKVRequest(revision=self.revision())))]
        return [self._op("move-leader", "Maintenance", "MoveLeader",
                         self._member_ref(pb.MoveLeaderRequest, field="targetID"))]

    def stream(self, count: int) -> list[Op]:
        ops = self.preamble()
        while len(ops) < count:
            ops.extend(self.next_ops())
        return ops
