"""bench.put_timeline's join of the members' stamps: steps are measured on the follower
whose answer reached the leader first, the commit waits for that answer and the leader's
own save (whichever is later), and each put runs from the handler's start before its
MsgApp to the first reply after its apply. With one member its own save commits."""

from __future__ import annotations

from pathlib import Path

from bench.put_timeline import fsyncs, load, timeline

US = 1000  # ns


def _events(rows: list[tuple[int, str, int]]) -> dict[tuple[str, int], int]:
    return {(name, value): t * US for t, name, value in rows}


def test_steps_follow_the_first_answer_and_the_later_of_answer_and_own_save() -> None:
    i = 7
    leader = _events([
        (10, "send_app", i), (20, "wal_call", i), (50, "wal_in", i), (350, "wal_out", i),
        (400, "wal_back", i), (600, "recv_resp:a", i), (900, "recv_resp:b", i),
        (700, "commit", i), (750, "apply0", i), (950, "apply1", i)])
    puts = [(0 * US, "put0"), (1000 * US, "put1"), (2500 * US, "put0")]
    fast = _events([(110, "recv_app", i), (150, "wal_call", i), (200, "wal_in", i),
                    (450, "wal_out", i), (500, "wal_back", i), (510, "send_resp", i)])
    slow = _events([(400, "recv_app", i)])
    steps = timeline(leader, puts, {0xA: fast, 0xB: slow})
    assert steps["total: handler start to reply"] == [1000.0]
    assert steps["follower: MsgApp sent to received by the Ready loop"] == [100.0]  # fast one
    assert steps["follower: WAL hand-off to the worker thread"] == [50.0]
    assert steps["follower: MsgAppResp sent to received by the leader"] == [90.0]
    assert steps["leader: WAL write + fdatasync"] == [300.0]
    # the first answer came at 600, after the leader's own save (400): commit at 700
    assert steps["leader: quorum (first answer and own save) to commit Ready"] == [100.0]
    assert steps["leader: apply end to reply"] == [50.0]
    assert steps["outside the handler: its reply to the next request's handler start "
                 "(gRPC both ways, the client)"] == [1500.0]


def test_one_member_commits_on_its_own_save_and_files_parse(tmp_path: Path) -> None:
    # one voter: the Ready that carries the entry commits it too (stamped first)
    leader = _events([(5, "commit", 3), (10, "wal_call", 3), (40, "wal_in", 3),
                      (240, "wal_out", 3), (300, "wal_back", 3), (400, "apply0", 3),
                      (600, "apply1", 3)])
    steps = timeline(leader, [(0, "put0"), (700 * US, "put1")], {})
    assert steps["leader: handler start to its WAL save handed to a worker"] == [10.0]
    assert steps["leader: its save back to apply start (committed in the Ready that "
                 "carried it)"] == [100.0]
    assert "leader: commit Ready to apply start" not in steps
    assert steps["total: handler start to reply"] == [700.0]
    assert not any(name.startswith("follower") for name in steps)
    # with followers, a put that no follower answered is left out
    assert timeline(leader, [(0, "put0"), (700 * US, "put1")], {0xA: {}}).get(
        "leader: apply of the entry") is None
    f = tmp_path / "1.events"
    f.write_text("5 id 42\n10 put0 0\n20 send_app 3\n30 send_app 3\n40 fsync0 0\n"
                 "140 fsync1 0\n")
    member, events, put_stamps = load(f)
    assert member == 42
    assert events == {("send_app", 3): 20}  # the first stamp of an event counts
    assert put_stamps == [(10, "put0")]
    assert fsyncs(f) == [0.1]
