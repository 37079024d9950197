"""etcd user credentials for the client: etcdctl's ``--user``/``--password`` rules and
what etcd's auth errors mean for a user.

Job: parse ``--user name[:password]`` and ``--password`` as etcdctl 3.6 does (with
``--password`` the whole ``--user`` is the name, so names and passwords may hold a
colon; otherwise the first colon splits). The auth failures' kinds (``AUTH_FAILED``,
``AUTH_REQUIRED``) are told apart in :func:`raftkv.client.errors.classify`.

Invariant: a :class:`Credentials` always has a non-empty user; no password is ever part
of an error message.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTH_NOT_ENABLED = "authentication is not enabled"  # etcd's answer to Authenticate then


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = ""

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(user={self.user!r})"


def parse_user(user: str | None, password: str | None) -> Credentials | None:
    """etcdctl's ``--user``/``--password``; None when no user is given. A user without a
    password is a ValueError (one sentence): diag does not prompt."""
    if not user:
        if password:
            raise ValueError("--password needs --user")
        return None
    if password:
        return Credentials(user, password)
    name, sep, secret = user.partition(":")
    if not name:
        raise ValueError("--user needs a user name before the colon")
    if not sep:
        raise ValueError(f"--user {name} has no password; give --user {name}:PASSWORD or "
                         "--password (or DIAG_PASSWORD)")
    return Credentials(name, secret)
