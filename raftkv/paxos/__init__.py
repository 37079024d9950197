"""Paxos beside Raft: Basic (single-decree) and Multi-Paxos, pure and deterministic.

The protocol modules (types, storage, acceptor, proposer, basic, multi) do no I/O, use no
clock and no global randomness (a RandomSource is passed in), like raftkv.raft; the
import-linter contract ``paxos-is-pure`` holds them to it. ``sim`` (a cluster on
``raftkv.simnet``'s seeded network), ``drivers`` (Raft and Paxos clusters behind one
interface) and ``compare`` (Raft against Multi-Paxos, measured) drive them; the contract
ignores their imports of the simulator and of randomness.
"""

from raftkv.paxos.basic import BasicConfig, BasicNode
from raftkv.paxos.multi import MultiConfig, MultiNode, Role
from raftkv.paxos.storage import PaxosStorage
from raftkv.paxos.types import NOOP, Accepted, Ballot, Message, MsgType, Ready

__all__ = [
    "NOOP", "Accepted", "Ballot", "BasicConfig", "BasicNode", "Message", "MsgType",
    "MultiConfig", "MultiNode", "PaxosStorage", "Ready", "Role",
]
