"""ctl_error: the same failure gives the same value whatever etcdctl's log records say."""

from __future__ import annotations

from tests.server.ctlerr import ctl_error

RETRY = ('{"level":"warn","ts":"%s","msg":"retrying of unary invoker failed","error":'
         '"rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been '
         'compacted"}')
API = ('{"level":"warn","ts":"%s","msg":"unrecognized environment variable",'
       '"environment-variable":"ETCDCTL_API=3"}')
ERROR = "Error: etcdserver: mvcc: required revision has been compacted"


def test_log_records_after_the_error_line_do_not_matter() -> None:
    a = "\n".join([RETRY % "2026-12-01T21:10:40.1Z", ERROR])
    b = "\n".join([RETRY % "2026-12-01T21:11:00.2Z", ERROR, API % "2026-12-01T21:11:00.3Z"])
    assert ctl_error(a) == ctl_error(b) == ((ERROR,), ("OutOfRange",))


def test_a_different_error_or_code_differs() -> None:
    a = "\n".join([RETRY % "t", ERROR])
    assert ctl_error(a) != ctl_error(ERROR)  # the code is part of it
    assert ctl_error("Error: context deadline exceeded") != ctl_error(ERROR)
    assert ctl_error("") == ((), ())
