"""The watch checker accepts a correct stream and names each planted anomaly.

The history: put a=1 (rev 2), put b=2 (rev 3), txn a=3,b=4 (rev 4), delete a (rev 5), and
a final read at rev 5. A correct watch from revision 1 with prev_kv delivers one response
per revision; each test below breaks one thing and expects exactly that finding.
"""

from __future__ import annotations

import copy

import pytest

from tests.e2e.history.builder import Builder
from tests.e2e.history.history import KV, History, Status
from tests.e2e.history.watch_check import check
from tests.e2e.history.watchlog import Event, Segment, WatchLog, WatchResp

A1 = KV("hk/a", "1", 2, 2, 1)
B2 = KV("hk/b", "2", 3, 3, 1)
A3 = KV("hk/a", "3", 4, 2, 2)
B4 = KV("hk/b", "4", 4, 3, 2)
DEL_A = KV("hk/a", "", 5, 0, 0)


def history(put_b: Status = Status.OK) -> History:
    b = Builder()
    b.put("hk/a", "1", 1, 2, rev=2)
    b.put("hk/b", "2", 3, 4, rev=3, status=put_b)
    b.txn2("hk/a", "1", "3", "hk/b", "4", 5, 6, rev=4, succeeded=True)
    b.delete("hk/a", 7, 8, rev=5, deleted=1)
    final = b.range([B4], 9, 10, rev=5)
    final.name = "final"
    return b.history


def responses() -> list[WatchResp]:
    return [
        WatchResp(1, created=True),
        WatchResp(2, [Event("put", A1, None)]),
        WatchResp(3, [Event("put", B2, None)]),
        WatchResp(4, [Event("put", A3, A1), Event("put", B4, B2)]),
        WatchResp(5, [Event("del", DEL_A, A3)]),
    ]


def log(resps: list[WatchResp], wid: int = 0, prev_kv: bool = True) -> WatchLog:
    return WatchLog(wid, "hk/", "hk0", prev_kv, [Segment("ep0", 1, 1, resps)])


def kinds(h: History) -> set[str]:
    return check(h).kinds()


def test_a_correct_stream_passes() -> None:
    h = history()
    h.watches = [log(responses())]
    v = check(h)
    assert v.ok, v.summary()
    assert v.stats["events"] == 5


def test_a_correct_resumption_passes() -> None:
    h = history()
    r = responses()
    first = Segment("ep0", 1, 1, r[:3], error="UNAVAILABLE")
    second = Segment("ep1", 4, 3, [WatchResp(3, created=True), *r[3:]])
    h.watches = [WatchLog(0, "hk/", "hk0", True, [first, second])]
    v = check(h)
    assert v.ok, v.summary()
    assert v.stats["resumes"] == 1


def test_a_missing_acknowledged_write() -> None:
    h = history()
    h.watches = [log([r for r in responses() if r.header_revision != 3])]
    assert "missing" in kinds(h)


def test_a_gap_at_an_unacknowledged_revision() -> None:
    h = history(put_b=Status.UNKNOWN)  # rev 3's write has no acknowledgement to miss
    h.watches = [log([r for r in responses() if r.header_revision != 3])]
    assert "gap" in kinds(h)


def test_a_duplicate_after_resumption() -> None:
    h = history()
    r = responses()
    first = Segment("ep0", 1, 1, r[:3])
    second = Segment("ep1", 4, 3, [WatchResp(3, created=True), r[2], *r[3:]])  # rev 3 again
    h.watches = [WatchLog(0, "hk/", "hk0", True, [first, second])]
    assert "duplicate" in kinds(h)


def test_a_split_revision() -> None:
    h = history()
    r = responses()
    txn = r[3]
    r[3:4] = [WatchResp(4, [txn.events[0]]), WatchResp(4, [txn.events[1]])]
    h.watches = [log(r)]
    assert kinds(h) == {"split-revision"}


def test_a_partial_txn() -> None:
    h = history()
    r = responses()
    r[3] = WatchResp(4, [r[3].events[0]])
    h.watches = [log(r)]
    assert "partial-txn" in kinds(h)


def test_a_wrong_prev_kv() -> None:
    h = history()
    r = responses()
    r[4] = WatchResp(5, [Event("del", DEL_A, A1)])  # prev should be a=3
    h.watches = [log(r)]
    assert kinds(h) == {"wrong-prev-kv"}


def test_prev_kv_sent_unasked() -> None:
    h = history()
    h.watches = [log(responses(), prev_kv=False)]
    assert kinds(h) == {"wrong-prev-kv"}


def test_an_invented_event() -> None:
    h = history()
    r = responses()
    r.insert(5, WatchResp(6, [Event("put", KV("hk/c", "nobody", 6, 6, 1))]))
    h.watches = [log(r)]
    assert "invented" in kinds(h)


def test_out_of_order() -> None:
    h = history()
    r = responses()
    r[1], r[2] = r[2], r[1]
    h.watches = [log(r)]
    assert "out-of-order" in kinds(h)


def test_wrong_version() -> None:
    h = history()
    r = responses()
    r[3] = WatchResp(4, [Event("put", KV("hk/a", "3", 4, 2, 7), A1), r[3].events[1]])
    h.watches = [log(r)]
    assert kinds(h) == {"wrong-kv"}


def test_watchers_disagree() -> None:
    h = history(put_b=Status.UNKNOWN)
    other = responses()
    other[2] = WatchResp(3, [Event("put", KV("hk/a", "1", 3, 2, 2), A1)])  # a replayed put
    h.watches = [log(responses()), log(other, wid=1)]
    assert "disagree" in kinds(h)


def test_a_stalled_watcher() -> None:
    h = history()
    h.watches = [log(responses()[:4])]  # never delivers rev 5 though the cluster reached it
    assert kinds(h) == {"stalled"}


def test_a_watch_from_now_created_at_the_final_revision_is_not_stalled() -> None:
    h = history()
    refused = Segment("ep0", 0, 0, [], error="UNAVAILABLE")  # never in place
    h.watches = [WatchLog(0, "hk/", "hk0", True, [refused, Segment("ep1", 0, 5, [
        WatchResp(5, created=True)])])]
    assert check(h).ok, check(h).summary()
    h.watches[0].segments[1].created_revision = 4  # it should then have seen revision 5
    assert check(h).kinds() == {"stalled"}


def test_a_compaction_excuses_only_its_range() -> None:
    h = history()
    r = responses()
    cancel = WatchResp(5, canceled=True, compact_revision=4, cancel_reason="compacted")
    first = Segment("ep0", 1, 0, [cancel])
    second = Segment("ep0", 4, 5, [WatchResp(5, created=True), *copy.deepcopy(r[3:])])
    h.watches = [WatchLog(0, "hk/", "hk0", False, [first, second])]
    for resp in second.responses:
        resp.events = [Event(e.kind, e.kv) for e in resp.events]
    assert check(h).ok, check(h).summary()


@pytest.mark.parametrize("drop", [2, 3])
def test_round_trip_keeps_the_finding(drop: int) -> None:
    h = history()
    h.watches = [log([r for r in responses() if r.header_revision != drop])]
    again = History.from_json(h.to_json())
    assert check(again).kinds() == check(h).kinds() == {"missing"}
