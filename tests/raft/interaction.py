"""A small command language to script Raft scenarios, in etcd-io/raft's interaction style.

A test file is a sequence of blocks::

    # comment
    command arg key=value
    ----
    expected output

Each command runs against an :class:`InteractionEnv` of in-memory nodes (from
``raftkv.simulation``) whose messages are delivered only when a command says so, so every
interleaving is explicit. The output of every block is compared with the file; with
``--rewrite`` the file is rewritten from the actual output. ``check`` commands assert
facts (leader, term, commit, values) and print ``ERROR`` lines when they do not hold, so
a scenario fails on a wrong outcome even after a careless rewrite.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    ProposalDropped,
    RaftError,
    Ready,
    StateType,
    bootstrap,
)
from raftkv.simulation import (
    SimConfig,
    SimNode,
    describe_entry,
    describe_message,
    encode_values,
)


@dataclass
class Block:
    line: int
    cmd: str
    args: list[str]
    kwargs: dict[str, str]
    expected: str
    source: str
    comments: list[str]


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = len(header_of(text).splitlines())
    comments: list[str] = []
    while i < len(lines):
        raw = lines[i]
        if raw.lstrip().startswith("#"):
            comments.append(raw)
            i += 1
            continue
        if not raw.strip():
            i += 1
            continue
        start = i
        source = raw
        words = shlex.split(raw)
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {start + 1}: expected '----' after command {raw!r}")
        i += 1
        out: list[str] = []
        # expected output runs until a blank line followed by a non-indented command,
        # or the end; outputs never contain blank lines.
        while i < len(lines) and lines[i] != "":
            out.append(lines[i])
            i += 1
        args = [w for w in words[1:] if "=" not in w]
        kwargs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        blocks.append(
            Block(start + 1, words[0], args, kwargs, "\n".join(out), source, comments)
        )
        comments = []
    return blocks


def render(blocks: list[Block], outputs: list[str], header: str) -> str:
    parts = [header.rstrip("\n")] if header.strip() else []
    for b, out in zip(blocks, outputs, strict=True):
        lead = "".join(c + "\n" for c in b.comments)
        parts.append(f"{lead}{b.source}\n----\n{out if out else 'ok'}")
    return "\n\n".join(parts) + "\n"


def header_of(text: str) -> str:
    """The leading comment paragraph of a file (up to its first blank line)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out)


