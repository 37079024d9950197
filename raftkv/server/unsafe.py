"""Test-only unsafe switches: ways to break the server's safety on purpose, so that a test
can show a demo's checks notice when the property they report is gone.

One switch exists, read from the environment by the ``raftkv`` command only:

``RAFTKV_UNSAFE_TEST_ONLY_DEPOSED_LEADER_SERVES=1``
    The Raft core runs without check-quorum (a leader cut off from the majority keeps
    believing it leads), and a linearizable read on a member that believes it leads is
    served from its own state without a ReadIndex round. A deposed leader then answers
    reads with stale data: the split brain that check-quorum and ReadIndex prevent.

Invariants: off unless the variable is exactly ``1``; refused (one sentence, exit code
:data:`EXIT_REFUSED` from the ``raftkv`` command) unless ``PYTEST_CURRENT_TEST`` is also
set, i.e. the member was started by a running pytest test. Embedded servers
(:class:`raftkv.server.config.ServerConfig` built in code) never read the environment; the
switch is the config field ``unsafe_deposed_leader_serves``, False by default.
"""

from __future__ import annotations

from collections.abc import Mapping

DEPOSED_LEADER_SERVES = "RAFTKV_UNSAFE_TEST_ONLY_DEPOSED_LEADER_SERVES"
UNDER_TEST = "PYTEST_CURRENT_TEST"
EXIT_REFUSED = 4


class UnsafeSwitchRefused(Exception):
    """An unsafe switch was set outside a test."""


def deposed_leader_serves(environ: Mapping[str, str]) -> bool:
    """Whether the test-only switch is on; raises UnsafeSwitchRefused outside pytest."""
    value = environ.get(DEPOSED_LEADER_SERVES, "")
    if value == "":
        return False
    if value != "1":
        raise UnsafeSwitchRefused(f"{DEPOSED_LEADER_SERVES} must be 1 or unset, not {value!r}")
    if not environ.get(UNDER_TEST):
        raise UnsafeSwitchRefused(
            f"refusing {DEPOSED_LEADER_SERVES}: it disables check-quorum and ReadIndex and "
            "is allowed only in members started by a pytest test")
    return True
