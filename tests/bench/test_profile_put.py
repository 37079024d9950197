"""bench.profile_put's reading of a py-spy raw profile: idle frames are not busy time, the
main thread's cost per request comes from its busy samples, and gRPC's share is the self
time of Handle._run."""

from __future__ import annotations

from bench.profile_put import RATE, summarize

RAW = "\n".join([
    "thread (1): MainThread;run (asyncio/base_events.py:1);"
    "EpollSelector.select (selectors.py:468) 500",
    "thread (1): MainThread;run (asyncio/base_events.py:1);Handle._run (asyncio/events.py:80) 100",
    "thread (1): MainThread;run (asyncio/base_events.py:1);Handle._run (asyncio/events.py:80);"
    "KVService.Put (raftkv/server/services.py:75);put (raftkv/mvcc/kv.py:9) 300",
    "thread (2): asyncio_0;_worker (concurrent/futures/thread.py:81) 150",
    "thread (2): asyncio_0;_worker (concurrent/futures/thread.py:83);"
    "OsFile.fdatasync (raftkv/storage/fs.py:70) 50",
])


def test_busy_time_per_request_and_grpc_share() -> None:
    lines = summarize(RAW, requests=100, seconds=1.8)
    text = "\n".join(lines)
    assert "   44.4%  MainThread" in text  # 400 busy of 900
    assert "   25.0%  asyncio_0" in text  # 50 of 200
    ms = 400 / RATE / 100 * 1000
    assert f"main thread: {ms:.2f} ms busy per request" in text
    assert "gRPC's own callbacks (Handle._run self) 25%" in text  # 100 of 400
    assert "   75.0%  KVService.Put (raftkv/server/services.py)" in text
    assert "   75.0%  put (raftkv/mvcc/kv.py)" in text