class InteractionEnv:
    def __init__(self) -> None:
        self.nodes: dict[int, SimNode] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.cfg = SimConfig()
        self.out: list[str] = []

    # --- helpers -------------------------------------------------------------------------

    def p(self, s: str) -> None:
        self.out.append(s)

    def node(self, arg: str) -> SimNode:
        n = self.nodes[int(arg)]
        if n.node is None:
            raise ValueError(f"node {arg} is down")
        return n

    def ids(self, args: list[str]) -> list[int]:
        return [int(a) for a in args] if args else sorted(self.nodes)

    def print_ready(self, n: SimNode, rd: Ready) -> None:
        self.p(f"> {n.id} handling Ready")
        if rd.soft_state is not None:
            self.p(f"  Lead:{rd.soft_state.lead} State:{rd.soft_state.state.name}")
        if not rd.hard_state.is_empty():
            hs = rd.hard_state
            self.p(f"  HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
        if rd.snapshot is not None:
            md = rd.snapshot.metadata
            self.p(f"  Snapshot Index:{md.index} Term:{md.term} Voters:{list(md.conf_state.voters)}"
                   f" Learners:{list(md.conf_state.learners)}")
        if rd.entries:
            self.p("  Entries:")
            self.p("\n".join(f"  {describe_entry(e)}" for e in rd.entries))
        if rd.committed_entries:
            self.p("  CommittedEntries:")
            self.p("\n".join(f"  {describe_entry(e)}" for e in rd.committed_entries))
        if rd.read_states:
            self.p("  ReadStates:")
            for rs in rd.read_states:
                self.p(f"  Index:{rs.index} Context:{rs.request_ctx.decode()}")
        if rd.messages:
            self.p("  Messages:")
            self.p("\n".join(f"  {describe_message(m)}" for m in rd.messages))

    def process_ready(self, ids: list[int]) -> bool:
        did = False
        for i in ids:
            n = self.nodes[i]
            if n.node is None or not n.node.has_ready():
                continue
            self.queue.extend(n.handle_ready(self.print_ready))
            did = True
        return did

    def deliver(self, ids: list[int], drop: bool = False, sender: int = 0) -> bool:
        did = False
        for i in ids:
            def wanted(m: Message, i: int = i) -> bool:
                return m.to == i and sender in (0, m.sender)

            mine = [m for m in self.queue if wanted(m)]
            if not mine:
                continue
            self.queue = [m for m in self.queue if not wanted(m)]
            did = True
            n = self.nodes[i]
            if drop:
                self.p(f"> {i} dropping messages")
            elif n.node is None:
                self.p(f"> {i} is down; messages lost")
            else:
                self.p(f"> {i} receiving messages")
            for m in mine:
                blocked = (m.sender, m.to) in self.cut
                tag = "DROPPED " if drop or blocked or n.node is None else ""
                self.p(f"  {tag}{describe_message(m)}")
                if tag or n.node is None:
                    continue
                try:
                    n.node.step(m)
                except RaftError as exc:
                    self.p(f"  ERROR {exc}")
        return did

    # --- commands ----------------------------------------------------------------------

    def run(self, b: Block) -> str:
        self.out = []
        handler: Callable[[Block], None] | None = getattr(
            self, "cmd_" + b.cmd.replace("-", "_"), None
        )
        if handler is None:
            raise ValueError(f"line {b.line}: unknown command {b.cmd!r}")
        try:
            handler(b)
        except ProposalDropped as exc:
            self.p(f"dropped: {exc}")
        return "\n".join(self.out)

    def cmd_add_nodes(self, b: Block) -> None:
        count = int(b.args[0])
        kw = b.kwargs
        self.cfg = SimConfig(
            election_tick=int(kw.get("election", 10)),
            heartbeat_tick=int(kw.get("heartbeat", 1)),
            pre_vote=kw.get("prevote", "false") == "true",
            check_quorum=kw.get("checkquorum", "false") == "true",
            max_inflight_msgs=int(kw.get("inflight", 256)),
            max_size_per_msg=int(kw.get("maxmsg", 1 << 20)),
        )
        ids = list(range(1, count + 1))
        for i in ids:
            # Seeded per node: election timeouts are "random" but replay exactly.
            n = SimNode(i, self.cfg, random.Random(i))
            bootstrap(n.storage, ids)
            n.start()
            self.nodes[i] = n
        # Bootstrap entries are committed: apply them so the configuration is in force.
        self.process_ready(ids)
        self.out = [f"{count} nodes bootstrapped: voters {ids}"]

    def cmd_load_log(self, b: Block) -> None:
        """Give a (stopped-and-restarted) node a log: entries of the given terms after
        the bootstrap entries, and a hard state at ``term``, as in the paper's figures."""
        n = self.nodes[int(b.args[0])]
        terms = [int(t) for t in b.kwargs.get("terms", "").split(",") if t]
        st = n.storage
        base = st.last_index()
        st.append([Entry(t, base + 1 + i, EntryType.NORMAL, f"t{t}i{base + 1 + i}".encode())
                   for i, t in enumerate(terms)])
        hs = st.hard_state
        st.set_hard_state(HardState(int(b.kwargs.get("term", hs.term)), 0, hs.commit))
        n.start()
        self.process_ready([n.id])  # apply the bootstrap configuration
        self.out = []

    def cmd_add_joining(self, b: Block) -> None:
        i = int(b.args[0])
        n = SimNode(i, self.cfg, random.Random(i))
        n.start()
        self.nodes[i] = n

    def cmd_campaign(self, b: Block) -> None:
        self.node(b.args[0]).node.campaign()  # type: ignore[union-attr]

    def cmd_tick(self, b: Block) -> None:
        n = self.node(b.args[0])
        for _ in range(int(b.kwargs.get("n", "1"))):
            n.node.tick()  # type: ignore[union-attr]

    def cmd_tick_heartbeat(self, b: Block) -> None:
        n = self.node(b.args[0])
        for _ in range(self.cfg.heartbeat_tick):
            n.node.tick()  # type: ignore[union-attr]

    def cmd_tick_election(self, b: Block) -> None:
        n = self.node(b.args[0])
        assert n.node is not None
        r = n.node.raft
        for _ in range(max(r.randomized_election_timeout, r.election_timeout)):
            n.node.tick()

    def cmd_process_ready(self, b: Block) -> None:
        self.process_ready(self.ids(b.args))

    def cmd_deliver_msgs(self, b: Block) -> None:
        self.deliver(self.ids(b.args), drop=b.kwargs.get("drop") == "true",
                     sender=int(b.kwargs.get("from", "0")))

    def cmd_stabilize(self, b: Block) -> None:
        ids = self.ids(b.args)
        for _ in range(1000):
            did = self.process_ready(ids)
            did = self.deliver(ids) or did
            if not did:
                return
        raise RuntimeError("stabilize did not converge")

    def cmd_propose(self, b: Block) -> None:
        self.node(b.args[0]).node.propose(b.args[1].encode())  # type: ignore[union-attr]

    def cmd_propose_conf_change(self, b: Block) -> None:
        n = self.node(b.args[0])
        kinds = {"add": ConfChangeType.ADD_NODE, "learner": ConfChangeType.ADD_LEARNER_NODE,
                 "remove": ConfChangeType.REMOVE_NODE}
        for k, v in b.kwargs.items():
            n.node.propose_conf_change(ConfChange(kinds[k], int(v)))  # type: ignore[union-attr]

    def cmd_read_index(self, b: Block) -> None:
        self.node(b.args[0]).node.read_index(b.args[1].encode())  # type: ignore[union-attr]

    def cmd_transfer_leadership(self, b: Block) -> None:
        n = self.node(b.kwargs["from"])
        n.node.transfer_leadership(int(b.kwargs["to"]))  # type: ignore[union-attr]

    def cmd_compact(self, b: Block) -> None:
        n = self.node(b.args[0])
        idx = int(b.args[1])
        values = [v for (i, v) in n.applied if i <= idx]
        n.storage.create_snapshot(idx, n.conf_state, encode_values(values))
        n.storage.compact(idx)
        self.p(f"{n.id}: log compacted through {idx}; first index now {n.storage.first_index()}")

    def cmd_cut(self, b: Block) -> None:
        a, c = int(b.args[0]), int(b.args[1])
        self.cut.add((a, c))
        if b.kwargs.get("oneway") != "true":
            self.cut.add((c, a))

    def cmd_isolate(self, b: Block) -> None:
        a = int(b.args[0])
        for o in self.nodes:
            if o != a:
                self.cut.add((a, o))
                self.cut.add((o, a))

    def cmd_partition(self, b: Block) -> None:
        groups = [[int(x) for x in g.split(",")] for g in b.args]
        for i, g in enumerate(groups):
            for h in groups[i + 1 :]:
                for x in g:
                    for y in h:
                        self.cut.add((x, y))
                        self.cut.add((y, x))
        self.p("partitioned: " + " | ".join(",".join(map(str, g)) for g in groups))

    def cmd_heal(self, b: Block) -> None:
        self.cut.clear()

    def cmd_crash(self, b: Block) -> None:
        self.nodes[int(b.args[0])].crash()

    def cmd_restart(self, b: Block) -> None:
        n = self.nodes[int(b.args[0])]
        n.start()
        assert n.node is not None
        hs = n.storage.hard_state
        self.p(f"{n.id} restarted: term {hs.term} vote {hs.vote} commit {hs.commit} "
               f"last index {n.storage.last_index()}")

    def cmd_status(self, b: Block) -> None:
        for i in self.ids(b.args):
            n = self.nodes[i]
            if n.node is None:
                self.p(f"{i}: down")
                continue
            s = n.node.status()
            cs = s.conf_state
            self.p(f"{i}: {s.state.name} term={s.term} lead={s.lead} commit={s.commit} "
                   f"applied={s.applied} last={s.last_index} voters={list(cs.voters)}"
                   + (f" learners={list(cs.learners)}" if cs.learners else ""))

    def cmd_raft_log(self, b: Block) -> None:
        n = self.node(b.args[0])
        log = n.node.raft.raft_log  # type: ignore[union-attr]
        ents = log.all_entries()
        self.p(" ".join(describe_entry(e).replace(" ", ":", 1) for e in ents) or "(empty)")

    def cmd_values(self, b: Block) -> None:
        for i in self.ids(b.args):
            n = self.nodes[i]
            self.p(f"{i}: {[v.decode() for v in n.values]}")

    def cmd_check(self, b: Block) -> None:
        """Assertions: leader=ID term=T on nodes; commit=N; values=a,b; state=...; no-leader."""
        kw = b.kwargs
        for i in self.ids(b.args):
            n = self.nodes[i]
            if n.node is None:
                self.p(f"ERROR {i} is down")
                continue
            r = n.node.raft
            want: dict[str, Callable[[], object]] = {
                "leader": lambda r=r: r.lead,
                "term": lambda r=r: r.term,
                "commit": lambda r=r: r.raft_log.committed,
                "state": lambda r=r: r.state.name.lower(),
                "last": lambda r=r: r.raft_log.last_index(),
                "values": lambda n=n: ",".join(v.decode() for v in n.values),
            }
            for k, v in kw.items():
                got = str(want[k]())
                if got != v:
                    self.p(f"ERROR {i}: {k} is {got}, want {v}")
        if not any(line.startswith("ERROR") for line in self.out):
            self.p("ok")


def run_file(path: Path, rewrite: bool) -> tuple[str, str]:
    """Run one scenario file; returns (expected text, actual text)."""
    text = path.read_text()
    blocks = parse(text)
    env = InteractionEnv()
    outputs = [env.run(b) for b in blocks]
    actual = render(blocks, outputs, header_of(text))
    if rewrite:
        path.write_text(actual)
    return text, actual


__all__ = ["InteractionEnv", "StateType", "run_file"]
