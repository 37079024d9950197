"""The caller's handle on the core: inputs (tick, step, propose...) and the Ready/advance cycle.

A caller loops: feed inputs; if ``has_ready()``, take ``rd = ready()``; persist
``rd.snapshot``, ``rd.entries`` and ``rd.hard_state`` (fsync); then send ``rd.messages``;
apply ``rd.committed_entries`` (calling ``apply_conf_change`` for conf-change entries);
serve ``rd.read_states`` once applied; then ``advance(rd)``. Messages in a Ready may
promise persistence of that Ready's state (vote grants, append acks), so they must not
leave before it is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkv.raft.codec import encode_conf_change
from raftkv.raft.errors import ProposalDropped, RaftError
from raftkv.raft.raft import Config, Raft, RandomSource
from raftkv.raft.storage import MemoryStorage, Storage
from raftkv.raft.types import (
    EMPTY_HARD_STATE,
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
)


@dataclass(slots=True)
class Ready:
    soft_state: SoftState | None = None
    hard_state: HardState = EMPTY_HARD_STATE  # empty: unchanged since the last Ready
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    state: StateType
    last_index: int
    lead_transferee: int
    progress: dict[int, tuple[int, int, str]]  # id -> (match, next, state), leader only
    conf_state: ConfState


class RawNode:
    def __init__(self, cfg: Config, storage: Storage, rand: RandomSource) -> None:
        self.raft = Raft(cfg, storage, rand)
        self.prev_soft = self.raft.soft_state()
        self.prev_hard = self.raft.hard_state()

    # --- inputs -----------------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(MessageType.HUP))

    def propose(self, data: bytes) -> None:
        """Propose one normal entry. Raises ProposalDropped if it was not appended."""
        self.raft.step(
            Message(MessageType.PROP, sender=self.raft.id, entries=[Entry(0, 0, data=data)])
        )

    def propose_batch(self, batch: list[bytes]) -> None:
        ents = [Entry(0, 0, EntryType.NORMAL, d) for d in batch]
        self.raft.step(Message(MessageType.PROP, sender=self.raft.id, entries=ents))

    def propose_conf_change(self, cc: ConfChange) -> None:
        data = encode_conf_change(cc)
        self.raft.step(
            Message(
                MessageType.PROP,
                sender=self.raft.id,
                entries=[Entry(0, 0, EntryType.CONF_CHANGE, data)],
            )
        )

    def step(self, m: Message) -> None:
        """Feed a message from the network. Local message types are refused."""
        if m.type in LOCAL_MESSAGES:
            raise RaftError(f"cannot step local message {m.type.name} from the network")
        if m.type in RESPONSE_MESSAGES and m.sender not in self.raft.prs.progress:
            return  # a response from a peer no longer in the configuration
        try:
            self.raft.step(m)
        except ProposalDropped:
            if m.type is not MessageType.PROP:
                raise
            # a forwarded proposal the leader refused: the proposer times out and retries

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a ReadState with ``ctx`` arrives in a later Ready."""
        self.raft.step(Message(MessageType.READ_INDEX, context=ctx))

    def transfer_leadership(self, to: int) -> None:
        self.raft.step(Message(MessageType.TRANSFER_LEADER, sender=to))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def report_unreachable(self, node: int) -> None:
        self.raft.step(Message(MessageType.UNREACHABLE, sender=node))

    def report_snapshot(self, node: int, failure: bool) -> None:
        self.raft.step(Message(MessageType.SNAP_STATUS, sender=node, reject=failure))

    # --- outputs ----------------------------------------------------------------------

    def has_ready(self) -> bool:
        # Called after every input: the same tests as ready() makes, cheapest first, and
        # field by field (no SoftState/HardState built just to compare).
        r = self.raft
        r.flush_appends()
        if r.msgs or r.read_states:
            return True
        log = r.raft_log
        soft, hard = self.prev_soft, self.prev_hard
        if r.lead != soft.lead or r.state is not soft.state:
            return True
        term, vote, commit = r.term, r.vote, log.committed
        if (term != hard.term or vote != hard.vote or commit != hard.commit) \
                and not (term == 0 and vote == NONE and commit == 0):
            return True
        return bool(log.unstable.snapshot is not None or log.unstable.entries
                    or log.has_next_committed_ents())

    def ready(self) -> Ready:
        r = self.raft
        r.flush_appends()
        log = r.raft_log
        rd = Ready(
            entries=log.unstable_entries(),
            committed_entries=log.next_committed_ents(),
            messages=r.take_messages(),
            read_states=r.read_states,
            snapshot=log.unstable.snapshot,
        )
        soft = r.soft_state()
        if soft != self.prev_soft:
            rd.soft_state = soft
            self.prev_soft = soft
        hard = r.hard_state()
        if hard != self.prev_hard:
            rd.hard_state = hard
        rd.must_sync = bool(rd.entries) or (
            not hard.is_empty()
            and (hard.vote != self.prev_hard.vote or hard.term != self.prev_hard.term)
        )
        if hard != self.prev_hard:
            self.prev_hard = hard
        r.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        log = self.raft.raft_log
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            self.raft.reduce_uncommitted_size(rd.committed_entries)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.metadata.index)

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, tuple[int, int, str]] = {}
        if r.state is StateType.LEADER:
            progress = {i: (p.match, p.next, p.state.name) for i, p in r.prs.progress.items()}
        return Status(
            r.id,
            r.term,
            r.vote,
            r.raft_log.committed,
            r.raft_log.applied,
            r.lead,
            r.state,
            r.raft_log.last_index(),
            r.lead_transferee,
            progress,
            r.prs.conf_state(),
        )


def bootstrap(storage: MemoryStorage, voters: list[int]) -> None:
    """Seed a brand-new member's stable storage with the initial configuration.

    Writes one committed ADD_NODE entry per initial voter at term 1, as etcd-io/raft's
    Bootstrap does, so that members added later can learn the initial membership by
    replaying the log. The caller must also persist these in its own durable storage.
    """
    if storage.last_index() != 0:
        raise RaftError("can only bootstrap an empty storage")
    if not voters:
        raise RaftError("must bootstrap with at least one voter")
    ents = [
        Entry(
            1,
            i + 1,
            EntryType.CONF_CHANGE,
            encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, v)),
        )
        for i, v in enumerate(voters)
    ]
    storage.append(ents)
    storage.set_hard_state(HardState(term=1, vote=0, commit=len(ents)))
