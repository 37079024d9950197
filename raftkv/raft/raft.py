"""The Raft state machine: roles as separate step functions, stepped by its caller.

Modelled on etcd-io/raft. The object never reads a clock (time is ``tick()``), never
sleeps, never does I/O, and draws randomness only from the injected source. Outputs
accumulate in ``msgs`` and ``read_states`` and are drained by :mod:`raftkv.raft.node`.

Safety invariants kept here:
- at most one vote per term, persisted (via the hard state) before the grant is sent;
- a vote goes only to a candidate whose log is at least as up-to-date (§5.4.1);
- a leader commits by counting replicas only for an entry of its own term (§5.4.2);
- a new leader appends an empty entry of its term and answers no ReadIndex and accepts
  no configuration change until that entry has committed (resp. applied);
- configurations take effect when applied; at most one change is pending at a time;
- any message of a higher term turns a node into a follower of that term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from raftkv.raft import confchange
from raftkv.raft.codec import decode_conf_change
from raftkv.raft.errors import (
    Compacted,
    LearnerNotCaughtUp,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailable,
    Unavailable,
    UncommittedSizeExceeded,
)
from raftkv.raft.log import RaftLog
from raftkv.raft.progress import Progress, ProgressState, ProgressTracker
from raftkv.raft.quorum import VoteResult, vote_result
from raftkv.raft.readonly import ReadOnly
from raftkv.raft.storage import NO_LIMIT, Storage
from raftkv.raft.types import (
    NONE,
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

CAMPAIGN_TRANSFER = b"CampaignTransfer"
LEARNER_READY_RATIO = 0.9  # a learner is caught up at 90% of the leader's log, as etcd


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int, /) -> int: ...


@dataclass
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0: no byte limit
    max_committed_size_per_ready: int = NO_LIMIT
    # etcd's MaxUncommittedEntriesSize: a leader refuses proposals while the payload
    # bytes of its uncommitted entries would exceed it (one proposal always fits)
    max_uncommitted_entries_size: int = NO_LIMIT
    pre_vote: bool = True
    check_quorum: bool = True

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("cannot use 0 as a node id")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max inflight messages must be greater than 0")


class Campaign(Enum):
    PRE_ELECTION = "pre-election"
    ELECTION = "election"
    TRANSFER = "transfer"


def _vote_resp_type(t: MessageType) -> MessageType:
    return MessageType.VOTE_RESP if t is MessageType.VOTE else MessageType.PRE_VOTE_RESP


def _payload_size(ents: list[Entry]) -> int:
    return sum(len(e.data) for e in ents)


class Raft:
    def __init__(self, cfg: Config, storage: Storage, rand: RandomSource) -> None:
        cfg.validate()
        self.id = cfg.id
        self.rand = rand
        self.raft_log = RaftLog(storage, cfg.max_committed_size_per_ready)
        self.max_uncommitted_size = cfg.max_uncommitted_entries_size
        self.uncommitted_size = 0
        hs, cs = storage.initial_state()
        self.max_msg_size = cfg.max_size_per_msg
        # the last proposal forwarded with only normal entries, unsent, and its bytes
        self._forwarding: tuple[Message, int] | None = None
        self.prs = ProgressTracker(cfg.max_inflight_msgs, cfg.max_inflight_bytes)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        # a leader's appends for new proposals and commit advances wait for the outputs to
        # be read (``flush_appends``): one MsgApp per follower per Ready, not one per
        # proposal and per acknowledgement; ``_commit_sent`` is what each follower was told
        self._appends_due = False
        self._commit_sent: dict[int, int] = {}
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.check_quorum = cfg.check_quorum
        self.pre_vote = cfg.pre_vote
        self.heartbeat_timeout = cfg.heartbeat_tick
        self.election_timeout = cfg.election_tick
        self.randomized_election_timeout = cfg.election_tick
        self._step: Callable[[Message], None] = self._step_follower
        self._switch_to_config(cs)
        if not hs.is_empty():
            self._load_state(hs)
        if cfg.applied > 0:
            self.raft_log.applied_to(cfg.applied)
        self.become_follower(self.term, NONE)

    # --- state ----------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def _load_state(self, hs: HardState) -> None:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise RaftError(
                f"hard state commit {hs.commit} is out of range "
                f"[{self.raft_log.committed}, {self.raft_log.last_index()}]"
            )
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        pr = self.prs.progress.get(self.id)
        return pr is not None and not pr.is_learner and self.raft_log.unstable.snapshot is None

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.uncommitted_size = 0
        self._reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.prs.reset_votes()
        last = self.raft_log.last_index()
        for id_, pr in list(self.prs.progress.items()):
            np = self.prs.new_progress(last + 1, pr.is_learner)
            if id_ == self.id:
                np.match = last
            self.prs.progress[id_] = np
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []
        self._appends_due = False
        self._commit_sent = {}

    def _reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + self.rand.randrange(
            0, self.election_timeout
        )

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def become_follower(self, term: int, lead: int) -> None:
        self._step = self._step_follower
        self._reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        if self.state is StateType.LEADER:
            raise RaftError("invalid transition [leader -> candidate]")
        self._step = self._step_candidate
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        if self.state is StateType.LEADER:
            raise RaftError("invalid transition [leader -> pre-candidate]")
        # Pre-vote changes neither the term nor the vote: a node that cannot win does
        # not disturb the cluster (Ongaro's thesis §9.6).
        self._step = self._step_candidate
        self.prs.reset_votes()
        self.state = StateType.PRE_CANDIDATE
        self.lead = NONE

    def become_leader(self) -> None:
        if self.state is StateType.FOLLOWER:
            raise RaftError("invalid transition [follower -> leader]")
        self._step = self._step_leader
        self._reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        me = self.prs.progress[self.id]
        me.become_replicate()
        me.recent_active = True
        self.append_entry([Entry(0, 0)])
        # No configuration change until everything up to and including our own empty
        # entry is applied (closes the 2015 single-server membership change bug).
        self.pending_conf_index = self.raft_log.last_index()

    # --- sending ------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        if m.sender == NONE:
            m.sender = self.id
        if m.type in (
            MessageType.VOTE,
            MessageType.VOTE_RESP,
            MessageType.PRE_VOTE,
            MessageType.PRE_VOTE_RESP,
        ):
            if m.term == 0:
                raise RaftError(f"term must be set when sending {m.type.name}")
        elif m.type not in (MessageType.PROP, MessageType.READ_INDEX):
            # Forwarded proposals and read requests stay term 0: the receiver treats
            # them as local messages.
            m.term = self.term
        self.msgs.append(m)

    def send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs.progress[to]
        if pr.is_paused():
            return False
        log = self.raft_log
        try:
            prev_term = log.term(pr.next - 1)
            ents = log.entries(pr.next, self.max_msg_size)
        except (Compacted, Unavailable):
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.send(
            Message(
                MessageType.APP,
                to=to,
                index=pr.next - 1,
                log_term=prev_term,
                entries=ents,
                commit=log.committed,
            )
        )
        self._commit_sent[to] = log.committed
        pr.sent_entries(pr.next - 1 + len(ents), len(ents), _payload_size(ents))
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # don't ship a snapshot to a peer we haven't heard from
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailable:
            return False
        if snap.is_empty():
            raise RaftError("need a non-empty snapshot to send")
        pr.become_snapshot(snap.metadata.index)
        self.send(Message(MessageType.SNAP, to=to, snapshot=snap))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        # The follower may not have all our entries: commit no further than it matches.
        commit = min(self.prs.progress[to].match, self.raft_log.committed)
        self.send(Message(MessageType.HEARTBEAT, to=to, commit=commit, context=ctx))

    def bcast_append(self) -> None:
        for id_ in self.prs.progress:
            if id_ != self.id:
                self.send_append(id_)

    def flush_appends(self) -> None:
        """Send the appends that proposals and commit advances made due since the last
        flush (the node calls this before it reads the outputs): a follower gets the
        entries it was not sent (one MsgApp, unless they pass the message size), or else
        one empty MsgApp if it was not told the commit index. Delaying a message to the
        end of the step batch is no different from a slower network."""
        if not self._appends_due:
            return
        self._appends_due = False
        if self.state is not StateType.LEADER:
            return  # stepped down meanwhile: a follower sends no appends
        last, committed = self.raft_log.last_index(), self.raft_log.committed
        for id_, pr in self.prs.progress.items():
            if id_ == self.id:
                continue
            if pr.next <= last:
                while self.send_append(id_, send_if_empty=False):
                    pass  # as many appends as its flow control allows now
            elif self._commit_sent.get(id_, 0) < committed:
                self.send_append(id_)

    def bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for id_ in self.prs.progress:
            if id_ != self.id:
                self.send_heartbeat(id_, ctx)

    # --- leader bookkeeping -------------------------------------------------------------

    def append_entry(self, es: list[Entry]) -> None:
        li = self.raft_log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
        li = self.raft_log.append(ents)
        self.prs.progress[self.id].maybe_update(li)
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        return self.raft_log.maybe_commit(self.prs.committed(), self.term)

    def reduce_uncommitted_size(self, committed: list[Entry]) -> None:
        """Entries handed to the application as committed no longer count."""
        if self.state is StateType.LEADER:
            s = sum(len(e.data) for e in committed)
            self.uncommitted_size = max(0, self.uncommitted_size - s)

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    def send_timeout_now(self, to: int) -> None:
        self.send(Message(MessageType.TIMEOUT_NOW, to=to))

    # --- ticks ----------------------------------------------------------------------------

    def tick(self) -> None:
        if self.state is StateType.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MessageType.HUP, sender=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MessageType.CHECK_QUORUM, sender=self.id))
            if self.state is StateType.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()  # the transfer did not finish in time
        if self.state is not StateType.LEADER:
            return
        for id_, pr in self.prs.progress.items():
            if pr.state is ProgressState.SNAPSHOT and id_ != self.id:
                # A snapshot lost in transit (or to a crash) must not stall the peer
                # forever: after an election timeout, probe again.
                pr.snapshot_wait += 1
                if pr.snapshot_wait > self.election_timeout:
                    pr.become_probe()
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MessageType.BEAT, sender=self.id))

    # --- elections --------------------------------------------------------------------

    def hup(self, t: Campaign) -> None:
        if self.state is StateType.LEADER:
            return
        if not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return  # campaign only with the configuration the log commits to
        self.campaign(t)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        lo = max(log.applied + 1, log.first_index())
        if lo > log.committed:
            return False
        ents = log.slice(lo, log.committed + 1, NO_LIMIT)
        return any(e.type is EntryType.CONF_CHANGE for e in ents)

    def campaign(self, t: Campaign) -> None:
        if not self.promotable():
            return
        if t is Campaign.PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = MessageType.PRE_VOTE
            term = self.term + 1  # the term we would have; our own term is unchanged
        else:
            self.become_candidate()
            vote_msg = MessageType.VOTE
            term = self.term
        if self.poll(self.id, _vote_resp_type(vote_msg), True) is VoteResult.WON:
            if t is Campaign.PRE_ELECTION:
                self.campaign(Campaign.ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if t is Campaign.TRANSFER else b""
        last = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        for id_ in sorted(self.prs.voters):
            if id_ != self.id:
                self.send(
                    Message(
                        vote_msg, to=id_, term=term, index=last, log_term=last_term, context=ctx
                    )
                )

    def poll(self, id_: int, t: MessageType, granted: bool) -> VoteResult:
        self.prs.record_vote(id_, granted)
        return vote_result(self.prs.voters, self.prs.votes)

    # --- the entry point --------------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    return  # we heard from a live leader recently: don't be disrupted
            if m.type is MessageType.PRE_VOTE:
                pass  # never change our term in response to a pre-vote
            elif m.type is MessageType.PRE_VOTE_RESP and not m.reject:
                pass  # the term is bumped when the pre-vote wins
            elif m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP):
                self.become_follower(m.term, m.sender)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (
                MessageType.HEARTBEAT,
                MessageType.APP,
            ):
                # A stale leader (e.g. one healing from a partition) learns our term and
                # steps down; otherwise it could stay stuck while we ignore it.
                self.send(Message(MessageType.APP_RESP, to=m.sender))
            elif m.type is MessageType.PRE_VOTE:
                self.send(
                    Message(MessageType.PRE_VOTE_RESP, to=m.sender, term=self.term, reject=True)
                )
            return

        if m.type is MessageType.HUP:
            self.hup(Campaign.PRE_ELECTION if self.pre_vote else Campaign.ELECTION)
        elif m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.sender
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MessageType.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # Grant with the requester's term: a pre-vote grant must not look stale.
            self.send(Message(_vote_resp_type(m.type), to=m.sender, term=m.term))
            if m.type is MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            self.send(Message(_vote_resp_type(m.type), to=m.sender, term=self.term, reject=True))

    # --- leader ---------------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is MessageType.BEAT:
            self.bcast_heartbeat()
            return
        if t is MessageType.CHECK_QUORUM:
            if not self.prs.quorum_active():
                self.become_follower(self.term, NONE)
            for id_, pr in self.prs.progress.items():
                if id_ != self.id:
                    pr.recent_active = False
            return
        if t is MessageType.PROP:
            self._leader_propose(m)
            return
        if t is MessageType.READ_INDEX:
            if self.prs.is_singleton():
                self._respond_read_index(m, self.raft_log.committed)
            elif not self.committed_entry_in_current_term():
                # Our commit index may be stale until our own empty entry commits.
                self.pending_read_index_messages.append(m)
            else:
                self._start_read_index(m)
            return

        peer = self.prs.progress.get(m.sender)
        if peer is None:
            return
        pr = peer
        if t is MessageType.APP_RESP:
            self._handle_append_response(m, pr)
        elif t is MessageType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.msg_app_flow_paused = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.raft_log.last_index():
                self.send_append(m.sender)
            if m.context:
                self._handle_read_ack(m)
        elif t is MessageType.SNAP_STATUS:
            if pr.state is not ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            pr.msg_app_flow_paused = True  # wait for a heartbeat response before probing
        elif t is MessageType.UNREACHABLE:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t is MessageType.TRANSFER_LEADER:
            self._handle_transfer_leader(m, pr)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise RaftError("stepped empty MsgProp")
        if self.id not in self.prs.progress:
            raise ProposalDropped("this node was removed from the configuration")
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership is being transferred to {self.lead_transferee:x}")
        # Check the whole batch before changing anything: a refused batch leaves
        # pending_conf_index as it was; each change's pending index is its own entry's.
        pending = self.pending_conf_index
        last = self.raft_log.last_index()
        for i, e in enumerate(m.entries):
            if e.type is EntryType.CONF_CHANGE:
                refusal = self._conf_change_refusal(decode_conf_change(e.data), pending)
                if refusal is not None:
                    raise refusal
                pending = last + i + 1
        size = sum(len(e.data) for e in m.entries)
        if self.uncommitted_size > 0 and size > 0 and (
                self.uncommitted_size + size > self.max_uncommitted_size):
            raise UncommittedSizeExceeded(
                f"uncommitted entries hold {self.uncommitted_size} bytes; the limit is "
                f"{self.max_uncommitted_size}")
        self.append_entry(m.entries)
        self.uncommitted_size += size
        self.pending_conf_index = pending
        self._appends_due = True

    def _conf_change_refusal(self, cc: ConfChange, pending: int) -> ProposalDropped | None:
        if pending > self.raft_log.applied:
            return ProposalDropped(
                "a configuration change is already pending (or this leader's first entry "
                f"is not applied yet): pending at {pending}, "
                f"applied {self.raft_log.applied}"
            )
        reason = confchange.problem(self.prs.conf_state(), cc)
        if reason is not None:
            return ProposalDropped(reason)
        if cc.type is ConfChangeType.ADD_NODE and cc.node_id in self.prs.learners:
            learner = self.prs.progress[cc.node_id]
            leader_match = self.prs.progress[self.id].match
            if learner.match < leader_match * LEARNER_READY_RATIO:
                return LearnerNotCaughtUp(
                    f"learner {cc.node_id:x} has not caught up: match {learner.match} of "
                    f"{leader_match}"
                )
        return None

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.sender)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.match + 1 >= self.raft_log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self._release_pending_read_index_messages()
            self._appends_due = True
        elif old_paused:
            self.send_append(m.sender)
        while self.send_append(m.sender, send_if_empty=False):
            pass  # drain what the window now allows
        if m.sender == self.lead_transferee and pr.match == self.raft_log.last_index():
            self.send_timeout_now(m.sender)

    def _handle_transfer_leader(self, m: Message, pr: Progress) -> None:
        target = m.sender  # as in etcd-io/raft, the transferee is the message's sender
        if pr.is_learner:
            return
        if self.lead_transferee == target or target == self.id:
            return
        self.abort_leader_transfer()
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = target
        if pr.match == self.raft_log.last_index():
            self.send_timeout_now(target)
        else:
            self.send_append(target)

    # --- ReadIndex ------------------------------------------------------------------------

    def _start_read_index(self, m: Message) -> None:
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self.bcast_heartbeat(m.context)

    def _handle_read_ack(self, m: Message) -> None:
        acks = self.read_only.recv_ack(m.sender, m.context)
        if acks is None:
            return
        if vote_result(self.prs.voters, acks) is not VoteResult.WON:
            return
        for rs in self.read_only.advance(m.context):
            self._respond_read_index(rs.req, rs.index)

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.sender in (NONE, self.id):
            self.read_states.append(ReadState(index, req.context))
        else:
            self.send(
                Message(
                    MessageType.READ_INDEX_RESP, to=req.sender, index=index, context=req.context
                )
            )

    def _release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        msgs, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in msgs:
            if self.prs.is_singleton():
                self._respond_read_index(m, self.raft_log.committed)
            else:
                self._start_read_index(m)

    # --- candidate -----------------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        my_resp = (
            MessageType.PRE_VOTE_RESP
            if self.state is StateType.PRE_CANDIDATE
            else MessageType.VOTE_RESP
        )
        t = m.type
        if t is MessageType.PROP:
            raise ProposalDropped("no leader: an election is in progress")
        if t is MessageType.APP:
            self.become_follower(m.term, m.sender)
            self._handle_append_entries(m)
        elif t is MessageType.HEARTBEAT:
            self.become_follower(m.term, m.sender)
            self._handle_heartbeat(m)
        elif t is MessageType.SNAP:
            self.become_follower(m.term, m.sender)
            self._handle_snapshot(m)
        elif t is my_resp:
            res = self.poll(m.sender, t, not m.reject)
            if res is VoteResult.WON:
                if self.state is StateType.PRE_CANDIDATE:
                    self.campaign(Campaign.ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res is VoteResult.LOST:
                # A pre-candidate's higher-term rejections were handled in step();
                # here we simply give up this round.
                self.become_follower(self.term, NONE)

    # --- follower --------------------------------------------------------------------------

    def _forward_proposal(self, m: Message) -> None:
        """Send a proposal on to the leader, joined to the one forwarded before it when
        that is still unsent (``take_messages`` forgets it), both hold only normal
        entries for the same leader and together fit in ``max_msg_size``: under load the
        leader then steps one message per Ready of ours, not one per proposal. Order
        among forwarded proposals is kept; a configuration change travels alone and
        ends the joining, so a refused one never takes normal entries with it."""
        normal = all(e.type is EntryType.NORMAL for e in m.entries)
        size = sum(len(e.data) for e in m.entries)
        if normal and self._forwarding is not None:
            last, last_size = self._forwarding
            if last.to == m.to and last_size + size <= self.max_msg_size:
                last.entries.extend(m.entries)
                self._forwarding = (last, last_size + size)
                return
        self.send(m)
        self._forwarding = (m, size) if normal else None

    def take_messages(self) -> list[Message]:
        """The messages to send, handed out once (a Ready's)."""
        msgs, self.msgs = self.msgs, []
        self._forwarding = None
        return msgs

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is MessageType.PROP:
            if self.lead == NONE:
                raise ProposalDropped("no leader")
            m.to = self.lead
            self._forward_proposal(m)
        elif t is MessageType.APP:
            self.election_elapsed = 0
            self.lead = m.sender
            self._handle_append_entries(m)
        elif t is MessageType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.sender
            self._handle_heartbeat(m)
        elif t is MessageType.SNAP:
            self.election_elapsed = 0
            self.lead = m.sender
            self._handle_snapshot(m)
        elif t is MessageType.TRANSFER_LEADER:
            if self.lead == NONE:
                return
            m.to = self.lead
            self.send(m)
        elif t is MessageType.TIMEOUT_NOW:
            # Our leader asks us to take over now: skip pre-vote, bypass leases.
            self.hup(Campaign.TRANSFER)
        elif t is MessageType.READ_INDEX:
            if self.lead == NONE:
                return
            m.to = self.lead
            self.send(m)
        elif t is MessageType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append_entries(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            self.send(Message(MessageType.APP_RESP, to=m.sender, index=log.committed))
            return
        lastnew = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if lastnew is not None:
            self.send(Message(MessageType.APP_RESP, to=m.sender, index=lastnew))
            return
        # Reject with a hint: the largest index at or below m.index whose term is at most
        # m.log_term. The leader can then skip every entry of a conflicting term at once.
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                MessageType.APP_RESP,
                to=m.sender,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self.send(Message(MessageType.HEARTBEAT_RESP, to=m.sender, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self.restore(m.snapshot):
            self.send(Message(MessageType.APP_RESP, to=m.sender, index=self.raft_log.last_index()))
        else:
            self.send(Message(MessageType.APP_RESP, to=m.sender, index=self.raft_log.committed))

    def restore(self, s: Snapshot) -> bool:
        """Install a snapshot from the leader. False if we already have what it holds."""
        meta = s.metadata
        if meta.index <= self.raft_log.committed:
            return False
        if self.state is not StateType.FOLLOWER:
            return False
        cs = meta.conf_state
        # A snapshot may predate our own addition (a new member behind a compacted log):
        # we install it and learn our membership from the entries that follow it.
        if self.raft_log.match_term(meta.index, meta.term):
            # We have the entries already: just fast-forward the commit index.
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(s)
        self.prs.progress.clear()
        self._switch_to_config(cs)
        return True

    # --- configuration ----------------------------------------------------------------

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed configuration change; it takes effect now (etcd semantics)."""
        cs = confchange.apply(self.prs.conf_state(), cc)
        return self._switch_to_config(cs)

    def _switch_to_config(self, cs: ConfState) -> ConfState:
        prs = self.prs
        new_members = set(cs.voters) | set(cs.learners)
        for id_ in list(prs.progress):
            if id_ not in new_members:
                del prs.progress[id_]
        last = self.raft_log.last_index()
        for id_ in new_members:
            learner = id_ in cs.learners
            existing = prs.progress.get(id_)
            if existing is None:
                existing = prs.new_progress(last + 1, learner)
                # A new peer may be behind: treat it as active so it gets a snapshot.
                existing.recent_active = True
                prs.progress[id_] = existing
            existing.is_learner = learner
        prs.voters = set(cs.voters)
        prs.learners = set(cs.learners)
        me = prs.progress.get(self.id)
        self.is_learner = me is not None and me.is_learner
        if self.state is not StateType.LEADER:
            return cs
        if me is None or me.is_learner:
            # This leader was removed: hand over to the most up-to-date voter and step
            # down, so the cluster does not wait out an election timeout.
            best = max(
                (i for i in prs.voters),
                key=lambda i: (prs.progress[i].match, -i),
                default=NONE,
            )
            if best != NONE and prs.progress[best].match == last:
                self.send_timeout_now(best)
            self.become_follower(self.term, NONE)
            return cs
        if self.maybe_commit():
            self._release_pending_read_index_messages()
        self.bcast_append()
        if self.lead_transferee != NONE and self.lead_transferee not in prs.voters:
            self.abort_leader_transfer()
        return cs
