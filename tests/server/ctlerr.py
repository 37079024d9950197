"""What an etcdctl run's stderr says went wrong, without the parts that change run to run.

etcdctl 3.6 writes timestamped JSON log records to stderr (a retried RPC, an unrecognized
``ETCDCTL_API`` variable, ...) in an order that is not fixed against its final
``Error: ...`` line. Comparing the last stderr line therefore compares timestamps now and
then. ``ctl_error`` keeps what matters: the ``Error:`` lines, in order, and the gRPC
codes of the RPC errors the JSON records name (deduplicated, sorted). Invariant: two runs
that failed the same way give equal values, whatever the log records' times and order.
"""

from __future__ import annotations

import json
import re

_CODE = re.compile(r"code = (\w+)")
CtlError = tuple[tuple[str, ...], tuple[str, ...]]


def ctl_error(stderr: str) -> CtlError:
    """(``Error:`` lines, gRPC codes in the JSON log records) of an etcdctl stderr."""
    errors: list[str] = []
    codes: set[str] = set()
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            found = _CODE.search(str(record.get("error", "")))
            if found:
                codes.add(found.group(1))
        elif line.startswith("Error:"):
            errors.append(line)
    return tuple(errors), tuple(sorted(codes))
