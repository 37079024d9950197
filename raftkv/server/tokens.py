"""etcd's simple tokens (``--auth-token=simple``): what a client sends as gRPC metadata
``token`` after Authenticate.

A token is ``<16 random letters>.<raft index of its Authenticate entry>``. The prefix is
drawn by the member that serves Authenticate and replicated in the entry, so every member
that applies the entry knows the token (a follower can forward a keep-alive with it), but
the table lives in memory only: a restarted member, or one that got the entry inside a
snapshot, does not know it, and its clients must authenticate again, as with etcd.
Each member's clock expires a token ``ttl`` seconds after its last use on that member
(etcd's --auth-token-ttl, default 300 s). Deleting a user or changing their password drops
their tokens; disabling auth drops all.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

LETTERS = string.ascii_letters
PREFIX_LENGTH = 16
DEFAULT_TTL = 300.0


def new_prefix() -> str:
    return "".join(secrets.choice(LETTERS) for _ in range(PREFIX_LENGTH))


class SimpleTokens:
    def __init__(self, ttl: float, now: Callable[[], float]) -> None:
        self.ttl = ttl if ttl > 0 else DEFAULT_TTL
        self.now = now
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (user, deadline)

    def assign(self, user: str, prefix: str, index: int) -> str:
        token = f"{prefix}.{index}"
        now = self.now()
        if len(self._tokens) % 256 == 255:  # forget expired tokens nobody asks about
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        self._tokens[token] = (user, now + self.ttl)
        return token

    def user_of(self, token: str) -> str | None:
        """The token's user, and its TTL restarted; None if unknown or expired."""
        got = self._tokens.get(token)
        if got is None:
            return None
        user, deadline = got
        now = self.now()
        if now >= deadline:
            del self._tokens[token]
            return None
        self._tokens[token] = (user, now + self.ttl)
        return user

    def invalidate_user(self, user: str) -> None:
        for t in [t for t, (u, _) in self._tokens.items() if u == user]:
            del self._tokens[t]

    def clear(self) -> None:
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)
