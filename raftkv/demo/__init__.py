"""The demos: real raftkv members on loopback showing what the consensus article claims.

``python -m raftkv.demo`` (``make demo``, :mod:`raftkv.demo.crash`): three members lose
their leader and keep every acknowledged write. ``python -m raftkv.demo split-brain``
(:mod:`raftkv.demo.splitbrain`): five members cut 2|3, the minority commits nothing.
``python -m raftkv.demo fencing`` (:mod:`raftkv.demo.fencing`): a paused lock holder's
late write is refused by a fencing token.

Each demo prints a table and plain words and exits 0 only when every claim held; a failed
claim has its own non-zero exit code (listed by ``--help``); bad usage is exit code 2.
"""

from __future__ import annotations

from raftkv.demo.cli import main

__all__ = ["main"]
