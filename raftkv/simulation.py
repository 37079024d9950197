"""An in-memory Raft cluster: nodes, a fake network, and a toy replicated log to apply to.

Used by ``bench/raft_core.py`` and by the core's scenario and randomized tests. Each
:class:`SimNode` drives a :class:`~raftkv.raft.RawNode` in the order the design
prescribes (persist, then send, then apply, then advance) over a ``MemoryStorage`` that
stands for its disk: a crash throws away everything else (the RawNode, unstable entries,
unsent messages) and a restart rebuilds from that storage. The application state is the
list of applied entry payloads; snapshots encode it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raftkv.raft import (
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    Ready,
    StateType,
    bootstrap,
)
from raftkv.raft.codec import decode_conf_change
from raftkv.simnet import receivers

ReadyHook = Callable[["SimNode", Ready], None]


def encode_values(values: list[bytes]) -> bytes:
    out = [struct.pack(">I", len(values))]
    for v in values:
        out.append(struct.pack(">I", len(v)))
        out.append(v)
    return b"".join(out)


def decode_values(buf: bytes) -> list[bytes]:
    (n,) = struct.unpack_from(">I", buf, 0)
    pos = 4
    values = []
    for _ in range(n):
        (ln,) = struct.unpack_from(">I", buf, pos)
        pos += 4
        values.append(buf[pos : pos + ln])
        pos += ln
    return values


@dataclass
class SimConfig:
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    snapshot_every: int = 0  # 0: never compact; else compact when this many entries applied
    snapshot_keep: int = 5  # entries kept behind a compaction


@dataclass
class SimNode:
    id: int
    cfg: SimConfig
    rng: random.Random
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    node: RawNode | None = None
    applied: list[tuple[int, bytes]] = field(default_factory=list)  # (index, data) normal
    values: list[bytes] = field(default_factory=list)  # the toy state machine
    conf_state: ConfState = field(default_factory=ConfState)
    applied_index: int = 0
    snapshots_taken: int = 0
    snapshots_installed: int = 0
    conf_changes_applied: int = 0

    @property
    def up(self) -> bool:
        return self.node is not None

    def start(self) -> None:
        """(Re)start from durable storage: state machine from the snapshot, log replayed."""
        snap = self.storage.snapshot()
        self.values = decode_values(snap.data) if not snap.is_empty() else []
        self.applied = []
        self.applied_index = snap.metadata.index
        self.conf_state = snap.metadata.conf_state
        raft_cfg = Config(
            id=self.id,
            election_tick=self.cfg.election_tick,
            heartbeat_tick=self.cfg.heartbeat_tick,
            applied=snap.metadata.index,
            pre_vote=self.cfg.pre_vote,
            check_quorum=self.cfg.check_quorum,
            max_size_per_msg=self.cfg.max_size_per_msg,
            max_inflight_msgs=self.cfg.max_inflight_msgs,
        )
        self.node = RawNode(raft_cfg, self.storage, self.rng)

    def crash(self) -> None:
        """Lose everything not persisted: the RawNode with its unstable state and outbox."""
        self.node = None

    def handle_ready(self, hook: ReadyHook | None = None) -> list[Message]:
        """Run one Ready cycle if there is one; returns the messages to send."""
        node = self.node
        if node is None or not node.has_ready():
            return []
        rd = node.ready()
        if hook is not None:
            hook(self, rd)
        st = self.storage
        # 1. persist: snapshot, then entries, then hard state (one "fsync")
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
            self.values = decode_values(rd.snapshot.data)
            self.applied_index = rd.snapshot.metadata.index
            self.conf_state = rd.snapshot.metadata.conf_state
            self.snapshots_installed += 1
        if rd.entries:
            st.append(rd.entries)
        if not rd.hard_state.is_empty():
            st.set_hard_state(rd.hard_state)
        # 2. send (the caller delivers what we return)
        msgs = rd.messages
        # 3. apply
        applied_index = self.applied_index
        values, applied = self.values, self.applied
        for e in rd.committed_entries:
            if e.index <= applied_index:
                continue
            if e.type is EntryType.CONF_CHANGE:
                self.conf_state = node.apply_conf_change(decode_conf_change(e.data))
                self.conf_changes_applied += 1
            elif e.data:
                values.append(e.data)
                applied.append((e.index, e.data))
            applied_index = e.index
        self.applied_index = applied_index
        # 4. advance
        node.advance(rd)
        self._maybe_compact()
        return msgs

    def _maybe_compact(self) -> None:
        every = self.cfg.snapshot_every
        if not every:
            return
        first = self.storage.first_index()
        if self.applied_index - first + 1 < every:
            return
        idx = self.applied_index
        self.storage.create_snapshot(idx, self.conf_state, encode_values(self.values))
        keep_from = idx - self.cfg.snapshot_keep
        if keep_from >= first:
            self.storage.compact(keep_from)
        self.snapshots_taken += 1

    def role(self) -> StateType | None:
        return None if self.node is None else self.node.raft.state


class Network:
    """In-flight messages plus link faults (cut links drop messages in one direction)."""

    def __init__(self) -> None:
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()

    def send(self, msgs: Iterable[Message]) -> None:
        self.queue.extend(msgs)

    def blocked(self, m: Message) -> bool:
        return (m.sender, m.to) in self.cut

    def isolate(self, node: int, others: Iterable[int]) -> None:
        for o in others:
            if o != node:
                self.cut.add((node, o))
                self.cut.add((o, node))

    def partition(self, groups: list[list[int]]) -> None:
        for i, g in enumerate(groups):
            for h in groups[i + 1 :]:
                for a in g:
                    for b in h:
                        self.cut.add((a, b))
                        self.cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()


class SimCluster:
    """N nodes bootstrapped together, stepped in lockstep rounds over a fair network."""

    def __init__(self, ids: list[int], cfg: SimConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or SimConfig()
        self.rng = random.Random(seed)
        self.net = Network()
        self.nodes: dict[int, SimNode] = {}
        self.hook: ReadyHook | None = None
        for i in ids:
            n = self.new_node(i)
            bootstrap(n.storage, ids)
            n.start()

    def new_node(self, node_id: int) -> SimNode:
        n = SimNode(node_id, self.cfg, random.Random(self.rng.randrange(1 << 30)))
        self.nodes[node_id] = n
        return n

    def add_joining_node(self, node_id: int) -> SimNode:
        """A fresh member with an empty log: it learns the configuration from the leader."""
        n = self.new_node(node_id)
        n.start()
        return n

    def leader(self) -> SimNode | None:
        best: SimNode | None = None
        for n in self.nodes.values():
            if n.node is None or n.node.raft.state is not StateType.LEADER:
                continue
            if best is None or n.node.raft.term > (best.node.raft.term if best.node else 0):
                best = n
        return best

    def process_readies(self) -> None:
        for n in self.nodes.values():
            self.net.send(n.handle_ready(self.hook))

    def deliver_all(self) -> int:
        """Deliver every queued message (in order), handling Readies as they appear."""
        delivered = 0
        while self.net.queue:
            queue, self.net.queue = self.net.queue, []
            for m, node in receivers(queue, self.net.blocked, self.nodes):
                node.step(m)
                delivered += 1
            self.process_readies()
        return delivered

    def tick_all(self) -> None:
        for n in self.nodes.values():
            if n.node is not None:
                n.node.tick()
        self.process_readies()

    def stabilize(self, max_rounds: int = 1000) -> None:
        self.process_readies()
        rounds = 0
        while self.net.queue and rounds < max_rounds:
            self.deliver_all()
            rounds += 1

    def run_until(self, cond: Callable[[], bool], max_ticks: int) -> int:
        """Tick and deliver until ``cond()`` holds; returns the ticks it took, or -1."""
        for t in range(max_ticks):
            if cond():
                return t
            self.tick_all()
            self.stabilize()
        return max_ticks if cond() else -1

    def propose(self, node_id: int, data: bytes) -> None:
        n = self.nodes[node_id]
        assert n.node is not None
        n.node.propose(data)
        self.stabilize()

    def propose_batch(self, node_id: int, batch: list[bytes]) -> None:
        n = self.nodes[node_id]
        assert n.node is not None
        n.node.propose_batch(batch)


def describe_message(m: Message) -> str:
    """A compact, deterministic rendering of a message (for logs and golden files)."""
    parts = [f"{m.sender:x}->{m.to:x} {m.type.name} Term:{m.term}"]
    if m.type in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE):
        parts.append(f"Log:{m.log_term}/{m.index}")
    elif m.type in (MessageType.APP_RESP, MessageType.READ_INDEX_RESP) or m.index:
        parts.append(f"Index:{m.index}")
    if m.commit:
        parts.append(f"Commit:{m.commit}")
    if m.reject and m.type is MessageType.APP_RESP:
        parts.append(f"Rejected (Hint: {m.reject_hint}, LogTerm: {m.log_term})")
    elif m.reject:
        parts.append("Rejected")
    if m.entries:
        parts.append("Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]")
    if m.snapshot is not None:
        md = m.snapshot.metadata
        cs = md.conf_state
        parts.append(
            f"Snapshot: Index:{md.index} Term:{md.term} "
            f"Voters:{list(cs.voters)} Learners:{list(cs.learners)}"
        )
    if m.context:
        parts.append(f"Context:{m.context.decode(errors='replace')}")
    return " ".join(parts)


def describe_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        cc = decode_conf_change(e.data)
        return f"{e.term}/{e.index} {cc.type.name} {cc.node_id:x}"
    return f"{e.term}/{e.index} {e.data.decode(errors='replace') if e.data else 'EMPTY'}"
