"""The acceptor, shared by Basic and Multi-Paxos: it promises and accepts, and says so only
after the promise or the acceptance is in the Ready's ``persist``.

Invariants: ``promised`` never decreases; a PREPARE is promised only if its ballot is higher
than every ballot promised before (a retransmission of the promised ballot is promised
again); an ACCEPT is taken only if its ballot is at least the promise, and taking it raises
the promise to it; the reply (PROMISE, ACCEPTED, NACK) is built after the state change is
recorded in ``persist``, and the node's caller sends it only after persisting that. One
promise covers every instance from the PREPARE's instance on (Multi-Paxos's single phase 1);
Basic Paxos uses instance 0 only.
"""

from __future__ import annotations

from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import Accepted, Ballot, Message, MsgType, Persist


class Acceptor:
    def __init__(self, node_id: int, st: PaxosStorage) -> None:
        self.id = node_id
        self.promised = st.promised
        self.accepted: dict[int, Accepted] = dict(st.accepted)

    def _promise(self, b: Ballot, persist: Persist) -> None:
        self.promised = b
        persist.promised = b

    def on_prepare(self, m: Message, persist: Persist) -> Message:
        """Promise ``m.ballot`` for every instance from ``m.instance`` on, or refuse."""
        if m.ballot < self.promised:
            return Message(MsgType.NACK, self.id, m.sender, m.ballot, m.instance,
                           promised=self.promised)
        if m.ballot > self.promised:
            self._promise(m.ballot, persist)
        held = tuple(a for i, a in sorted(self.accepted.items()) if i >= m.instance)
        return Message(MsgType.PROMISE, self.id, m.sender, m.ballot, m.instance, accepted=held)

    def on_accept(self, m: Message, persist: Persist) -> Message:
        """Accept ``m.value`` for ``m.instance`` at ``m.ballot`` unless promised higher."""
        if m.ballot < self.promised:
            return Message(MsgType.NACK, self.id, m.sender, m.ballot, m.instance,
                           promised=self.promised)
        if m.ballot > self.promised:
            self._promise(m.ballot, persist)
        a = Accepted(m.instance, m.ballot, m.value)
        self.accepted[m.instance] = a
        persist.accepted.append(a)
        return Message(MsgType.ACCEPTED, self.id, m.sender, m.ballot, m.instance)

    def highest_accepted(self) -> int:
        return max(self.accepted, default=-1)
